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

import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from clue_client.private_lookups.entries import (
    ENTRY_KEY_BYTES,
    KINDS,
    Answer,
    EntryRef,
    open_answer,
)
from clue_client.private_lookups.idtable import IdTable
from clue_client.private_lookups.replica import Delta, DeltaError, Replica

__all__ = ["Alert", "WatchList"]

_ROW = struct.Struct(">I")  # the customer's row in the member's own list
_VALUE_BYTES = ENTRY_KEY_BYTES + _ROW.size


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
        """The alerts for every watched identifier already in ``replica``: run once
        after onboarding (or a full re-download), then :meth:`match` each delta."""
        alerts = []
        for entry_id, _value in self._table.items():
            sealed = replica.sealed(entry_id)
            if sealed is not None:
                alert = self._alert(entry_id, sealed, replica.cursor, replica.issued_at)
                if alert:
                    alerts.append(alert)
        return alerts
