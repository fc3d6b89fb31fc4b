"""Read-only queries that only the console needs (the rest come from the domain services).

Everything here reads tables; nothing writes.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clue_server.audit.models import AuditEvent
from clue_server.config import ID_TYPES
from clue_server.reports.models import Report


def recent_audit(session: Session, *, limit: int = 100,
                 before: int | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    return list(session.scalars(query))


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

