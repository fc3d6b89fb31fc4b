from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Integer, String
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


class UsageFlush(Base):
    """A batch of Redis-buffered usage counts already folded into ``daily_usage``.

    Folding is idempotent through this id: a batch whose fold committed but whose
    buffer a dying worker did not drop is recognised and not added twice.
    """

    __tablename__ = "usage_flushes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    folded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
