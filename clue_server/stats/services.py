"""Usage statistics: daily counts per member and type, and one row per lookup that matched.

What is kept, and why it holds no innocent user's token: a lookup adds to
``daily_usage`` the number of identifiers looked up and the number that matched,
per UTC day, member and type. Each matched item adds one ``lookup_hits`` row naming
the reports it matched (reports the register holds anyway). An item that matched
nothing leaves only the +1 in the day's count: no token, no hash, no time.

The console reads these through the functions below; the API writes them in the
request's own transaction (the write and its count commit or roll back together).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import func, insert, or_, select
from sqlalchemy.orm import Session

from clue_server import metrics
from clue_server.members.models import MEMBER_STATUSES, Member
from clue_server.reports.models import Report
from clue_server.stats.models import DailyUsage, LookupHit

COUNTERS = ("lookups", "hits", "registrations", "quota_rejections")
#: The window a member's own lookup baseline is averaged over.
BASELINE_DAYS = 14
#: Below this many lookups in a day nobody is flagged, whatever the ratio.
DEFAULT_ANOMALY_FLOOR = 1000


# -- writing -------------------------------------------------------------------------------

def add_usage(session: Session, member_id: str, day: dt.date,
              increments: Mapping[str, Mapping[str, int]]) -> None:
    """Add to the day's counters: ``{id_type: {"lookups": n, "hits": m, ...}}``.

    One ``INSERT .. ON CONFLICT DO UPDATE`` (SQLite and PostgreSQL alike), so two
    workers counting at once both land.
    """
    rows = []
    for id_type, counts in sorted(increments.items()):
        unknown = set(counts) - set(COUNTERS)
        if unknown:
            raise ValueError(f"unknown usage counter(s): {sorted(unknown)}")
        if any(counts.values()):
            rows.append({"day": day, "member_id": member_id, "id_type": id_type,
                         **{name: int(counts.get(name, 0)) for name in COUNTERS}})
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(DailyUsage).values(rows)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(DailyUsage).values(rows)
    table = DailyUsage.__table__
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.day, table.c.member_id, table.c.id_type],
        set_={name: table.c[name] + statement.excluded[name] for name in COUNTERS})
    session.execute(statement)


def record_lookups(session: Session, member_id: str, items: Sequence[Any],
                   matched_report_ids: Sequence[Sequence[str]], *, now: dt.datetime) -> None:
    """Count a lookup batch and keep one ``LookupHit`` per matched item.

    ``items`` are ``lookups.services.LookupItem`` and ``matched_report_ids`` the ids of
    the reports each one matched (empty: no match), as ``lookups.services.match`` gives
    them. Only the counts and the ids of already-reported rows are written; the items'
    tokens never are.
    """
    counts: dict[str, Counter[str]] = {}
    hits = []
    for item, report_ids in zip(items, matched_report_ids, strict=True):
        counts.setdefault(item.id_type, Counter())["lookups"] += 1
        if report_ids:
            counts[item.id_type]["hits"] += 1
            hits.append({"at": now, "member_id": member_id, "id_type": item.id_type,
                         "report_ids": list(report_ids)})
    if hits:
        session.execute(insert(LookupHit), hits)
    add_usage(session, member_id, now.date(), counts)
    metrics.count_lookups({t: (c["lookups"], c["hits"]) for t, c in counts.items()})


def record_registrations(session: Session, member_id: str, id_types_created: Iterable[str], *,
                         now: dt.datetime) -> int:
    """Count the reports a registration created, per type; returns how many."""
    created = Counter(id_types_created)
    add_usage(session, member_id, now.date(),
              {t: {"registrations": n} for t, n in created.items()})
    metrics.count_registrations(created)
    return sum(created.values())


def record_rejection(session: Session, member_id: str, items_by_type: Mapping[str, int], *,
                     now: dt.datetime) -> None:
    """Count the items of a request refused for quota (per type)."""
    add_usage(session, member_id, now.date(),
              {t: {"quota_rejections": n} for t, n in items_by_type.items()})


# -- reading (console) ---------------------------------------------------------------------

class DaySeries(NamedTuple):
    day: dt.date
    registrations: int
    lookups: int
    hits: int


class ReportCount(NamedTuple):
    id_type: str
    category: str
    reports: int


class Anomaly(NamedTuple):
    member_id: str
    name: str
    day: dt.date
    lookups: int
    baseline: float
    ratio: float


class MemberActivity(NamedTuple):
    member_id: str
    name: str
    status: str
    last_active: dt.date | None
    lookups_30d: int
    hits_30d: int
    registrations_30d: int


def daily_series(session: Session, days: int = 90, *, today: dt.date | None = None
                 ) -> list[DaySeries]:
    """Network-wide totals per UTC day, oldest first, the last ``days`` days up to today.

    Returns ``[DaySeries(day, registrations, lookups, hits), ...]`` with exactly
    ``days`` entries; days without any activity are zeros.
    """
    today = today or dt.datetime.now(dt.UTC).date()
    start = today - dt.timedelta(days=days - 1)
    query = (select(DailyUsage.day, func.sum(DailyUsage.registrations),
                    func.sum(DailyUsage.lookups), func.sum(DailyUsage.hits))
             .where(DailyUsage.day >= start, DailyUsage.day <= today)
             .group_by(DailyUsage.day))
    found = {day: (int(r or 0), int(lk or 0), int(h or 0))
             for day, r, lk, h in session.execute(query)}
    return [DaySeries(day, *found.get(day, (0, 0, 0)))
            for day in (start + dt.timedelta(days=i) for i in range(days))]


def active_reports_by_type_and_category(session: Session, now: dt.datetime
                                        ) -> list[ReportCount]:
    """Reports that can match right now (not expired, not suspended), counted.

    Returns ``[ReportCount(id_type, category, reports), ...]`` sorted by type then
    category; only combinations with at least one report appear.
    """
    query = (select(Report.id_type, Report.category, func.count())
             .where(Report.expires_at > now, Report.suspended_at.is_(None))
             .group_by(Report.id_type, Report.category)
             .order_by(Report.id_type, Report.category))
    return [ReportCount(t, c, int(n)) for t, c, n in session.execute(query)]


def members_by_status(session: Session) -> dict[str, int]:
    """``{"active": n, "suspended": m}``: every known status, zero when none."""
    counts = dict.fromkeys(MEMBER_STATUSES, 0)
    for status, count in session.execute(select(Member.status, func.count())
                                         .group_by(Member.status)):
        counts[status] = int(count)
    return counts


def volume_anomalies(session: Session, today: dt.date, factor: float = 5.0,
                     min_baseline_days: int = 7, *, floor: int = DEFAULT_ANOMALY_FLOOR
                     ) -> list[Anomaly]:
    """Members whose lookups yesterday or today jumped far above their own baseline.

    The baseline is the member's mean daily lookups over the 14 days before
    yesterday, averaged over the days it was active; a member with fewer than
    ``min_baseline_days`` active days there has no baseline and is not judged. A day
    is flagged when its lookups exceed ``factor`` × baseline and are at least
    ``floor`` (so a member going from 3 to 40 lookups is not an alarm).

    Returns ``[Anomaly(member_id, name, day, lookups, baseline, ratio), ...]``,
    highest ratio first; a member can appear once for each of the two days.
    """
    yesterday = today - dt.timedelta(days=1)
    window_start = yesterday - dt.timedelta(days=BASELINE_DAYS)
    per_day = (select(DailyUsage.member_id, DailyUsage.day,
                      func.sum(DailyUsage.lookups).label("lookups"))
               .where(DailyUsage.day >= window_start, DailyUsage.day <= today)
               .group_by(DailyUsage.member_id, DailyUsage.day))
    history: dict[str, dict[dt.date, int]] = {}
    for member_id, day, lookups in session.execute(per_day):
        history.setdefault(member_id, {})[day] = int(lookups or 0)
    names = {mid: name for mid, name in session.execute(select(Member.id, Member.name))}
    found = []
    for member_id, days in history.items():
        baseline_days = [n for day, n in days.items() if day < yesterday and n > 0]
        if len(baseline_days) < min_baseline_days:
            continue
        baseline = sum(baseline_days) / len(baseline_days)
        for day in (yesterday, today):
            lookups = days.get(day, 0)
            if lookups >= floor and lookups > factor * baseline:
                found.append(Anomaly(member_id, names.get(member_id, member_id), day, lookups,
                                     round(baseline, 1), round(lookups / baseline, 1)))
    return sorted(found, key=lambda a: (-a.ratio, a.member_id, a.day))


def member_activity(session: Session, *, today: dt.date | None = None) -> list[MemberActivity]:
    """Every member with its last active day and its volumes over the last 30 days.

    ``last_active`` is the last UTC day with any lookup or registration (None if
    never). Returns ``[MemberActivity(member_id, name, status, last_active,
    lookups_30d, hits_30d, registrations_30d), ...]`` ordered by member name.
    """
    today = today or dt.datetime.now(dt.UTC).date()
    since = today - dt.timedelta(days=29)
    last = {mid: day for mid, day in session.execute(
        select(DailyUsage.member_id, func.max(DailyUsage.day))
        .where(or_(DailyUsage.lookups > 0, DailyUsage.registrations > 0))
        .group_by(DailyUsage.member_id))}
    volumes = {m: (int(lk or 0), int(h or 0), int(r or 0)) for m, lk, h, r in session.execute(
        select(DailyUsage.member_id, func.sum(DailyUsage.lookups), func.sum(DailyUsage.hits),
               func.sum(DailyUsage.registrations))
        .where(DailyUsage.day >= since, DailyUsage.day <= today)
        .group_by(DailyUsage.member_id))}
    return [MemberActivity(m.id, m.name, m.status, last.get(m.id), *volumes.get(m.id, (0, 0, 0)))
            for m in session.scalars(select(Member).order_by(Member.name))]
