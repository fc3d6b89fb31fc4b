from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from clue_server.db import Base, UtcDateTime, utcnow


class DailyUsage(Base):
    """Per member, type and UTC day: counts only, never the looked-up tokens.

    Also the database quota counter when no Redis is configured.
    """

    __tablename__ = "daily_usage"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), primary_key=True)
    id_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    lookups: Mapped[int] = mapped_column(Integer, default=0)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    registrations: Mapped[int] = mapped_column(Integer, default=0)
    quota_rejections: Mapped[int] = mapped_column(Integer, default=0)


class LookupHit(Base):
    """One look-up that matched: which member, which type, which reports (already known)."""

    __tablename__ = "lookup_hits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    id_type: Mapped[str] = mapped_column(String(16))
    report_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
