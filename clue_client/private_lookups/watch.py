"""`clue watch`: a member's own customers as evaluated entries, matched against deltas.

A member evaluates its customer list once (every identifier is one counted OPRF
evaluation, docs/private-lookups.md §9) and keeps, per customer identifier, the entry's
id and key and the member's own reference for it (an account number, never sent
anywhere). Every delta the replica applies is then matched locally: a ``put`` of a
watched id is a report (or a change to one) about that customer, a ``delete`` means
the last report about it is gone. The server never learns what is watched.

>>> import datetime as dt
>>> from clue_client.private_lookups.entries import seal_answer
>>> entry = EntryRef(bytes(16), bytes(32))
>>> watch = WatchList.build([(entry, "acct-1", "phone", "exact")], oprf_version=1)
>>> answer = Answer(("phishing",), 1, dt.date(2025, 1, 2), dt.date(2025, 1, 2), False)
>>> delta = Delta(1, 0, 5, 1700000000, False, ((bytes(16), seal_answer(entry, 1, answer)),), ())
>>> [(a.event, a.ref, a.answer.categories) for a in watch.match(delta)]
[('reported', 'acct-1', ('phishing',))]
"""

from __future__ import annotations

import itertools
import json
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from clue_client.private_lookups.entries import (
    ENTRY_KEY_BYTES,
    KINDS,
    Answer,
    EntryRef,
    open_answer,
)
from clue_client.private_lookups.idtable import ID_BYTES, IdTable
from clue_client.private_lookups.replica import Delta, DeltaError, Replica

__all__ = ["Alert", "WatchList", "write_atomically"]

_ROW = struct.Struct(">I")  # the customer's row in the member's own list
_VALUE_BYTES = ENTRY_KEY_BYTES + _ROW.size
_MAGIC = b"CLUEWL\x01"
_FILE = struct.Struct(">7sIQ")  # magic and format, oprf_version, count


@dataclass(frozen=True)
class Alert:
    """A watched customer identifier changed in the register.

    ``event`` is ``reported`` (first seen), ``updated`` (seen before, answer changed)
    or ``cleared`` (no active report any more; ``answer`` is None).
    """

    event: str
    ref: str
    id_type: str
    kind: str
    answer: Answer | None
    cursor: int
    issued_at: int

    def to_json(self) -> str:
        """One line of the JSON-lines alert file."""
        answer = self.answer
        return json.dumps({
            "event": self.event, "ref": self.ref, "type": self.id_type,
            "match": self.kind,
            "categories": list(answer.categories) if answer else [],
            "reporters": answer.reporters if answer else 0,
            "first_reported": answer.first_reported.isoformat() if answer else None,
            "last_reported": answer.last_reported.isoformat() if answer else None,
            "disputed": answer.disputed if answer else False,
            "cursor": self.cursor, "issued_at": self.issued_at,
        }, separators=(",", ":"), sort_keys=True)


class WatchList:
    """The member's evaluated customer identifiers, keyed by entry id."""

    __slots__ = ("_rows", "_seen", "_table", "oprf_version")

    def __init__(self, table: IdTable, rows: list[tuple[str, str, str]],
                 oprf_version: int) -> None:
        self._table = table
        self._rows = rows  # (ref, id_type, kind) per row
        self._seen: set[bytes] = set()
        self.oprf_version = oprf_version

    @classmethod
    def build(cls, entries: Iterable[tuple[EntryRef, str, str, str]],
              oprf_version: int) -> WatchList:
        """From ``(entry, ref, id_type, kind)`` tuples; two customers sharing one
        identifier keep the first reference."""
        rows: list[tuple[str, str, str]] = []
        records: dict[bytes, bytes] = {}
        for entry, ref, id_type, kind in entries:
            if kind not in KINDS:
                raise ValueError(f"kind must be one of {KINDS}")
            if entry.entry_id not in records:
                records[entry.entry_id] = entry.key + _ROW.pack(len(rows))
                rows.append((ref, id_type, kind))
        return cls(IdTable.build(records.items(), _VALUE_BYTES), rows, oprf_version)

    def __len__(self) -> int:
        return len(self._table)

    def _alert(self, entry_id: bytes, sealed: bytes | None, cursor: int,
               issued_at: int) -> Alert | None:
        value = self._table.get(entry_id)
        if value is None:
            return None
        ref, id_type, kind = self._rows[_ROW.unpack(value[ENTRY_KEY_BYTES:])[0]]
        if sealed is None:
            if entry_id not in self._seen:
                return None  # never reported while watched: nothing to clear
            self._seen.discard(entry_id)
            return Alert("cleared", ref, id_type, kind, None, cursor, issued_at)
        answer = open_answer(EntryRef(entry_id, value[:ENTRY_KEY_BYTES]), self.oprf_version,
                             sealed)
        event = "updated" if entry_id in self._seen else "reported"
        self._seen.add(entry_id)
        return Alert(event, ref, id_type, kind, answer, cursor, issued_at)

    def match(self, delta: Delta) -> list[Alert]:
        """The alerts ``delta`` raises, in the delta's order (puts, then deletes)."""
        if delta.oprf_version != self.oprf_version:
            raise DeltaError("delta is for another OPRF key version")
        alerts = []
        for entry_id, sealed in delta.puts:
            alert = self._alert(entry_id, sealed, delta.to, delta.issued_at)
            if alert:
                alerts.append(alert)
        for entry_id in delta.deletes:
            alert = self._alert(entry_id, None, delta.to, delta.issued_at)
            if alert:
                alerts.append(alert)
        return alerts

    def match_replica(self, replica: Replica) -> list[Alert]:
        """The alerts that bring the watch up to ``replica``: run once after onboarding,
        after adding customers, or after a full re-download, then :meth:`match` each
        delta. A watched identifier in the replica and not yet seen is ``reported``; one
        seen before and gone from the replica is ``cleared``; one seen before and still
        there raises nothing (whether it changed meanwhile is not known)."""
        if replica.oprf_version != self.oprf_version:
            raise DeltaError("replica is for another OPRF key version")
        alerts = []
        for entry_id, _value in self._table.items():
            sealed = replica.sealed(entry_id)
            if (sealed is None) == (entry_id in self._seen):
                alert = self._alert(entry_id, sealed, replica.cursor, replica.issued_at)
                if alert:
                    alerts.append(alert)
        return alerts

    # -- keeping it between runs -----------------------------------------------------------

    @property
    def seen(self) -> frozenset[bytes]:
        """The watched ids reported so far (an alert raised, not yet cleared): kept by
        the caller between runs and given back with :meth:`restore_seen`."""
        return frozenset(self._seen)

    def restore_seen(self, ids: Iterable[bytes]) -> None:
        self._seen = {entry_id for entry_id in ids if entry_id in self._table}

    def entries(self) -> Iterator[tuple[EntryRef, str, str, str]]:
        """Every watched entry as :meth:`build` takes it: ``(entry, ref, id_type, kind)``."""
        for entry_id, value in self._table.items():
            ref, id_type, kind = self._rows[_ROW.unpack(value[ENTRY_KEY_BYTES:])[0]]
            yield EntryRef(entry_id, value[:ENTRY_KEY_BYTES]), ref, id_type, kind

    def extended(self, entries: Iterable[tuple[EntryRef, str, str, str]]) -> WatchList:
        """This list plus ``entries`` (an id already watched keeps its reference); what
        was seen stays seen."""
        merged = WatchList.build(itertools.chain(self.entries(), entries), self.oprf_version)
        merged._seen = set(self._seen)
        return merged

    def save(self, path: Path) -> None:
        """Write the entries (ids, keys, rows) to ``path`` atomically; not :attr:`seen`.

        Format: ``"CLUEWL" 0x01``, ``oprf_version`` (4), count (8), the sorted ids
        (16 each), their values (entry key 32 and row 4, each), then the rows as UTF-8
        JSON ``[[ref, type, kind], ...]``, its length first (8). Integers big-endian.
        """
        ids, values = self._table.blocks()
        rows = json.dumps(self._rows, ensure_ascii=False, separators=(",", ":")).encode()
        write_atomically(path, [_FILE.pack(_MAGIC, self.oprf_version, len(self._table)), ids,
                                values, len(rows).to_bytes(8, "big"), rows])

    @classmethod
    def load(cls, path: Path) -> WatchList:
        """Read back :meth:`save`'s file; ``ValueError`` if it is not one, or damaged."""
        data = path.read_bytes()
        if len(data) < _FILE.size or data[:len(_MAGIC)] != _MAGIC:
            raise ValueError(f"{path}: not a CLUE watch list")
        _, oprf_version, count = _FILE.unpack_from(data)
        at = _FILE.size
        ids, at = data[at:at + count * ID_BYTES], at + count * ID_BYTES
        values, at = data[at:at + count * _VALUE_BYTES], at + count * _VALUE_BYTES
        size = int.from_bytes(data[at:at + 8], "big")
        if len(data) != at + 8 + size:
            raise ValueError(f"{path}: truncated or padded watch list")
        rows: list[tuple[str, str, str]] = [tuple(row) for row in json.loads(data[at + 8:])]
        if not all(len(row) == 3 and all(isinstance(f, str) for f in row) for row in rows):
            raise ValueError(f"{path}: malformed rows")
        table = IdTable(ids, values, _VALUE_BYTES)
        if any(_ROW.unpack(value[ENTRY_KEY_BYTES:])[0] >= len(rows)
               for _, value in table.items()):
            raise ValueError(f"{path}: an entry names a row that is not there")
        return cls(table, rows, oprf_version)


def write_atomically(path: Path, parts: Iterable[bytes]) -> None:
    """Write ``parts`` to ``path`` through a temporary file, flushed to disk and renamed
    over it: a crash leaves the old file or the new one, never half of either."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as out:
        for part in parts:
            out.write(part)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
