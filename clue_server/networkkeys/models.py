from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from clue_server.db import Base, UtcDateTime, utcnow


class NetworkKeyVersion(Base):
    """A network-key version the server has heard of (never the key itself).

    ``custodian_id`` is the member whose upload created the version: only that member
    may upload envelopes for it (``services.upload_envelopes``). NULL only for a
    version the council retired before anyone shared it, or one known from before
    custodians were recorded with no envelope left to name one (the first upload then
    binds it).
    """

    __tablename__ = "network_key_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16), default="active")
    custodian_id: Mapped[str | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class NetworkKeyEnvelope(Base):
    """A network-key version sealed (HPKE) to one member; opaque bytes to the server."""

    __tablename__ = "network_key_envelopes"
    __table_args__ = (UniqueConstraint("version", "recipient_id",
                                       name="uq_network_key_envelopes_version_recipient"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(ForeignKey("network_key_versions.version"))
    recipient_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    sender_key_id: Mapped[str] = mapped_column(ForeignKey("member_keys.id"))
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
