from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from clue_server.db import Base, UtcDateTime, utcnow


class Report(Base):
    """One member's report of one identifier.

    The server never holds the token itself, only ``HMAC(pepper[v], token)``
    (``token_hash``) and, for e-mail, the same of the folded variant.
    """

    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("member_id", "id_type", "category", "token_hash",
                         name="uq_reports_member_type_category_token"),
        Index("ix_reports_token_hash", "token_hash"),
        # Only e-mail reports have a folded hash: the others need no entry in this index
        # (a look-up's ``folded_hash = ANY(..)`` implies NOT NULL, so it is used).
        Index("ix_reports_folded_hash", "folded_hash",
              postgresql_where=text("folded_hash IS NOT NULL"),
              sqlite_where=text("folded_hash IS NOT NULL")),
        Index("ix_reports_expires_at", "expires_at"),
        # Protocol v2: the reports behind an entry (clue_server.private.store.refresh).
        Index("ix_reports_entry", "oprf_version", "entry_id"),
        Index("ix_reports_folded_entry", "oprf_version", "folded_entry_id",
              postgresql_where=text("folded_entry_id IS NOT NULL"),
              sqlite_where=text("folded_entry_id IS NOT NULL")),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    id_type: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    key_version: Mapped[int] = mapped_column(Integer)
    pepper_version: Mapped[int] = mapped_column(Integer)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    folded_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    #: Set by the council when a reporter missed a dispute deadline: never matches.
    suspended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    #: A note only the reporter can read (AES-GCM under the member's own notes key).
    note: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    #: Protocol v2 (docs/private-lookups.md §5): the OPRF key version and the ids of the
    #: entry (exact) and, for an e-mail, of its folded entry. NULL until the report was
    #: registered (or re-registered) while the server held an OPRF key.
    oprf_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    entry_id: Mapped[bytes | None] = mapped_column(LargeBinary(16), nullable=True)
    folded_entry_id: Mapped[bytes | None] = mapped_column(LargeBinary(16), nullable=True)
