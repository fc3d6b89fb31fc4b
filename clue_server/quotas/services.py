"""Per-member daily quotas of looked-up identifiers and of created reports.

Limits: the council default (``quotas.settings.quota_defaults``) unless the member
has an override (``member_quotas``; NULL in a column means "the default"). A day is
a UTC day; every quota resets at 00:00 UTC.

Enforcement (``reserve``) runs in the view before the work: a batch of n items
that does not fit in what is left of the day is refused whole with 429
``urn:clue:problem:quota-exceeded`` and ``Retry-After`` (seconds to the next UTC
midnight). Nothing of the batch is stored; the refused items are counted in
``daily_usage.quota_rejections``.

Counters:

* **Redis** (``CLUE_REDIS_URL`` set): one key per member, quota and day, checked
  and incremented atomically by a Lua script, expiring after the day; every app
  server shares them. A request that fails after reserving, or that created fewer
  reports than it reserved (duplicates), gives the difference back when it ends.
* **Database** (no Redis): the day's ``daily_usage`` sums, which the request adds
  to in its own transaction. On PostgreSQL a transaction-scoped advisory lock per
  member and quota makes check-and-count atomic across workers and app servers; on
  SQLite every transaction already holds the write lock (``BEGIN IMMEDIATE``).

A registration quota counts the reports created (re-registering a known report is
free); a replay of an ``Idempotency-Key`` counts nothing, because the write it
replays is not run again.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from flask import Flask, Response, current_app, g, has_app_context
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from clue_server import metrics
from clue_server.audit import services as audit
from clue_server.db import iso_utc, utcnow
from clue_server.errors import QuotaExceeded
from clue_server.members.models import Member
from clue_server.quotas import settings as council
from clue_server.quotas.models import MemberQuota
from clue_server.stats import services as usage
from clue_server.stats.models import DailyUsage

QUOTAS = ("lookups", "registrations")
MAX_QUOTA = 10**9


class QuotaError(ValueError):
    """An unknown member or a quota value out of range (the CLI and console show it)."""


class Quota(NamedTuple):
    """A member's daily limits and whether each is the member's own override."""

    lookups: int
    registrations: int
    lookups_overridden: bool
    registrations_overridden: bool


class Usage(NamedTuple):
    """What a member used today, its limits, and when the day ends (UTC)."""

    lookups: int
    registrations: int
    lookups_limit: int
    registrations_limit: int
    resets_at: dt.datetime


# -- council: limits -------------------------------------------------------------------------

def effective_quota(session: Session, member_id: str) -> Quota:
    default_lookups, default_registrations = council.quota_defaults(session)
    row = session.get(MemberQuota, member_id)
    lookups = row.daily_lookups if row is not None else None
    registrations = row.daily_registrations if row is not None else None
    return Quota(default_lookups if lookups is None else lookups,
                 default_registrations if registrations is None else registrations,
                 lookups is not None, registrations is not None)


def set_member_quota(session: Session, member_id: str, lookups: int | None,
                     registrations: int | None, actor: str) -> Quota:
    """Override a member's limits (None: follow the council default). Audited."""
    _store_override(session, member_id, lookups, registrations)
    audit.record(session, actor=actor, action="quota.set", subject=member_id,
                 daily_lookups=lookups, daily_registrations=registrations)
    return effective_quota(session, member_id)


def clear_member_quota(session: Session, member_id: str, actor: str) -> Quota:
    """Drop a member's overrides: it follows the council defaults again. Audited."""
    _store_override(session, member_id, None, None)
    audit.record(session, actor=actor, action="quota.clear", subject=member_id)
    return effective_quota(session, member_id)


def _store_override(session: Session, member_id: str, lookups: int | None,
                    registrations: int | None) -> None:
    if session.get(Member, member_id) is None:
        raise QuotaError(f"no member {member_id!r}")
    for name, value in (("lookups", lookups), ("registrations", registrations)):
        if value is not None and (type(value) is not int or not 0 <= value <= MAX_QUOTA):
            raise QuotaError(f"daily {name} must be a whole number from 0 to {MAX_QUOTA}")
    row = session.get(MemberQuota, member_id)
    if lookups is None and registrations is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(MemberQuota(member_id=member_id, daily_lookups=lookups,
                                daily_registrations=registrations))
    else:
        row.daily_lookups, row.daily_registrations = lookups, registrations
    session.flush()


def set_defaults(session: Session, lookups: int | None, registrations: int | None,
                 actor: str) -> tuple[int, int]:
    """Change the council defaults (None: leave as is). Audited. Returns the new pair."""
    try:
        if lookups is not None:
            council.set_int(session, "quota.daily_lookups", lookups, maximum=MAX_QUOTA)
        if registrations is not None:
            council.set_int(session, "quota.daily_registrations", registrations,
                            maximum=MAX_QUOTA)
    except council.SettingError as exc:
        raise QuotaError(str(exc)) from exc
    session.flush()
    audit.record(session, actor=actor, action="quota.defaults", subject="council",
                 daily_lookups=lookups, daily_registrations=registrations)
    return council.quota_defaults(session)


def usage_today(session: Session, member_id: str, *, now: dt.datetime | None = None) -> Usage:
    """The member's lookups and created reports so far today (from ``daily_usage``)."""
    now = now or utcnow()
    used = _used_in_db(session, member_id, now.date())
    quota = effective_quota(session, member_id)
    return Usage(used["lookups"], used["registrations"], quota.lookups, quota.registrations,
                 next_midnight(now))


def next_midnight(now: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)


def retry_after_seconds(now: dt.datetime) -> int:
    return max(1, int((next_midnight(now) - now).total_seconds() + 0.999))


def _used_in_db(session: Session, member_id: str, day: dt.date) -> dict[str, int]:
    row = session.execute(select(func.sum(DailyUsage.lookups), func.sum(DailyUsage.registrations))
                          .where(DailyUsage.day == day, DailyUsage.member_id == member_id)).one()
    return {"lookups": int(row[0] or 0), "registrations": int(row[1] or 0)}


# -- API: enforcement ------------------------------------------------------------------------

class QuotaCounter(Protocol):
    def reserve(self, session: Session, member_id: str, quota: str, n: int, limit: int,
                now: dt.datetime) -> tuple[bool, int]:
        """Take ``n`` if it fits under ``limit``; returns (taken, used before)."""

    def give_back(self, member_id: str, quota: str, n: int, day: dt.date) -> None:
        """Return ``n`` taken earlier the same day (the request failed or used less)."""


class DatabaseQuotaCounter:
    """The day's ``daily_usage`` sums; the request's own usage rows are the count."""

    def reserve(self, session: Session, member_id: str, quota: str, n: int, limit: int,
                now: dt.datetime) -> tuple[bool, int]:
        if session.get_bind().dialect.name == "postgresql":
            # Held to the end of the request's transaction, which also writes the count.
            key = zlib.crc32(f"clue-quota:{quota}:{member_id}".encode()) - 2**31
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        used = _used_in_db(session, member_id, now.date())[quota]
        return used + n <= limit, used

    def give_back(self, member_id: str, quota: str, n: int, day: dt.date) -> None:
        pass  # the transaction's rollback already took the count back


# KEYS[1]: counter; ARGV: n, limit, expire-at (unix time). Returns {taken, used before}.
_RESERVE_LUA = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
if used + n > tonumber(ARGV[2]) then return {0, used} end
redis.call('INCRBY', KEYS[1], n)
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return {1, used}
"""


class RedisQuotaCounter:
    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(url)
        self.prefix = prefix
        self._reserve = self.redis.register_script(_RESERVE_LUA)

    def key(self, member_id: str, quota: str, day: dt.date) -> str:
        return f"{self.prefix}{quota}:{member_id}:{day.isoformat()}"

    def reserve(self, session: Session, member_id: str, quota: str, n: int, limit: int,
                now: dt.datetime) -> tuple[bool, int]:
        # Kept an hour past midnight so a request straddling it still gives back right.
        expire_at = int(next_midnight(now).timestamp()) + 3600
        taken, used = self._reserve(keys=[self.key(member_id, quota, now.date())],
                                    args=[n, limit, expire_at])
        return bool(taken), int(used)

    def give_back(self, member_id: str, quota: str, n: int, day: dt.date) -> None:
        if n > 0:
            self.redis.decrby(self.key(member_id, quota, day), n)

    def used(self, member_id: str, quota: str, day: dt.date) -> int:
        return int(self.redis.get(self.key(member_id, quota, day)) or 0)


@dataclass
class Reservation:
    """Items a request took from a Redis counter; settled when the request ends."""

    member_id: str
    quota: str
    day: dt.date
    taken: int
    #: How many the request really used (None: all it took).
    used: int | None = None
    #: Counted even though the answer is an error (see ``keep``).
    kept: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def reserve(session: Session, member_id: str, quota: str, items_by_type: Mapping[str, int]
            ) -> Reservation | None:
    """Take ``sum(items_by_type)`` from today's ``quota`` or refuse the whole batch (429).

    Call it in the view after validation and before the work, in the request's
    transaction. On refusal it counts the refused items (and commits that count,
    as the request has written nothing else) and raises ``QuotaExceeded``.
    """
    counter: QuotaCounter = current_app.extensions["clue_quota_counter"]
    n = sum(items_by_type.values())
    now = utcnow()
    pending: list[Reservation] = g.setdefault("quota_reservations", [])
    if isinstance(counter, RedisQuotaCounter):
        # A retried write in the same request (run_once after a lost race) must not
        # take twice.
        for earlier in pending:
            if (earlier.member_id, earlier.quota) == (member_id, quota):
                return earlier
    quota_limits = effective_quota(session, member_id)
    limit = quota_limits.lookups if quota == "lookups" else quota_limits.registrations
    taken, used = counter.reserve(session, member_id, quota, n, limit, now)
    if not taken:
        session.rollback()
        usage.record_rejection(session, member_id, items_by_type, now=now)
        session.commit()
        metrics.count_quota_rejection(quota, n)
        left = max(0, limit - used)
        resets_at = next_midnight(now)
        error = QuotaExceeded(
            f"daily {quota} quota exceeded: {n} item(s) asked, {left} of {limit} left today; "
            f"it resets at {iso_utc(resets_at)}",
            quota=quota, limit=limit, used=used, requested=n, resets_at=iso_utc(resets_at),
            retry_after=retry_after_seconds(now))
        error.headers["Retry-After"] = str(error.extra["retry_after"])
        raise error
    reservation = Reservation(member_id, quota, now.date(), n)
    if isinstance(counter, RedisQuotaCounter):
        pending.append(reservation)
    return reservation


def settle(reservation: Reservation | None, used: int) -> None:
    """Say how many of the reserved items the request really used (created reports)."""
    if reservation is not None:
        reservation.used = used


def keep(reservation: Reservation | None) -> None:
    """Count what was reserved even though the request answers with an error.

    For a refusal that still told the caller something a look-up would (a dispute on an
    unreported token answers 404): the view commits the day's count itself, and this
    stops the Redis counter from being given back when the request ends.
    """
    if reservation is not None:
        reservation.kept = True


def _finish(response: Response) -> Response:
    """After the request: give back what a failed or replayed request took, or did not use."""
    reservations: list[Reservation] = g.pop("quota_reservations", [])
    if reservations:
        counter: QuotaCounter = current_app.extensions["clue_quota_counter"]
        failed = response.status_code >= 400 or "Idempotent-Replayed" in response.headers
        for reservation in reservations:
            used = 0 if failed and not reservation.kept else (
                reservation.taken if reservation.used is None else reservation.used)
            counter.give_back(reservation.member_id, reservation.quota,
                              reservation.taken - used, reservation.day)
    return response


def _teardown(_exc: BaseException | None) -> None:
    # An exception that escaped every handler: after_request did not run.
    reservations: list[Reservation] = g.pop("quota_reservations", []) if has_app_context() else []
    counter = current_app.extensions.get("clue_quota_counter") if reservations else None
    for reservation in reservations:
        if counter is not None:
            counter.give_back(reservation.member_id, reservation.quota, reservation.taken,
                              reservation.day)


def init_app(app: Flask) -> None:
    settings = app.extensions["clue_settings"]
    app.extensions["clue_quota_counter"] = (
        RedisQuotaCounter(settings.redis_url, settings.quota_key_prefix) if settings.redis_url
        else DatabaseQuotaCounter())
    app.after_request(_finish)
    app.teardown_request(_teardown)
