"""Entries follow the reports behind them (docs/private-lookups.md §5, "Life cycle").

A registration computes each identifier's OPRF output (the server holds the token then)
and from it the entry's id and key; every later change to a report (withdrawn, expired,
suspended, disputed or no longer disputed) calls :func:`refresh` for the entries it
touches, which reseals their answers from the live reports (a fresh nonce and a new
``seq``) or leaves a tombstone when none is left. ``seq`` numbers come from the one
``entry_cursor`` row, whose lock orders changes by commit: a replica that read up to
``seq`` N never misses a smaller number committed after it looked.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session

from clue_client.private_lookups.entries import (
    Answer,
    EntryRef,
    SealedAnswerError,
    derive_email_entries,
    derive_entry,
    open_answer,
    oprf_input,
    seal_answer,
)
from clue_server.db import split_bytes_sql
from clue_server.disputes.models import Dispute, DisputeReport
from clue_server.keystore import ServerKeys
from clue_server.private.models import Entry, EntryCursor
from clue_server.quotas import settings as council
from clue_server.reports.models import Report

_CHUNK = 500  # ids per IN (...)
#: Tombstones older than this are purged (``purge-expired``); a replica cursor from
#: before the oldest kept one is answered 410 and the member downloads again.
TOMBSTONE_DAYS = 30
#: The council setting holding the newest purged tombstone's ``seq``: a cursor before it
#: may have missed a deletion.
TOMBSTONE_HORIZON = "private.tombstone_horizon"


@dataclass(frozen=True)
class Made:
    """A registered identifier's entries under one OPRF key version."""

    oprf_version: int
    id_type: str
    entry: EntryRef
    #: The e-mail's folded entry (its exact entry is bucketed by it), else None.
    folded: EntryRef | None

    @property
    def bucket(self) -> int:
        return bucket_of((self.folded or self.entry).entry_id)

    def new_entries(self) -> dict[bytes, tuple[bytes, int, str]]:
        """``entry_id -> (entry_key, bucket, id_type)`` for :func:`refresh`."""
        made = {self.entry.entry_id: (self.entry.key, self.bucket, self.id_type)}
        if self.folded is not None:
            made[self.folded.entry_id] = (self.folded.key, self.bucket, self.id_type)
        return made


def bucket_of(entry_id: bytes) -> int:
    return int.from_bytes(entry_id[:4], "big")


def make_entries(server_keys: ServerKeys, id_type: str, token: bytes,
                 folded_token: bytes | None) -> Made | None:
    """The identifier's entries under the newest OPRF key, or None: no OPRF key yet, or
    an e-mail without its folded token (its exact entry is bucketed by the folded one;
    the SDK always sends it)."""
    version = server_keys.oprf_version
    if version is None or (id_type == "email" and folded_token is None):
        return None
    key = server_keys.oprf_keys[version]
    if folded_token is not None:
        exact, folded = derive_email_entries(key.evaluate(oprf_input(folded_token)), token)
        return Made(version, id_type, exact, folded)
    return Made(version, id_type, derive_entry(key.evaluate(oprf_input(token)), "exact"), None)


def attach(session: Session, made_of: Mapping[str, Made]) -> None:
    """Record on existing reports (``report id -> entries``) the entries a re-registration
    computed: the migration path of reports stored before the OPRF key existed."""
    for report_id, made in made_of.items():
        session.execute(update(Report).where(Report.id == report_id).values(
            oprf_version=made.oprf_version, entry_id=made.entry.entry_id,
            folded_entry_id=made.folded.entry_id if made.folded else None))


def entries_of_reports(session: Session, report_ids: Iterable[str]
                       ) -> dict[int, set[bytes]]:
    """``oprf_version -> entry ids`` of the reports (read before they change or go)."""
    found: dict[int, set[bytes]] = defaultdict(set)
    ids = list(report_ids)
    for start in range(0, len(ids), _CHUNK):
        _add_entries(session, Report.id.in_(ids[start:start + _CHUNK]), found)
    return found


def entries_expiring(session: Session, now: dt.datetime) -> dict[int, set[bytes]]:
    """The entries of reports that have expired (``purge-expired`` refreshes them)."""
    found: dict[int, set[bytes]] = defaultdict(set)
    _add_entries(session, Report.expires_at <= now, found)
    return found


def _add_entries(session: Session, where: Any, found: dict[int, set[bytes]]) -> None:
    for version, entry_id, folded_id in session.execute(
            select(Report.oprf_version, Report.entry_id, Report.folded_entry_id).where(
                where, Report.oprf_version.is_not(None))):
        found[version].add(entry_id)
        if folded_id is not None:
            found[version].add(folded_id)


def refresh_all(session: Session, touched: Mapping[int, Collection[bytes]],
                now: dt.datetime) -> int:
    return sum(refresh(session, version, ids, now) for version, ids in touched.items())


def refresh(session: Session, oprf_version: int, entry_ids: Collection[bytes],
            now: dt.datetime, new: Mapping[bytes, tuple[bytes, int, str]] | None = None,
            fresh: Mapping[bytes, Answer] | None = None) -> int:
    """Bring the entries ``entry_ids`` in line with their live reports, in the session's
    transaction; ``new`` gives the key, bucket and type of entries a registration may
    be creating, and ``fresh`` their answers should they not exist yet (then the
    registration's own reports are all there is: no need to read them back). Returns
    how many entries changed (each took a new ``seq``).

    The ``entry_cursor`` row is locked first, so concurrent changes to the same entry
    (two members registering one identifier) run one after the other, each seeing what
    the other committed. Rows are read and written as plain statements: the ORM's unit
    of work cost a registration of 1,000 most of its time.
    """
    new = new or {}
    ids = sorted(set(entry_ids) | set(new))
    if not ids:
        return 0
    fresh = fresh or {}
    last = _lock_cursor(session)
    stored = _stored_entries(session, oprf_version, ids)
    unknown = [i for i in ids if i in stored or i not in fresh]
    answers = {**{i: fresh[i] for i in ids if i not in stored and i in fresh},
               **(_answers(session, oprf_version, unknown, now) if unknown else {})}
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for entry_id in ids:
        answer, row = answers.get(entry_id), stored.get(entry_id)
        if answer is None:
            if row is not None and row.deleted_at is None:
                last += 1
                updates.append({"v": oprf_version, "id": entry_id, "new_sealed": None,
                                "new_seq": last, "new_deleted_at": now})
            continue
        key = row.entry_key if row is not None else new.get(entry_id, (None,))[0]
        if key is None:  # reports name an entry the table lacks: cannot happen
            raise RuntimeError("an entry's reports exist but its key is unknown")
        ref = EntryRef(entry_id, key)
        if row is not None and row.deleted_at is None and row.sealed is not None \
                and _opens_to(ref, oprf_version, row.sealed) == answer:
            continue  # unchanged: no new seq, no churn in the replica
        last += 1
        sealed = seal_answer(ref, oprf_version, answer)
        if row is None:
            _key, bucket, id_type = new[entry_id]
            inserts.append({"oprf_version": oprf_version, "entry_id": entry_id,
                            "bucket": bucket, "id_type": id_type, "entry_key": key,
                            "sealed": sealed, "seq": last, "deleted_at": None})
        else:
            updates.append({"v": oprf_version, "id": entry_id, "new_sealed": sealed,
                            "new_seq": last, "new_deleted_at": None})
    if not inserts and not updates:
        return 0
    if inserts:
        _insert_entries(session, inserts)
    if updates:
        session.execute(_UPDATE_ENTRY, updates)
    session.execute(update(_CURSOR).where(_CURSOR.c.id == 1).values(seq=last))
    return len(inserts) + len(updates)


_ENTRIES = Entry.__table__
_CURSOR = EntryCursor.__table__
_UPDATE_ENTRY = (update(_ENTRIES)
                 .where(_ENTRIES.c.oprf_version == bindparam("v"),
                        _ENTRIES.c.entry_id == bindparam("id"))
                 .values(sealed=bindparam("new_sealed"), seq=bindparam("new_seq"),
                         deleted_at=bindparam("new_deleted_at")))


# Rows travel as a few concatenated parameters that PostgreSQL splits itself, as in
# clue_server.reports.bulk: psycopg adapts a list element by element, which for a
# thousand rows costs more than the insert.
_PG_INSERT = (
    "INSERT INTO entries (oprf_version, entry_id, bucket, id_type, entry_key, sealed, seq) "
    "SELECT %(v)s, substring(%(ids)b::bytea FROM n::integer * 16 - 15 FOR 16), b, t, "
    "substring(%(keys)b::bytea FROM n::integer * 32 - 31 FOR 32), "
    "substring(%(sealed)b::bytea FROM n::integer * 38 - 37 FOR 38), q "
    "FROM unnest(string_to_array(%(buckets)s, ',')::bigint[], "
    "string_to_array(%(types)s, ','), string_to_array(%(seqs)s, ',')::bigint[]) "
    "WITH ORDINALITY AS r(b, t, q, n)")


_PG_STORED = ("SELECT entry_id, entry_key, sealed, deleted_at FROM entries "  # noqa: S608
              "WHERE oprf_version = %(v)s AND entry_id = ANY("
              + split_bytes_sql("%(ids)b::bytea", 16) + ")")


def _stored_entries(session: Session, oprf_version: int, ids: list[bytes]) -> dict[bytes, Any]:
    """``entry_id -> (entry_id, entry_key, sealed, deleted_at)`` of those stored. On
    PostgreSQL the ids travel as one concatenated parameter: as SQLAlchemy's expanding
    IN, a thousand of them cost a registration 60 ms of binding."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        with conn.connection.driver_connection.cursor() as cursor:
            cursor.execute(_PG_STORED, {"v": oprf_version, "ids": b"".join(ids)},
                           prepare=True)
            return {row[0]: _Stored(*row) for row in cursor.fetchall()}
    return {row.entry_id: row for start in range(0, len(ids), _CHUNK)
            for row in session.execute(select(
                _ENTRIES.c.entry_id, _ENTRIES.c.entry_key, _ENTRIES.c.sealed,
                _ENTRIES.c.deleted_at).where(
                _ENTRIES.c.oprf_version == oprf_version,
                _ENTRIES.c.entry_id.in_(ids[start:start + _CHUNK])))}


class _Stored(NamedTuple):
    entry_id: bytes
    entry_key: bytes
    sealed: bytes | None
    deleted_at: dt.datetime | None


def _insert_entries(session: Session, rows: list[dict[str, Any]]) -> None:
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        session.execute(insert(_ENTRIES), rows)
        return
    with conn.connection.driver_connection.cursor() as cursor:
        cursor.execute(_PG_INSERT, {
            "v": rows[0]["oprf_version"],
            "ids": b"".join(r["entry_id"] for r in rows),
            "keys": b"".join(r["entry_key"] for r in rows),
            "sealed": b"".join(r["sealed"] for r in rows),
            "buckets": ",".join(str(r["bucket"]) for r in rows),
            "types": ",".join(r["id_type"] for r in rows),
            "seqs": ",".join(str(r["seq"]) for r in rows)}, prepare=True)


def _lock_cursor(session: Session) -> int:
    """Lock the ``entry_cursor`` row (held to commit); the last ``seq`` handed out."""
    last = session.execute(update(_CURSOR).where(_CURSOR.c.id == 1).values(
        seq=_CURSOR.c.seq).returning(_CURSOR.c.seq)).scalar()
    if last is None:  # the row was deleted (a test emptying every table): start after
        # the largest number in use
        last = int(session.scalar(select(func.max(_ENTRIES.c.seq))) or 0)
        session.execute(insert(_CURSOR).values(id=1, seq=last))
    return int(last)


def _opens_to(ref: EntryRef, oprf_version: int, sealed: bytes) -> Answer | None:
    try:
        return open_answer(ref, oprf_version, sealed)
    except SealedAnswerError:
        return None


def _answers(session: Session, oprf_version: int, ids: list[bytes], now: dt.datetime
             ) -> dict[bytes, Answer]:
    """Each entry's answer from its live reports (a folded entry: every report of the
    folded form), as a v1 look-up would give it; entries with none are absent."""
    disputed = exists().where(DisputeReport.report_id == Report.id,
                              Dispute.id == DisputeReport.dispute_id, Dispute.status == "open")
    rows: dict[bytes, list[Any]] = defaultdict(list)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        for row in session.execute(
                select(Report.id, Report.entry_id, Report.folded_entry_id, Report.member_id,
                       Report.category, Report.created_at, disputed.label("disputed"))
                .where(Report.oprf_version == oprf_version,
                       or_(Report.entry_id.in_(chunk),
                           and_(Report.folded_entry_id.is_not(None),
                                Report.folded_entry_id.in_(chunk))),
                       Report.expires_at > now, Report.suspended_at.is_(None))):
            wanted = set(chunk)
            for entry_id in (row.entry_id, row.folded_entry_id):
                if entry_id in wanted:
                    rows[entry_id].append(row)
    return {entry_id: Answer.of(
        categories={r.category for r in found},
        reporters=len({r.member_id for r in found}),
        first_reported=min(r.created_at for r in found).date(),
        last_reported=max(r.created_at for r in found).date(),
        disputed=any(bool(r.disputed) for r in found)) for entry_id, found in rows.items()}


def purge_tombstones(session: Session, now: dt.datetime) -> int:
    """Drop tombstones older than ``TOMBSTONE_DAYS`` and remember the newest dropped
    ``seq`` (cursors before it are answered 410). Returns how many went."""
    cutoff = now - dt.timedelta(days=TOMBSTONE_DAYS)
    newest = session.scalar(select(func.max(Entry.seq)).where(
        Entry.deleted_at.is_not(None), Entry.deleted_at <= cutoff))
    if newest is None:
        return 0
    gone = session.execute(delete(Entry).where(Entry.deleted_at.is_not(None),
                                               Entry.deleted_at <= cutoff)).rowcount
    council.set_int(session, TOMBSTONE_HORIZON, int(newest), minimum=0,
                    maximum=2**62)
    return int(gone or 0)

