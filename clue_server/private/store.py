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
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
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
        for version, entry_id, folded_id in session.execute(
                select(Report.oprf_version, Report.entry_id, Report.folded_entry_id).where(
                    Report.id.in_(ids[start:start + _CHUNK]),
                    Report.oprf_version.is_not(None))):
            found[version].add(entry_id)
            if folded_id is not None:
                found[version].add(folded_id)
    return found


def entries_expiring(session: Session, now: dt.datetime) -> dict[int, set[bytes]]:
    """The entries of reports that have expired (``purge-expired`` refreshes them)."""
    return entries_of_reports(session, session.scalars(
        select(Report.id).where(Report.expires_at <= now, Report.oprf_version.is_not(None))))


def refresh_all(session: Session, touched: Mapping[int, Collection[bytes]],
                now: dt.datetime) -> int:
    return sum(refresh(session, version, ids, now) for version, ids in touched.items())


def refresh(session: Session, oprf_version: int, entry_ids: Collection[bytes],
            now: dt.datetime, new: Mapping[bytes, tuple[bytes, int, str]] | None = None
            ) -> int:
    """Bring the entries ``entry_ids`` in line with their live reports, in the session's
    transaction; ``new`` gives the key, bucket and type of entries a registration may
    be creating. Returns how many entries changed (each took a new ``seq``)."""
    new = new or {}
    ids = sorted(set(entry_ids) | set(new))
    if not ids:
        return 0
    answers = _answers(session, oprf_version, ids, now)
    stored = {row.entry_id: row for start in range(0, len(ids), _CHUNK)
              for row in session.scalars(select(Entry).where(
                  Entry.oprf_version == oprf_version,
                  Entry.entry_id.in_(ids[start:start + _CHUNK])))}
    changes: list[tuple[bytes, Any]] = []
    for entry_id in ids:
        answer, row = answers.get(entry_id), stored.get(entry_id)
        if answer is None:
            if row is not None and row.deleted_at is None:
                changes.append((entry_id, None))
            continue
        key = row.entry_key if row is not None else new.get(entry_id, (None,))[0]
        if key is None:  # reports name an entry the table lacks: cannot happen
            raise RuntimeError("an entry's reports exist but its key is unknown")
        ref = EntryRef(entry_id, key)
        if row is not None and row.deleted_at is None and row.sealed is not None \
                and _opens_to(ref, oprf_version, row.sealed) == answer:
            continue  # unchanged: no new seq, no churn in the replica
        changes.append((entry_id, seal_answer(ref, oprf_version, answer)))
    if not changes:
        return 0
    last = _take_seq(session, len(changes))
    for seq, (entry_id, sealed) in enumerate(changes, start=last - len(changes) + 1):
        row = stored.get(entry_id)
        if row is None:
            key, bucket, id_type = new[entry_id]
            session.add(Entry(oprf_version=oprf_version, entry_id=entry_id, bucket=bucket,
                              id_type=id_type, entry_key=key, sealed=sealed, seq=seq))
        else:
            row.sealed, row.seq = sealed, seq
            row.deleted_at = None if sealed is not None else now
    session.flush()
    return len(changes)


def _take_seq(session: Session, n: int) -> int:
    """Reserve ``n`` change numbers; the last of them. The row's lock is held to commit."""
    last = session.execute(update(EntryCursor).where(EntryCursor.id == 1).values(
        seq=EntryCursor.seq + n).returning(EntryCursor.seq)).scalar()
    if last is None:  # the row was deleted (a test emptying every table): start after
        # the largest number in use
        last = int(session.scalar(select(func.max(Entry.seq))) or 0) + n
        session.add(EntryCursor(id=1, seq=last))
        session.flush()
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

