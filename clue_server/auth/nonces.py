"""Replay protection: each request nonce is accepted once per signing key.

With ``CLUE_REDIS_URL`` the seen set lives in Redis, shared by every worker and app
server; otherwise in the database's ``seen_nonces`` table, where a primary key makes
the second claim fail in any worker or app server.

A store that loses its memory must not reopen replays. A request can be accepted
for ``MAX_SIGNATURE_AGE`` + ``MAX_CLOCK_SKEW`` seconds, so if the seen set was wiped
(Redis restarted empty; PostgreSQL crashed and lost its last asynchronously committed
claims; the machine under SQLite lost power), a request captured before that could
be replayed. Each store therefore knows when its memory begins (its *epoch*) and
refuses, with a 503 that tells the client to sign afresh, any request created before
it:

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

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, bindparam, delete, event
from sqlalchemy.dialects import postgresql, sqlite

from clue_client.protocol import MAX_CLOCK_SKEW, MAX_SIGNATURE_AGE
from clue_server.auth.models import SeenNonce
from clue_server.db import utcnow
from clue_server.errors import ReplayedRequest, StoreRestarted

#: A nonce must be remembered as long as its signature could still be accepted.
NONCE_TTL = dt.timedelta(seconds=MAX_SIGNATURE_AGE + MAX_CLOCK_SKEW + 5)
#: How often each worker deletes expired database nonces.
SWEEP_SECONDS = 10.0


class NonceStore(Protocol):
    def claim(self, key_id: str, nonce: str, created: int) -> None:
        """Record the nonce. Raise ``ReplayedRequest`` if it was seen before, and
        ``StoreRestarted`` if the request predates what the store remembers."""


def _replayed() -> ReplayedRequest:
    return ReplayedRequest("this request's nonce was already used; sign each request afresh")


def _restarted(created: int, epoch: int) -> StoreRestarted:
    return StoreRestarted(
        f"the replay store restarted at {epoch} (unix time), after this request was signed "
        f"({created}); sign it again and resend", retry_after=0)


# KEYS[1]: the nonce, KEYS[2]: the epoch; ARGV: ttl, created, now. 1 claimed, 0 seen,
# -epoch: the request predates the store's memory.
_CLAIM_LUA = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[2], epoch)
end
if tonumber(ARGV[2]) < tonumber(epoch) then return -tonumber(epoch) end
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 1 end
return 0
"""
EPOCH_KEY = "clue:nonce-epoch"


class RedisNonceStore:
    def __init__(self, client: Any) -> None:
        self.redis = client
        self._claim = client.register_script(_CLAIM_LUA)

    def claim(self, key_id: str, nonce: str, created: int) -> None:
        ttl = int(NONCE_TTL.total_seconds())
        result = int(self._claim(keys=[f"clue:nonce:{key_id}:{nonce}", EPOCH_KEY],
                                 args=[ttl, created, int(time.time())]))
        if result == 0:
            raise _replayed()
        if result < 0:
            raise _restarted(created, -result)


class DatabaseNonceStore:
    """``seen_nonces`` rows, claimed on a connection of their own (autocommit, no fsync)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._insert = (insert(SeenNonce).values(key=bindparam("key"),
                                                 expires_at=bindparam("expires_at"))
                        .on_conflict_do_nothing().returning(SeenNonce.key))
        self._sweep = delete(SeenNonce).where(SeenNonce.expires_at < bindparam("now"))
        self._next_sweep = time.monotonic() + SWEEP_SECONDS
        self._sweep_lock = threading.Lock()
        self._boot_epoch = _boot_time() if dialect == "sqlite" else 0

    def claim(self, key_id: str, nonce: str, created: int) -> None:
        now = utcnow()
        with self.engine.connect() as conn:
            epoch = conn.info.get("clue_epoch", self._boot_epoch)
            if created < epoch:
                raise _restarted(created, epoch)
            claimed = conn.execute(self._insert, {"key": f"{key_id}:{nonce}",
                                                  "expires_at": now + NONCE_TTL}).first()
            conn.commit()
            if claimed is None:
                raise _replayed()
            if time.monotonic() >= self._next_sweep and self._sweep_lock.acquire(False):
                try:
                    self._next_sweep = time.monotonic() + SWEEP_SECONDS
                    conn.execute(self._sweep, {"now": now})
                    conn.commit()
                finally:
                    self._sweep_lock.release()


def nonce_engine(url: str, make_engine: Any) -> Engine:
    """The engine nonce claims use: like the app's, but claims are not durable commits."""
    engine: Engine = make_engine(url, durable=False)
    if engine.dialect.name == "postgresql":
        # One round trip per claim: no BEGIN, and the INSERT commits itself.
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        @event.listens_for(engine, "connect")
        def _epoch(dbapi_connection: Any, record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("SET synchronous_commit = off")
            cursor.execute("SELECT extract(epoch FROM pg_postmaster_start_time())::bigint")
            record.info["clue_epoch"] = int(cursor.fetchone()[0])
            cursor.close()
            dbapi_connection.commit()
    return engine


def _boot_time() -> int:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
