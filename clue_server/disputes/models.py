from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clue_server.db import Base, UtcDateTime, utcnow

DISPUTE_STATUSES = ("open", "resolved", "expired")
ANSWERS = ("withdraw", "uphold")


class Dispute(Base):
    """A data subject says they were wrongly registered; their provider (a member) files it.

    The disputed identifier is held like a report: only as ``HMAC(pepper, token)``.
    """

    __tablename__ = "disputes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    opened_by: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    id_type: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    pepper_version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    opened_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    deadline: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class DisputeReport(Base):
    """One matching report a dispute was routed to, and its reporter's answer."""

    __tablename__ = "dispute_reports"

    dispute_id: Mapped[str] = mapped_column(ForeignKey("disputes.id"), primary_key=True)
    # Indexed on its own: a look-up asks, per matched report, whether a dispute covers it.
    report_id: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)
    reporter_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    answer: Mapped[str | None] = mapped_column(String(16), nullable=True)
    answer_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
