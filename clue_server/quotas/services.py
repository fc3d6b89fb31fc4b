"""Per-member daily quotas of looked-up identifiers and of created reports: the limits.

Limits: the council default (``quotas.settings.quota_defaults``) unless the member
has an override (``member_quotas``; NULL in a column means "the default"). A day is
a UTC day; every quota resets at 00:00 UTC. A batch that does not fit in what is left
of the day is refused whole with 429 ``urn:clue:problem:quota-exceeded`` and
``Retry-After`` (seconds to the next UTC midnight); nothing of it is stored, and the
refused items are counted in ``daily_usage.quota_rejections``.

How requests are counted against the limits is ``quotas.counters``. A registration
quota counts the reports created (re-registering a known report is free); a replay of
an ``Idempotency-Key`` counts nothing, because the write it replays is not run again.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import NamedTuple

from flask import Flask, current_app, has_app_context
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from clue_server.audit import services as audit
from clue_server.cache import invalidate_on_change
from clue_server.db import utcnow
from clue_server.members.models import Member
from clue_server.quotas import counters
from clue_server.quotas import settings as council
from clue_server.quotas.models import MemberQuota

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
    """The member's look-ups and created reports so far today, as its quotas count them."""
    now = now or utcnow()
    conn = session.connection()
    registrations = int(conn.execute(counters.statements(conn).used, {
        "day": now.date(), "member_id": member_id, "quota": "registrations"}).scalar() or 0)
    extensions = session.info.get("clue_extensions") or (
        current_app.extensions if has_app_context() else {})
    counter = extensions.get("clue_lookup_counter") or counters.DatabaseLookupCounter()
    lookups = counter.used(conn, member_id, now.date())
    quota = effective_quota(session, member_id)
    return Usage(lookups, registrations, quota.lookups, quota.registrations, next_midnight(now))


next_midnight = counters.next_midnight
retry_after_seconds = counters.retry_after_seconds


# -- the hot path: limits cached for the Redis counter ---------------------------------------

class LookupLimits:
    """The members' look-up limits, each read at most once a second (Redis counters only:
    the database counters read the limit in their own statement)."""

    def __init__(self, engine: Engine, ttl: float = 1.0) -> None:
        self.engine = engine
        self.ttl = ttl
        self._cache: dict[str, tuple[float, int]] = {}

    def __call__(self, member_id: str) -> int:
        now = time.monotonic()
        hit = self._cache.get(member_id)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        with self.engine.connect() as conn:
            limit = int(conn.execute(counters.statements(conn).limit["lookups"],
                                     {"member_id": member_id}).scalar_one())
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[member_id] = (now, limit)
        return limit

    def invalidate(self) -> None:
        self._cache.clear()


def lookup_counter() -> counters.LookupCounter:
    counter: counters.LookupCounter = current_app.extensions["clue_lookup_counter"]
    return counter


def init_app(app: Flask) -> None:
    redis_client = app.extensions.get("clue_redis")
    settings = app.extensions["clue_settings"]
    if redis_client is not None:
        limits = LookupLimits(app.extensions["clue_engine"])
        invalidate_on_change(limits, MemberQuota, council.CouncilSetting)
        app.extensions["clue_lookup_counter"] = counters.RedisLookupCounter(
            redis_client, settings.quota_key_prefix, limits, app.extensions["clue_engine"],
            app.extensions["clue_hot"])
    else:
        app.extensions["clue_lookup_counter"] = counters.DatabaseLookupCounter(
            app.extensions["clue_hot"], app.extensions["clue_engine"],
            app.extensions["clue_nonces"])
