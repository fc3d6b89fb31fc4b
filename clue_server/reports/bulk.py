"""A registration's rows, read and written in bulk on the session's own DB-API connection.

Through SQLAlchemy a 1,000-row ``INSERT .. RETURNING`` is a 1,000-row VALUES list that
psycopg re-parses on every request (its query cache skips texts that long): most of a
registration's CPU. On PostgreSQL the rows travel instead into one fixed statement,
prepared once, as a handful of parameters the server splits itself: the 32-byte hashes
concatenated into one ``bytea``, the short texts and numbers joined with commas (psycopg
adapts a Python list element by element, which for 1,000 rows costs more than the
insert). On SQLite, which has no arrays, one cached single-row statement runs per row.
Both run inside the caller's transaction, so the batch stays all or nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection

from clue_server.db import from_sqlite_time, split_bytes_sql, sqlite_time


class Existing(NamedTuple):
    """A report the member already has (the columns ``_report_json`` needs)."""

    id: str
    id_type: str
    category: str
    key_version: int
    token_hash: bytes
    note: bytes | None
    created_at: dt.datetime
    expires_at: dt.datetime
    suspended_at: dt.datetime | None
    oprf_version: int | None
    entry_id: bytes | None
    folded_entry_id: bytes | None


_COLUMNS = ("id, id_type, category, key_version, token_hash, note, created_at, expires_at, "
            "suspended_at, oprf_version, entry_id, folded_entry_id")
_INSERT_COLUMNS = ("id", "member_id", "id_type", "category", "key_version", "pepper_version",
                   "token_hash", "folded_hash", "created_at", "expires_at", "note",
                   "oprf_version", "entry_id", "folded_entry_id")
_ZERO_HASH = bytes(32)  # stands for "no folded hash" in the concatenation
_ZERO_ID = bytes(16)  # and for "no entry id"
_PG_INSERT = (
    f"INSERT INTO reports ({', '.join(_INSERT_COLUMNS)}) "  # noqa: S608 - constants only
    "SELECT v.id, %(member_id)s, v.id_type, v.category, v.key_version, %(pepper)s, "
    "substring(%(hashes)b::bytea FROM v.n::integer * 32 - 31 FOR 32), "
    "NULLIF(substring(%(folded)b::bytea FROM v.n::integer * 32 - 31 FOR 32), %(zero)b), "
    "%(created)s, %(created)s + make_interval(secs => v.days * 86400), v.note, "
    "NULLIF(v.oprf, 0), "
    "NULLIF(substring(%(entries)b::bytea FROM v.n::integer * 16 - 15 FOR 16), %(zero_id)b), "
    "NULLIF(substring(%(folded_entries)b::bytea FROM v.n::integer * 16 - 15 FOR 16), "
    "%(zero_id)b) "
    "FROM unnest(string_to_array(%(ids)s, ','), string_to_array(%(types)s, ','), "
    "string_to_array(%(categories)s, ','), string_to_array(%(versions)s, ',')::integer[], "
    "string_to_array(%(days)s, ',')::integer[], "
    "COALESCE(%(notes)b::bytea[], '{}'::bytea[]), string_to_array(%(oprf)s, ',')::integer[]) "
    "WITH ORDINALITY AS v(id, id_type, category, key_version, days, note, oprf, n) "
    "ON CONFLICT DO NOTHING RETURNING id")
# By the hashes' own index, whatever the planner believes of the member: with
# ``member_id = $1`` beside the hashes, a member new since the last ANALYZE looks like
# one row, and PostgreSQL walked its whole import through ix_reports_member_id testing
# each row against the 1,000 hashes (946 ms for a member of 30,000 reports, against
# 10 ms). The MATERIALIZED fence keeps the member test out of the index scan; rows of
# other members with the same hash (a few) are dropped after it.
_PG_HASHES = split_bytes_sql("%(hashes)b::bytea", 32)
_PG_EXISTING = (f"WITH h AS MATERIALIZED (SELECT member_id, {_COLUMNS} FROM reports "  # noqa: S608
                f"WHERE token_hash = ANY({_PG_HASHES})) "
                f"SELECT {_COLUMNS} FROM h WHERE member_id = %(member_id)s")
_SQLITE_ROWS = 200  # rows per INSERT: 2,800 parameters, well under SQLite's limit


@functools.cache
def _sqlite_insert(rows: int) -> str:
    row = f"({', '.join('?' * len(_INSERT_COLUMNS))})"
    return (f"INSERT INTO reports ({', '.join(_INSERT_COLUMNS)}) "  # noqa: S608 - constants
            f"VALUES {', '.join([row] * rows)} ON CONFLICT DO NOTHING RETURNING id")
_SQLITE_CHUNK = 500  # bound the number of ? in one IN (...)


def _driver(conn: Connection) -> Any:
    return conn.connection.driver_connection


def existing(conn: Connection, member_id: str, hashes: Sequence[bytes]
             ) -> dict[tuple[str, str, bytes], Existing]:
    """The member's reports whose token hash is one of ``hashes``, by (type, category,
    hash)."""
    found: dict[tuple[str, str, bytes], Existing] = {}
    if not hashes:
        return found
    cursor = _driver(conn).cursor()
    try:
        if conn.dialect.name == "postgresql":
            cursor.execute(_PG_EXISTING, {"member_id": member_id,
                                          "hashes": b"".join(hashes)}, prepare=True)
            rows = [Existing(*row) for row in cursor.fetchall()]
        else:
            rows = []
            for start in range(0, len(hashes), _SQLITE_CHUNK):
                chunk = list(hashes[start:start + _SQLITE_CHUNK])
                # By the hashes' own index: SQLite's planner, without statistics, would
                # walk every report of the member through the unique index instead.
                cursor.execute(f"SELECT {_COLUMNS} FROM reports "  # noqa: S608
                               "INDEXED BY ix_reports_token_hash WHERE token_hash IN "
                               f"({', '.join('?' * len(chunk))}) AND member_id = ?",
                               [*chunk, member_id])
                rows += [Existing(*row[:6], from_sqlite_time(row[6]),
                                  from_sqlite_time(row[7]),
                                  from_sqlite_time(row[8]) if row[8] else None, *row[9:])
                         for row in cursor.fetchall()]
    finally:
        cursor.close()
    for row in rows:
        found[(row.id_type, row.category, row.token_hash)] = row
    return found


def insert(conn: Connection, rows: Sequence[dict[str, Any]], *, member_id: str,
           pepper_version: int, created_at: dt.datetime, expires_in_days: Sequence[int]
           ) -> set[str]:
    """Insert the rows that do not collide with a stored one; the ids inserted.

    Every row has ``member_id``, ``pepper_version`` and ``created_at`` as given, and
    expires ``expires_in_days`` (one per row) days after ``created_at``; its
    ``oprf_version``, ``entry_id`` and ``folded_entry_id`` may be None.
    """
    if not rows:
        return set()
    cursor = _driver(conn).cursor()
    try:
        if conn.dialect.name == "postgresql":
            notes = [row["note"] for row in rows]
            cursor.execute(_PG_INSERT, {
                "member_id": member_id, "pepper": pepper_version, "created": created_at,
                "ids": ",".join(row["id"] for row in rows),
                "types": ",".join(row["id_type"] for row in rows),
                "categories": ",".join(row["category"] for row in rows),
                "versions": ",".join(str(row["key_version"]) for row in rows),
                "days": ",".join(str(days) for days in expires_in_days),
                "hashes": b"".join(row["token_hash"] for row in rows),
                "folded": b"".join(row["folded_hash"] or _ZERO_HASH for row in rows),
                "zero": _ZERO_HASH,
                "notes": notes if any(note is not None for note in notes) else None,
                "oprf": ",".join(str(row["oprf_version"] or 0) for row in rows),
                "entries": b"".join(row["entry_id"] or _ZERO_ID for row in rows),
                "folded_entries": b"".join(row["folded_entry_id"] or _ZERO_ID for row in rows),
                "zero_id": _ZERO_ID,
            }, prepare=True)
            return {row[0] for row in cursor.fetchall()}
        inserted: set[str] = set()
        for start in range(0, len(rows), _SQLITE_ROWS):
            chunk = rows[start:start + _SQLITE_ROWS]
            values = [sqlite_time(row[c]) if c in ("created_at", "expires_at") else row[c]
                      for row in chunk for c in _INSERT_COLUMNS]
            cursor.execute(_sqlite_insert(len(chunk)), values)
            inserted.update(found[0] for found in cursor.fetchall())
        return inserted
    finally:
        cursor.close()
