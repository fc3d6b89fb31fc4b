from __future__ import annotations

import datetime as dt

from sqlalchemy import DDL, BigInteger, Index, Integer, LargeBinary, String, event, text
from sqlalchemy.orm import Mapped, mapped_column

from clue_server.db import Base, UtcDateTime


class Entry(Base):
    """One identifier's entry in the register (docs/private-lookups.md §5).

    Everything here but ``entry_key`` is what members see (buckets, the replica).
    ``entry_key`` lets the server reseal the answer when the reports behind it change
    without ever holding the token or the OPRF output again.
    """

    __tablename__ = "entries"
    __table_args__ = (
        # A bucket is read from this index alone (PostgreSQL: an index-only scan): its
        # entries lie together here, while their rows are scattered over the table. At
        # 10 M entries that is 0.3 ms instead of 28 ms of reading ~150 table pages.
        Index("ix_entries_bucket", "oprf_version", "bucket",
              postgresql_include=["entry_id", "sealed"],
              postgresql_where=text("deleted_at IS NULL"),
              sqlite_where=text("deleted_at IS NULL")),
        Index("ix_entries_seq", "oprf_version", "seq"),
    )

    oprf_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    #: The first 32 bits of the id that places the entry in a bucket (its own, or for an
    #: e-mail's exact entry its folded sibling's), as an unsigned integer: a bucket of
    #: ``b`` bits is one range scan.
    bucket: Mapped[int] = mapped_column(BigInteger)
    id_type: Mapped[str] = mapped_column(String(16))
    entry_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    #: ``nonce || AES-256-GCM(answer)``, 38 bytes; NULL once deleted.
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary(38), nullable=True)
    #: The change cursor: set from ``entry_cursor`` on every change (the replica pages by it).
    seq: Mapped[int] = mapped_column(BigInteger)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class EntryCursor(Base):
    """One row: the last ``seq`` handed out. Taking numbers updates this row, whose lock
    orders every change to entries by commit, so a replica that has read up to ``seq``
    never misses a smaller one committed later."""

    __tablename__ = "entry_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)


# Its one row exists from the start (migration 0008 inserts it; so does create_all).
event.listen(EntryCursor.__table__, "after_create",
             DDL("INSERT INTO entry_cursor (id, seq) VALUES (1, 0)"))
