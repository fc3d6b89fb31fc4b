"""Usage statistics: daily counts per member and identifier type.

What is kept, and why it holds no innocent user's token: a look-up adds to
``daily_usage`` the number of identifiers looked up and the number that matched, per
UTC day, member and type. Nothing else: no token, no hash, no time, and no row per
request (the table grows by at most members x types rows a day). Registrations add the
number of reports created; refused items are counted as ``quota_rejections``.

The counts are written by ``quotas.counters`` together with the quota check (directly,
or through the Redis buffer); the console reads them through the functions below.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import NamedTuple

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from clue_server.members.models import MEMBER_STATUSES, Member
from clue_server.quotas import counters
from clue_server.reports.models import Report
from clue_server.stats.models import DailyUsage

COUNTERS = counters.USAGE_COLUMNS
#: The window a member's own lookup baseline is averaged over.
BASELINE_DAYS = 14
#: Below this many lookups in a day nobody is flagged, whatever the ratio.
DEFAULT_ANOMALY_FLOOR = 1000


# -- writing -------------------------------------------------------------------------------

def add_usage(session: Session, member_id: str, day: dt.date,
              increments: Mapping[str, Mapping[str, int]]) -> None:
    """Add to the day's counters in the session's transaction:
    ``{id_type: {"lookups": n, "hits": m, ...}}``."""
    for counts in increments.values():
        unknown = set(counts) - set(COUNTERS)
        if unknown:
            raise ValueError(f"unknown usage counter(s): {sorted(unknown)}")
    counters.add_usage(session.connection(), member_id, day, increments)


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
