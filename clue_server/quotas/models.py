from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from clue_server.db import Base


class MemberQuota(Base):
    """A council override of the daily quotas for one member (NULL: the default)."""

    __tablename__ = "member_quotas"

    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), primary_key=True)
    daily_lookups: Mapped[int | None] = mapped_column(Integer, nullable=True)
    daily_registrations: Mapped[int | None] = mapped_column(Integer, nullable=True)


class CouncilSetting(Base):
    """Council-wide settings changed at run time (quota defaults, retention maxima...)."""

    __tablename__ = "council_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[object] = mapped_column(JSON)


class QuotaUsage(Base):
    """What a member used of one daily quota on one UTC day: the counter quotas check.

    Look-ups: identifiers looked up (when Redis holds the look-up counters, only the
    registrations row lives here). Registrations: reports created.
    """

    __tablename__ = "quota_usage"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), primary_key=True)
    quota: Mapped[str] = mapped_column(String(16), primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger, default=0)
