"""An optional in-process cache of look-up answers: TTL, bounded, least-recently-used.

    >>> cache = LookupCache(ttl=30, max_entries=10_000)
    >>> client = ClueClient(..., cache=cache)                     # doctest: +SKIP

What it holds. Keys are SHA-256 digests of the token-level request for one
identifier: the member's signing-key id and, for every network-key version, the
identifier type, key version and HMAC token(s) exactly as sent to the server. Values
are CLUE's answers (matched, exact/folded, categories, reporter count, first/last
report dates, reported-by-me) with the raw identifier removed. Neither the raw
identifier nor its canonical form is ever held, and not the token either, only its
digest; someone who can read the process's memory holds the network key anyway,
so this is about not keeping more than needed, not a secret.

Freshness. An entry expires ``ttl`` seconds after the answer was *stored*; reading
it does not extend its life. So a cached answer never outlives a withdrawal (or an
expiry) by more than the TTL, and a new report reaches a cached identifier within
the TTL at the latest. A new network-key version changes every key, so a rotation
never serves answers asked under the old keyring. Answers are per member
(``reported_by_me``), hence the signing-key id in the key: one cache may be shared
by several clients.

Thread-safe; ``max_entries`` bounds memory (the least recently used entry goes first).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from clue_client.models import LookupResult

__all__ = ["LookupCache", "request_key"]


def request_key(member_key_id: str, items: Sequence[dict[str, Any]]) -> str:
    """The cache key of one identifier's look-up items (one per network-key version)."""
    blob = json.dumps([member_key_id, list(items)], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class LookupCache:
    """Maps :func:`request_key` digests to answers for at most ``ttl`` seconds."""

    def __init__(self, ttl: float = 30.0, max_entries: int = 10_000, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not ttl > 0:
            raise ValueError("ttl must be a positive number of seconds")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.ttl = float(ttl)
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, LookupResult]] = OrderedDict()
        # The same keys in the order they were stored, which with one TTL is the order
        # they expire in: expired entries are dropped from its front.
        self._stored: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> LookupResult | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            expires, result = entry
            if self._clock() >= expires:
                self._drop(key)
                self.misses += 1
                return None
            self._entries.move_to_end(key)  # recently used; the expiry stays as it was
            self.hits += 1
            return result

    def put(self, key: str, result: LookupResult) -> None:
        stored = replace(result, value="")  # never keep the raw identifier
        with self._lock:
            now = self._clock()
            while self._stored:
                oldest, expires = next(iter(self._stored.items()))
                if now < expires:
                    break
                self._drop(oldest)
            self._entries[key] = (now + self.ttl, stored)
            self._entries.move_to_end(key)
            self._stored[key] = now + self.ttl
            self._stored.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        del self._entries[key]
        del self._stored[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._stored.clear()

    def __len__(self) -> int:
        with self._lock:
            now = self._clock()
            return sum(1 for expires, _ in self._entries.values() if now < expires)
