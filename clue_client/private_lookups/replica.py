"""The local replica: every entry of the register, sealed, kept current by signed deltas.

A delta carries the entries that changed after a cursor, each once in its latest state
(``put``: id and sealed answer; ``delete``: id). Cursor 0 is the full download. The
binary format (docs/private-lookups.md §7) is signed as a whole with the server's
Ed25519 key, so a replica can be checked at rest, cached or relayed without trusting
the path; :func:`parse_delta` verifies before it reads anything else.

Nothing in a delta lets its holder test a guess offline: ids and keys come from the
OPRF output, which needs the server's key (one counted evaluation per identifier).

>>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
>>> server = Ed25519PrivateKey.generate()
>>> delta = Delta(oprf_version=1, after=0, to=7, issued_at=1700000000, more=False,
...               puts=((bytes(16), bytes(38)),), deletes=())
>>> data = encode_delta(delta, server, "server-k-0")
>>> parse_delta(data, {"server-k-0": server.public_key()}) == delta
True
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from clue_client.private_lookups.entries import (
    ENTRY_ID_BYTES,
    SEALED_BYTES,
    Answer,
    EntryRef,
    SealedAnswerError,
    open_answer,
)
from clue_client.private_lookups.idtable import IdTable

__all__ = ["MAGIC", "MAX_RECORDS", "Delta", "DeltaError", "Replica", "encode_delta",
           "parse_delta"]

MAGIC = b"CLUERD"
FORMAT = 1
SIGNATURE_LABEL = b"clue/v2 replica delta\x00"
SIGNATURE_BYTES = 64
MAX_RECORDS = 1_000_000  # per delta; a larger change set comes as several pages
MAX_KEY_ID = 64
PUT, DELETE = 0x01, 0x02
_MORE = 0x01
# magic, format, flags, oprf_version, after, to, issued_at, count (then the key id)
_HEADER = struct.Struct(">6sBBIQQQI")
_PUT_BYTES = 1 + ENTRY_ID_BYTES + SEALED_BYTES
_DELETE_BYTES = 1 + ENTRY_ID_BYTES


class DeltaError(Exception):
    """A delta is not signed by a pinned key, is malformed, or does not follow on."""


@dataclass(frozen=True)
class Delta:
    """The entries changed in ``(after, to]``: ``puts`` (id, sealed) and ``deletes`` (id).

    ``more`` says the server had changes past ``to`` when it wrote this page.
    """

    oprf_version: int
    after: int
    to: int
    issued_at: int
    more: bool
    puts: tuple[tuple[bytes, bytes], ...]
    deletes: tuple[bytes, ...]

    def check(self) -> None:
        """The rules every delta keeps; ``DeltaError`` naming the first one broken."""
        if not 1 <= self.oprf_version <= 0xFFFFFFFF:
            raise DeltaError("oprf_version out of range")
        if not 0 <= self.after <= self.to < 1 << 64 or not 0 <= self.issued_at < 1 << 64:
            raise DeltaError("cursors must satisfy 0 <= after <= to < 2^64")
        if len(self.puts) + len(self.deletes) > MAX_RECORDS:
            raise DeltaError(f"more than {MAX_RECORDS} records")
        if self.after == 0 and self.deletes:
            raise DeltaError("a full download (after = 0) has no deletes")
        if self.to == self.after and (self.puts or self.deletes):
            raise DeltaError("records in an empty cursor range")
        seen: set[bytes] = set()
        for entry_id, sealed in self.puts:
            if len(entry_id) != ENTRY_ID_BYTES or len(sealed) != SEALED_BYTES:
                raise DeltaError("a put is a 16-byte id and a 38-byte sealed answer")
            seen.add(entry_id)
        for entry_id in self.deletes:
            if len(entry_id) != ENTRY_ID_BYTES:
                raise DeltaError("a delete is a 16-byte id")
            seen.add(entry_id)
        if len(seen) != len(self.puts) + len(self.deletes):
            raise DeltaError("an entry appears twice in one delta")


def encode_delta(delta: Delta, signing_key: Ed25519PrivateKey, key_id: str) -> bytes:
    """The signed bytes of ``delta`` (puts first, then deletes)."""
    delta.check()
    key_id_bytes = _key_id_bytes(key_id)
    parts = [
        _HEADER.pack(MAGIC, FORMAT, _MORE if delta.more else 0, delta.oprf_version,
                     delta.after, delta.to, delta.issued_at,
                     len(delta.puts) + len(delta.deletes)),
        bytes([len(key_id_bytes)]), key_id_bytes,
    ]
    for entry_id, sealed in delta.puts:
        parts += (bytes([PUT]), entry_id, sealed)
    for entry_id in delta.deletes:
        parts += (bytes([DELETE]), entry_id)
    body = b"".join(parts)
    return body + signing_key.sign(SIGNATURE_LABEL + body)


def parse_delta(data: bytes, public_keys: Mapping[str, Ed25519PublicKey]) -> Delta:
    """Verify ``data`` with the pinned key it names, then parse it strictly.

    ``public_keys`` maps key ids to the pinned server keys (current, and next during a
    rotation). Anything unsigned, signed by another key, truncated, padded or
    inconsistent raises :class:`DeltaError`.
    """
    data = bytes(data)
    fixed = _HEADER.size + 1
    if len(data) < fixed + SIGNATURE_BYTES or data[:len(MAGIC)] != MAGIC:
        raise DeltaError("not a CLUE replica delta")
    key_id_length = data[_HEADER.size]
    if not 1 <= key_id_length <= MAX_KEY_ID or len(data) < fixed + key_id_length + SIGNATURE_BYTES:
        raise DeltaError("bad signer key id")
    key_id = data[fixed:fixed + key_id_length].decode("ascii", "replace")
    public_key = public_keys.get(key_id)
    if public_key is None:
        raise DeltaError(f"signed by {key_id!r}, which is not a pinned server key")
    body, signature = data[:-SIGNATURE_BYTES], data[-SIGNATURE_BYTES:]
    try:
        public_key.verify(signature, SIGNATURE_LABEL + body)
    except InvalidSignature:
        raise DeltaError("signature does not verify") from None
    # Signed by the server from here on; still parsed strictly.
    _, version, flags, oprf_version, after, to, issued_at, count = _HEADER.unpack_from(body)
    if version != FORMAT or flags & ~_MORE:
        raise DeltaError("unknown delta format or flag")
    if count > MAX_RECORDS:
        raise DeltaError(f"more than {MAX_RECORDS} records")
    puts: list[tuple[bytes, bytes]] = []
    deletes: list[bytes] = []
    offset = fixed + key_id_length
    for _ in range(count):
        op = body[offset:offset + 1]
        if op == bytes([PUT]) and offset + _PUT_BYTES <= len(body):
            puts.append((body[offset + 1:offset + 1 + ENTRY_ID_BYTES],
                         body[offset + 1 + ENTRY_ID_BYTES:offset + _PUT_BYTES]))
            offset += _PUT_BYTES
        elif op == bytes([DELETE]) and offset + _DELETE_BYTES <= len(body):
            deletes.append(body[offset + 1:offset + _DELETE_BYTES])
            offset += _DELETE_BYTES
        else:
            raise DeltaError("truncated or unknown record")
    if offset != len(body):
        raise DeltaError("bytes after the last record")
    delta = Delta(oprf_version, after, to, issued_at, bool(flags & _MORE), tuple(puts),
                  tuple(deletes))
    delta.check()
    return delta


def _key_id_bytes(key_id: str) -> bytes:
    if not isinstance(key_id, str) or not key_id.isascii() or not key_id.isprintable() \
            or not 1 <= len(key_id) <= MAX_KEY_ID:
        raise ValueError("a key id is 1 to 64 printable ASCII characters")
    return key_id.encode("ascii")


class Replica:
    """Every entry of the register under one OPRF key version, as of ``cursor``.

    A base :class:`IdTable` plus the changes applied since (compacted into a new base
    once they reach a twentieth of it). Deltas must follow on: ``delta.after`` equals
    ``cursor`` (a delta from 0 starts over), and none may be older than the last one.
    """

    __slots__ = ("_base", "_changes", "cursor", "issued_at", "oprf_version")

    def __init__(self, oprf_version: int) -> None:
        self.oprf_version = oprf_version
        self.cursor = 0
        self.issued_at = 0
        self._base = IdTable.empty(SEALED_BYTES)
        self._changes: dict[bytes, bytes | None] = {}

    def apply(self, delta: Delta) -> None:
        """Apply ``delta``; :class:`DeltaError`, and no change, if it does not follow on."""
        delta.check()
        if delta.oprf_version != self.oprf_version:
            raise DeltaError("delta is for another OPRF key version")
        if delta.issued_at < self.issued_at:
            raise DeltaError("delta is older than the replica (replayed?)")
        if delta.after == 0:
            self._base = IdTable.build(delta.puts, SEALED_BYTES)
            self._changes = {}
        elif delta.after != self.cursor:
            raise DeltaError(f"delta starts after {delta.after}, replica is at {self.cursor}")
        else:
            self._changes.update(delta.puts)
            self._changes.update(dict.fromkeys(delta.deletes))
            if len(self._changes) * 20 > max(len(self._base), 1000):
                self.compact()
        self.cursor, self.issued_at = delta.to, delta.issued_at

    @classmethod
    def restore(cls, oprf_version: int, cursor: int, issued_at: int, base: IdTable,
                changes: Mapping[bytes, bytes | None]) -> Replica:
        """A replica as :meth:`snapshot` left it (a store reading its files back)."""
        if base.value_size != SEALED_BYTES:
            raise ValueError(f"a replica's values are {SEALED_BYTES}-byte sealed answers")
        replica = cls(oprf_version)
        replica.cursor, replica.issued_at = cursor, issued_at
        replica._base, replica._changes = base, dict(changes)
        return replica

    def snapshot(self) -> tuple[IdTable, dict[bytes, bytes | None]]:
        """The base table (immutable: a store rewrites it only when it is another
        object) and a copy of the changes applied since."""
        return self._base, dict(self._changes)

    def compact(self) -> None:
        """Fold the applied changes into a new base table."""
        if self._changes:
            self._base = self._base.merged(self._changes)
            self._changes = {}

    def sealed(self, entry_id: bytes) -> bytes | None:
        """The sealed answer of ``entry_id``, or None if the register has no such entry."""
        if entry_id in self._changes:
            return self._changes[entry_id]
        return self._base.get(entry_id)

    def lookup(self, entry: EntryRef) -> Answer | None:
        """The answer for an entry the member evaluated, or None: no round trip."""
        sealed = self.sealed(entry.entry_id)
        if sealed is None:
            return None
        try:
            return open_answer(entry, self.oprf_version, sealed)
        except SealedAnswerError:
            raise DeltaError("an entry of the replica does not open under its key") from None

    def __len__(self) -> int:
        added = sum(1 for entry_id, value in self._changes.items()
                    if value is not None and entry_id not in self._base)
        removed = sum(1 for entry_id, value in self._changes.items()
                      if value is None and entry_id in self._base)
        return len(self._base) + added - removed

    @property
    def nbytes(self) -> int:
        """Approximate bytes held (the base table; changes are compacted early)."""
        return self._base.nbytes + len(self._changes) * (16 + 38 + 100)
