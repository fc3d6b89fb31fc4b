"""A sorted table of fixed-width records keyed by 16-byte ids, compact and fast to probe.

Entry ids are HMAC outputs, so they are uniformly spread: an index of the first ``k``
bits (``k`` about log2(n) - 3, at most 24) points every probe at a run of about eight
records, and ``bytes.find`` scans that run in C. No per-record Python object is kept:
10 M records of a 16-byte id and a 38-byte sealed answer take 540 MB plus a 4 MB index
(a ``dict`` of the same would take several GB). bench/oprf.py measures a probe.

>>> table = IdTable.build([(bytes([9]) * 16, b"nine"), (bytes(16), b"zero")], value_size=4)
>>> table.get(bytes(16)), table.get(bytes([1]) * 16), len(table)
(b'zero', None, 2)
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterable, Iterator, Mapping

ID_BYTES = 16
MAX_INDEX_BITS = 24


class IdTable:
    """Records ``(id, value)`` sorted by id, every value ``value_size`` bytes. Immutable."""

    __slots__ = ("_count", "_ids", "_index", "_shift", "_value_size", "_values")

    def __init__(self, ids: bytes, values: bytes, value_size: int) -> None:
        """From ids sorted strictly ascending (checked) and their values in the same
        order; :meth:`build` sorts for you."""
        if value_size < 0 or len(ids) % ID_BYTES:
            raise ValueError("ids must be whole 16-byte records")
        count = len(ids) // ID_BYTES
        if len(values) != count * value_size:
            raise ValueError("one value of value_size bytes per id")
        self._ids = bytes(ids)
        self._values = bytes(values)
        self._value_size = value_size
        self._count = count
        bits = max(0, min(MAX_INDEX_BITS, count.bit_length() - 3))
        self._shift = 32 - bits
        self._index = self._build_index(bits)

    def _build_index(self, bits: int) -> array[int]:
        # index[s] .. index[s+1] are the records whose first `bits` bits equal s.
        index = array("I", bytes(4 * ((1 << bits) + 2)))
        ids, shift, previous = self._ids, self._shift, b""
        for start in range(0, len(ids), ID_BYTES):
            record_id = ids[start:start + ID_BYTES]
            if record_id <= previous:
                raise ValueError("ids must be distinct and sorted ascending")
            previous = record_id
            index[(int.from_bytes(record_id[:4], "big") >> shift) + 1] += 1
        running = 0
        for slot in range(len(index)):
            running += index[slot]
            index[slot] = running
        return index

    @classmethod
    def build(cls, records: Iterable[tuple[bytes, bytes]], value_size: int) -> IdTable:
        """A table of ``records`` in any order; ``ValueError`` for a duplicate id or a
        record of the wrong size."""
        joined = []
        for record_id, value in records:
            if len(record_id) != ID_BYTES or len(value) != value_size:
                raise ValueError("every id is 16 bytes and every value value_size bytes")
            joined.append(record_id + value)
        joined.sort()  # one bytes object per record: sorting them sorts by id
        return cls._from_sorted(joined, value_size)

    @classmethod
    def _from_sorted(cls, joined: list[bytes], value_size: int) -> IdTable:
        ids = b"".join(record[:ID_BYTES] for record in joined)
        values = b"".join(record[ID_BYTES:] for record in joined)
        return cls(ids, values, value_size)

    @classmethod
    def empty(cls, value_size: int) -> IdTable:
        return cls(b"", b"", value_size)

    @property
    def value_size(self) -> int:
        return self._value_size

    @property
    def nbytes(self) -> int:
        """Bytes held: ids, values and index (not counting Python object headers)."""
        return len(self._ids) + len(self._values) + self._index.itemsize * len(self._index)

    def __len__(self) -> int:
        return self._count

    def blocks(self) -> tuple[bytes, bytes]:
        """The sorted ids and their values, each one ``bytes``: what a file keeps, and
        what the constructor takes back."""
        return self._ids, self._values

    def find(self, record_id: bytes) -> int:
        """The position of ``record_id``, or -1."""
        if len(record_id) != ID_BYTES:
            raise ValueError("an id is 16 bytes")
        slot = int.from_bytes(record_id[:4], "big") >> self._shift
        end = self._index[slot + 1] * ID_BYTES
        position = self._ids.find(record_id, self._index[slot] * ID_BYTES, end)
        while position > 0 and position % ID_BYTES:  # a match straddling two records
            position = self._ids.find(record_id, position + 1, end)
        return -1 if position < 0 else position // ID_BYTES

    def __contains__(self, record_id: object) -> bool:
        return isinstance(record_id, bytes) and self.find(record_id) >= 0

    def get(self, record_id: bytes) -> bytes | None:
        """The value of ``record_id``, or None."""
        position = self.find(record_id)
        if position < 0:
            return None
        start = position * self._value_size
        return self._values[start:start + self._value_size]

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every record, ascending by id."""
        size = self._value_size
        for position in range(self._count):
            yield (self._ids[position * ID_BYTES:(position + 1) * ID_BYTES],
                   self._values[position * size:(position + 1) * size])

    def merged(self, changes: Mapping[bytes, bytes | None]) -> IdTable:
        """A new table with ``changes`` applied: a value replaces or adds, None deletes.

        One linear merge of two sorted streams: no re-sort of the whole table.
        """
        size = self._value_size
        for record_id, value in changes.items():
            if len(record_id) != ID_BYTES or (value is not None and len(value) != size):
                raise ValueError("every id is 16 bytes and every value value_size bytes")
        kept = ((rid, value) for rid, value in self.items() if rid not in changes)
        added = sorted((rid, value) for rid, value in changes.items() if value is not None)
        joined = [rid + value for rid, value in heapq.merge(kept, added)]
        return self._from_sorted(joined, size)
