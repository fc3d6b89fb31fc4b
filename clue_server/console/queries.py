"""Read-only queries that only the console needs (the rest come from the domain services).

Everything here reads tables; nothing writes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clue_server.audit import verifications
from clue_server.audit.models import AuditEvent, AuditVerification
from clue_server.config import ID_TYPES
from clue_server.disputes import services as disputes
from clue_server.members.models import Member
from clue_server.quotas import settings as council
from clue_server.quotas.models import MemberQuota
from clue_server.reports.models import Report
from clue_server.stats import services as stats
from clue_server.stats.models import DailyUsage

#: At or above this share of a daily quota a member is "near" it.
NEAR_QUOTA = 0.8
#: A stored verification older than this is shown as stale.
STALE_VERIFICATION = dt.timedelta(days=7)


# -- audit log ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    """What the audit page was asked for (already validated)."""

    actor: str = ""
    action: str = ""
    since: dt.datetime | None = None   # inclusive
    until: dt.datetime | None = None   # exclusive
    before: int | None = None          # older than this entry id (the next page)
    after: int | None = None           # newer than this entry id (the previous page)


class AuditPage(NamedTuple):
    entries: list[AuditEvent]
    older: int | None   # "before" of the next (older) page, if there is one
    newer: int | None   # "after" of the previous (newer) page, if there is one


def search_audit(session: Session, wanted: AuditFilter, *, limit: int = 50) -> AuditPage:
    """One page of entries, newest first, matching the filter (keyset pagination by id)."""
    query = select(AuditEvent)
    if wanted.actor:
        query = query.where(AuditEvent.actor == wanted.actor)
    if wanted.action:
        query = query.where(AuditEvent.action == wanted.action)
    if wanted.since is not None:
        query = query.where(AuditEvent.at >= wanted.since)
    if wanted.until is not None:
        query = query.where(AuditEvent.at < wanted.until)
    if wanted.after is not None:
        rows = list(session.scalars(query.where(AuditEvent.id > wanted.after)
                                    .order_by(AuditEvent.id).limit(limit + 1)))
        more_newer = len(rows) > limit
        entries = list(reversed(rows[:limit]))
        older_exists = bool(entries) and _exists(session, query, AuditEvent.id < entries[-1].id)
        return AuditPage(entries, entries[-1].id if older_exists else None,
                         entries[0].id if more_newer else None)
    if wanted.before is not None:
        query_page = query.where(AuditEvent.id < wanted.before)
    else:
        query_page = query
    rows = list(session.scalars(query_page.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    entries = rows[:limit]
    newer_exists = (wanted.before is not None and bool(entries)
                    and _exists(session, query, AuditEvent.id > entries[0].id))
    return AuditPage(entries, entries[-1].id if len(rows) > limit else None,
                     entries[0].id if newer_exists else None)


def _exists(session: Session, query: Any, condition: Any) -> bool:
    return session.scalar(query.where(condition).with_only_columns(AuditEvent.id)
                          .limit(1)) is not None


def audit_actions(session: Session) -> list[str]:
    """Every action in the log (a short list: actions are a fixed vocabulary)."""
    return list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))


class DetailField(NamedTuple):
    """One audit detail as the page shows it: ``short`` always, ``full`` folded if long."""

    key: str
    short: str
    full: str | None
    items: int | None   # how many items a list value has


#: A detail longer than this is folded, and a list shows at most this many items inline.
FOLD_CHARS = 80
SHOW_ITEMS = 20


def fold_details(details: dict[str, Any] | None) -> list[DetailField]:
    """Audit details for a table cell: lists as a count (the first items folded),
    long values folded. Bulk entries written before digests carry up to 1,000 report ids;
    the full list stays on the entry's own page."""
    fields = []
    for key in sorted(details or {}):
        value = (details or {})[key]
        if isinstance(value, list):
            shown = ", ".join(_text(v) for v in value[:SHOW_ITEMS])
            if len(value) > SHOW_ITEMS:
                shown += ", …"
            fields.append(DetailField(key, "", shown if value else None, len(value)))
            continue
        text = _text(value)
        if len(text) > FOLD_CHARS:
            fields.append(DetailField(key, text[:FOLD_CHARS] + "…", text, None))
        else:
            fields.append(DetailField(key, text, None, None))
    return fields


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# -- quotas ---------------------------------------------------------------------------------


class QuotaUse(NamedTuple):
    """A member's use of its daily quotas today (UTC day)."""

    member_id: str
    name: str
    status: str
    lookups: int
    lookups_limit: int
    registrations: int
    registrations_limit: int
    rejected: int   # items refused for quota today

    @property
    def share(self) -> float:
        """The larger of the two shares used (0 when both limits are 0)."""
        shares = [used / limit for used, limit in ((self.lookups, self.lookups_limit),
                                                   (self.registrations, self.registrations_limit))
                  if limit > 0]
        return max(shares, default=0.0)

    @property
    def over(self) -> bool:
        return self.rejected > 0 or self.share >= 1.0

    @property
    def near(self) -> bool:
        return self.share >= NEAR_QUOTA


def quota_use_today(session: Session, today: dt.date) -> dict[str, QuotaUse]:
    """Every member's use and limits today, in three queries whatever the member count."""
    default_lookups, default_registrations = council.quota_defaults(session)
    overrides = {q.member_id: q for q in session.scalars(select(MemberQuota))}
    used = {m: (int(lk or 0), int(r or 0), int(x or 0)) for m, lk, r, x in session.execute(
        select(DailyUsage.member_id, func.sum(DailyUsage.lookups),
               func.sum(DailyUsage.registrations), func.sum(DailyUsage.quota_rejections))
        .where(DailyUsage.day == today).group_by(DailyUsage.member_id))}
    result = {}
    for member in session.scalars(select(Member).order_by(Member.name)):
        own = overrides.get(member.id)
        lookups_limit = (own.daily_lookups if own is not None and own.daily_lookups is not None
                         else default_lookups)
        registrations_limit = (own.daily_registrations
                               if own is not None and own.daily_registrations is not None
                               else default_registrations)
        lookups, registrations, rejected = used.get(member.id, (0, 0, 0))
        result[member.id] = QuotaUse(member.id, member.name, member.status, lookups,
                                     lookups_limit, registrations, registrations_limit, rejected)
    return result


# -- the overview's health panel --------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    open_disputes: int
    overdue_disputes: int
    verification: AuditVerification | None
    verification_stale: bool
    entries_since_verification: int
    quota_pressure: list[QuotaUse]            # near or over today, most used first
    without_hpke: list[Member]                # cannot receive the network key
    anomalies: list[stats.Anomaly] = field(default_factory=list)

    @property
    def chain_state(self) -> str:
        """``broken``, ``unverified``, ``stale`` or ``ok`` (for the card's colour)."""
        if self.verification is None:
            return "unverified"
        if not self.verification.ok:
            return "broken"
        return "stale" if self.verification_stale else "ok"


def health(session: Session, now: dt.datetime) -> Health:
    open_disputes = disputes.list_disputes(session, now)
    latest = verifications.latest(session)
    pressure = sorted((u for u in quota_use_today(session, now.date()).values()
                       if u.status == "active" and (u.near or u.over)),
                      key=lambda u: (-u.share, u.name))
    return Health(
        open_disputes=len(open_disputes),
        overdue_disputes=sum(1 for d in open_disputes if d["overdue"]),
        verification=latest,
        verification_stale=latest is not None and now - latest.at > STALE_VERIFICATION,
        entries_since_verification=(verifications.entries_since(session, latest)
                                    if latest is not None else 0),
        quota_pressure=pressure,
        without_hpke=list(session.scalars(select(Member).where(Member.hpke_public_key.is_(None))
                                          .order_by(Member.name))),
        anomalies=stats.volume_anomalies(session, now.date()))


# -- retention ------------------------------------------------------------------------------


def expiring(session: Session, now: dt.datetime, *, days: int = 30) -> dict[str, Any]:
    """Live reports that expire within ``days``: counts per type and UTC day.

    ``{"days": [date, ...], "by_type": {type: {date: n}}, "totals": {type: n}}``
    """
    end = now + dt.timedelta(days=days)
    day = _utc_day(session, Report.expires_at)
    rows = session.execute(
        select(Report.id_type, day, func.count())
        .where(Report.expires_at > now, Report.expires_at <= end)
        .group_by(Report.id_type, day)).all()
    by_type: dict[str, dict[dt.date, int]] = defaultdict(dict)
    for id_type, when, count in rows:
        when = when if isinstance(when, dt.date) else dt.date.fromisoformat(str(when))
        by_type[id_type][when] = int(count)
    first = now.date()
    return {
        "days": [first + dt.timedelta(days=i) for i in range(days + 1)],
        "by_type": {t: dict(by_type.get(t, {})) for t in ID_TYPES},
        "totals": {t: sum(by_type.get(t, {}).values()) for t in ID_TYPES},
    }


def _utc_day(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)  # SQLite stores naive UTC text

