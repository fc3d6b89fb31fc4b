from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clue_server.db import Base, UtcDateTime, utcnow

MEMBER_STATUSES = ("active", "suspended")


class Member(Base):
    __tablename__ = "members"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    #: X25519 public key that network-key versions are wrapped to (HPKE).
    hpke_public_key: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    keys: Mapped[list[MemberKey]] = relationship(back_populates="member",
                                                 order_by="MemberKey.created_at")


class MemberKey(Base):
    """A member's Ed25519 request-signing public key; ``id`` is the RFC 9421 keyid."""

    __tablename__ = "member_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)

    member: Mapped[Member] = relationship(back_populates="keys")
