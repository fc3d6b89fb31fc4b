from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clue_server.db import Base, UtcDateTime, utcnow


class SeenNonce(Base):
    """Request nonces seen recently (used when no Redis is configured)."""

    __tablename__ = "seen_nonces"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)


class IdempotencyRecord(Base):
    """The stored answer to a write made with an ``Idempotency-Key``."""

    __tablename__ = "idempotency_records"

    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
