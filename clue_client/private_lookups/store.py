"""A replica and a watch list kept on disk between runs (``clue watch``, ``sync_replica``).

A :class:`ReplicaStore` is a directory holding one :class:`~.replica.Replica`:

* ``base-<random>.bin`` -- the replica's base table: ``"CLUERB" 0x01``, ``oprf_version``
  (4), count (8), the sorted entry ids (16 each), then their sealed answers (38 each).
  Written once per compaction (a new name each time), never rewritten in place.
* ``state.bin`` -- everything else, rewritten atomically after every page: ``"CLUERS"
  0x01``, ``oprf_version`` (4), cursor (8), ``issued_at`` (8), the base file's name
  (length 1, ASCII), this member's own entry ids (count 4, 16 each), then the changes
  since the base (count 4; each ``0x01 id sealed`` or ``0x02 id``). Integers big-endian.

A crash leaves the previous ``state.bin`` and the base it names, so the replica reopens
at the last page applied. A :class:`WatchStore` is a directory holding a replica store
(``replica/``), the watch list (``watch.bin``, :meth:`~.watch.WatchList.save`) and its
small state (``watch-state.json``: the ids reported so far, and whether the list was
matched against the whole replica since customers were last added).

The files hold what the server sends every member (sealed entries) and, for a watch,
the keys of the member's own customers' entries and its references: keep the directory
as private as the member's keys.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clue_client.private_lookups.entries import ENTRY_ID_BYTES, SEALED_BYTES
from clue_client.private_lookups.idtable import IdTable
from clue_client.private_lookups.replica import DELETE, PUT, Replica
from clue_client.private_lookups.watch import WatchList, write_atomically

__all__ = ["ReplicaStore", "StoreError", "WatchStore"]

_BASE_MAGIC = b"CLUERB\x01"
_STATE_MAGIC = b"CLUERS\x01"
_BASE = struct.Struct(">7sIQ")
_STATE = struct.Struct(">7sIQQ")
_COUNT = struct.Struct(">I")
STATE_FILE = "state.bin"
WATCH_FILE = "watch.bin"
WATCH_STATE_FILE = "watch-state.json"


class StoreError(Exception):
    """A store's files are damaged or belong to something else."""


class ReplicaStore:
    """A replica in ``directory`` and this member's own entry ids; None until the first
    sync. Not safe for two processes at once: give each its own directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.replica: Replica | None = None
        #: This member's own entry ids (from its reports), for ``reported_by_me``.
        self.own: frozenset[bytes] = frozenset()
        self._base_written: IdTable | None = None
        self._base_name = ""
        if (self.directory / STATE_FILE).exists():
            self._load()

    def start(self, oprf_version: int) -> Replica:
        """An empty replica for ``oprf_version`` (the next sync downloads everything)."""
        self.replica = Replica(oprf_version)
        self.own = frozenset()
        return self.replica

    def save(self) -> None:
        """Write what changed: a new base file if the replica compacted, then the state."""
        if self.replica is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        base, changes = self.replica.snapshot()
        if base is not self._base_written:
            name = f"base-{secrets.token_hex(8)}.bin"
            ids, values = base.blocks()
            write_atomically(self.directory / name,
                             [_BASE.pack(_BASE_MAGIC, self.replica.oprf_version, len(base)),
                              ids, values])
            self._base_written, self._base_name = base, name
        records = [bytes([PUT]) + entry_id + sealed if sealed is not None
                   else bytes([DELETE]) + entry_id for entry_id, sealed in changes.items()]
        base_name = self._base_name.encode("ascii")
        write_atomically(self.directory / STATE_FILE, [
            _STATE.pack(_STATE_MAGIC, self.replica.oprf_version, self.replica.cursor,
                        self.replica.issued_at),
            bytes([len(base_name)]), base_name, _COUNT.pack(len(self.own)), *sorted(self.own),
            _COUNT.pack(len(records)), *records])
        for old in self.directory.glob("base-*.bin"):
            if old.name != self._base_name:
                old.unlink(missing_ok=True)

    def _load(self) -> None:
        state = self.directory / STATE_FILE
        try:
            self._read(state.read_bytes())
        except (ValueError, IndexError, struct.error, UnicodeDecodeError, OSError) as exc:
            raise StoreError(f"{self.directory}: the replica's files are damaged ({exc}); "
                             "delete the directory to download the replica again") from exc

    def _read(self, data: bytes) -> None:
        magic, oprf_version, cursor, issued_at = _STATE.unpack_from(data)
        if magic != _STATE_MAGIC:
            raise ValueError("not a CLUE replica state file")
        at = _STATE.size
        name_length = data[at]
        self._base_name = data[at + 1:at + 1 + name_length].decode("ascii")
        at += 1 + name_length
        (own_count,), at = _COUNT.unpack_from(data, at), at + _COUNT.size
        own = [data[at + i * ENTRY_ID_BYTES:at + (i + 1) * ENTRY_ID_BYTES]
               for i in range(own_count)]
        at += own_count * ENTRY_ID_BYTES
        (count,), at = _COUNT.unpack_from(data, at), at + _COUNT.size
        changes: dict[bytes, bytes | None] = {}
        for _ in range(count):
            op, entry_id = data[at], data[at + 1:at + 1 + ENTRY_ID_BYTES]
            at += 1 + ENTRY_ID_BYTES
            if op == PUT:
                changes[entry_id], at = data[at:at + SEALED_BYTES], at + SEALED_BYTES
            elif op == DELETE:
                changes[entry_id] = None
            else:
                raise ValueError("unknown change record")
        if at != len(data) or any(len(i) != ENTRY_ID_BYTES for i in [*own, *changes]):
            raise ValueError("truncated or padded state file")
        base = self._read_base(oprf_version)
        self.replica = Replica.restore(oprf_version, cursor, issued_at, base, changes)
        self.own = frozenset(own)
        self._base_written = base

    def _read_base(self, oprf_version: int) -> IdTable:
        if not self._base_name.startswith("base-") or "/" in self._base_name:
            raise ValueError("bad base file name")
        data = (self.directory / self._base_name).read_bytes()
        magic, version, count = _BASE.unpack_from(data)
        ids_end = _BASE.size + count * ENTRY_ID_BYTES
        if magic != _BASE_MAGIC or version != oprf_version \
                or len(data) != ids_end + count * SEALED_BYTES:
            raise ValueError("base file does not match the state")
        return IdTable(data[_BASE.size:ids_end], data[ids_end:], SEALED_BYTES)


@dataclass
class WatchState:
    """What a watch remembers between runs besides its entries."""

    seen: frozenset[bytes] = frozenset()
    #: False after customers were added (or before the first run): the next run
    #: matches the whole replica, not just the deltas.
    checked: bool = False


class WatchStore:
    """A watch list, its state and its replica, in one directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.replica = ReplicaStore(self.directory / "replica")
        self.watch: WatchList | None = None
        self.checked = False
        watch_file = self.directory / WATCH_FILE
        if watch_file.exists():
            try:
                self.watch = WatchList.load(watch_file)
                state = self._state()
                self.watch.restore_seen(base64.urlsafe_b64decode(text + "==")
                                        for text in state["seen"])
                self.checked = state["checked"] is True
            except (ValueError, KeyError, TypeError, OSError) as exc:
                raise StoreError(f"{self.directory}: the watch list's files are damaged "
                                 f"({exc})") from exc

    def _state(self) -> dict[str, Any]:
        """The state file; none yet (a crash right after the first list was written)
        is an unchecked list with nothing seen."""
        try:
            state: dict[str, Any] = json.loads(
                (self.directory / WATCH_STATE_FILE).read_text("utf-8"))
        except FileNotFoundError:
            return {"seen": [], "checked": False}
        return state

    def save_watch(self) -> None:
        """Write the watch list's state, then its entries (after customers were added):
        a crash in between leaves the old list marked to be matched again, harmlessly."""
        if self.watch is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.save_state()
        self.watch.save(self.directory / WATCH_FILE)

    def save_state(self) -> None:
        """Write what changes on every run: the ids seen, and ``checked``."""
        if self.watch is None:
            return
        state = {"format": 1, "checked": self.checked,
                 "seen": sorted(base64.urlsafe_b64encode(i).rstrip(b"=").decode()
                                for i in self.watch.seen)}
        write_atomically(self.directory / WATCH_STATE_FILE,
                         [json.dumps(state, indent=1).encode()])
