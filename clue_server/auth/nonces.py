"""Replay protection: each request nonce is accepted once per signing key.

With ``CLUE_REDIS_URL`` the seen set lives in Redis, shared by every worker and app
server; otherwise in the database's ``seen_nonces`` table, where a primary key makes
the second claim fail in any worker or app server.

A store that loses its memory must not reopen replays. A request can be accepted
for ``MAX_SIGNATURE_AGE`` + ``MAX_CLOCK_SKEW`` seconds, so if the seen set was wiped
(Redis restarted empty; PostgreSQL crashed and lost its last asynchronously committed
claims; the machine under SQLite lost power), a request captured before that could
be replayed. Each store therefore knows when its memory begins (its *epoch*, in whole
seconds) and refuses, with a 503 that tells the client to sign afresh, any request
created before it or in the same second:

* Redis: an epoch key written on the first claim after the store came up empty
  (checked and written in the same script as the claim, so no claim can slip between);
* PostgreSQL: ``pg_postmaster_start_time()``, read when a connection opens;
* SQLite: the machine's boot time (a process crash loses nothing in WAL mode; only
  losing power does, and that means a reboot).

Claims are not durable commits: on PostgreSQL they commit asynchronously
(``synchronous_commit = off``) and on SQLite without an fsync (``synchronous =
NORMAL``), which is what the epoch rule makes safe. Claiming a nonce is one round trip.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from clue_client.protocol import MAX_CLOCK_SKEW, MAX_SIGNATURE_AGE
from clue_server.db import utcnow
from clue_server.errors import ReplayedRequest, StoreRestarted

if TYPE_CHECKING:
    from clue_server.hotpath import HotPath

#: A nonce must be remembered as long as its signature could still be accepted.
NONCE_TTL = dt.timedelta(seconds=MAX_SIGNATURE_AGE + MAX_CLOCK_SKEW + 5)
#: How often each worker deletes expired database nonces.
SWEEP_SECONDS = 10.0


class NonceStore(Protocol):
    def claim(self, key_id: str, nonce: str, created: int) -> None:
        """Record the nonce. Raise ``ReplayedRequest`` if it was seen before, and
        ``StoreRestarted`` if the request predates what the store remembers."""


def replayed() -> ReplayedRequest:
    return ReplayedRequest("this request's nonce was already used; sign each request afresh")


def restarted(created: int, epoch: int) -> StoreRestarted:
    return StoreRestarted(
        f"the replay store restarted at {epoch} (unix time), after this request was signed "
        f"({created}) or in the same second; sign it again and resend", retry_after=1)


# KEYS[1]: the nonce, KEYS[2]: the epoch; ARGV: ttl, created, now. 1 claimed, 0 seen,
# -epoch: the request predates the store's memory.
_CLAIM_LUA = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[2], epoch)
end
if tonumber(ARGV[2]) <= tonumber(epoch) then return -tonumber(epoch) end
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 1 end
return 0
"""
EPOCH_KEY = "clue:nonce-epoch"
REDIS_PREFIX = "clue:nonce:"


class RedisNonceStore:
    def __init__(self, client: Any) -> None:
        self.redis = client
        self._claim = client.register_script(_CLAIM_LUA)
        # A Redis this deployment starts with begins its memory now (so only requests
        # signed in this very second are refused); one that restarts later gets its epoch
        # from the first claim after it (the script).
        with contextlib.suppress(Exception):  # down at start: the script does it later
            client.set(EPOCH_KEY, int(time.time()) - 1, nx=True)

    def claim(self, key_id: str, nonce: str, created: int) -> None:
        ttl = int(NONCE_TTL.total_seconds())
        result = int(self._claim(keys=[REDIS_PREFIX + nonce_key(key_id, nonce), EPOCH_KEY],
                                 args=[ttl, created, int(time.time())]))
        if result == 0:
            raise replayed()
        if result < 0:
            raise restarted(created, -result)


class DatabaseNonceStore:
    """``seen_nonces`` rows, claimed in one autocommit statement on the request's hot-path
    connection (``hotpath``), without waiting for the disk."""

    def __init__(self, hot: HotPath) -> None:
        self.hot = hot
        self._next_sweep = time.monotonic() + SWEEP_SECONDS
        self._sweep_lock = threading.Lock()
        self._boot_epoch = 0 if hot.postgres else _boot_time()

    def claim(self, key_id: str, nonce: str, created: int) -> None:
        now = utcnow()
        self.check_epoch(created)
        if not self.hot.claim_nonce(nonce_key(key_id, nonce), now + NONCE_TTL):
            raise replayed()
        self.sweep_now_and_then(now)

    def check_epoch(self, created: int) -> None:
        """Refuse a request signed before this store's memory began (see the module)."""
        epoch = self.hot.epoch() if self.hot.postgres else self._boot_epoch
        if epoch is not None and created <= epoch:
            raise restarted(created, epoch)

    def sweep_now_and_then(self, now: dt.datetime) -> None:
        if time.monotonic() >= self._next_sweep and self._sweep_lock.acquire(False):
            try:
                self._next_sweep = time.monotonic() + SWEEP_SECONDS
                self.hot.sweep_nonces(now)
            finally:
                self._sweep_lock.release()


def nonce_key(key_id: str, nonce: str) -> str:
    """How a claimed nonce is recorded (``seen_nonces.key``; Redis adds a prefix)."""
    return f"{key_id}:{nonce}"


def _boot_time() -> int:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
