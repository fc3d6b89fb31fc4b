"""Counting what members use, checked against their daily quota in the same step.

A day is a UTC day. The limit is the member's override, else the council default
(``quotas.settings``), else the built-in default, and it is read in the counting
statement itself, so a change applies to the very next request.

Where the counts live:

* **Registrations**, always in the database: the quota counter (``quota_usage``) and
  the day's usage (``daily_usage``) are added in the registration's own transaction,
  with the number of reports it *created*. They commit or roll back with the reports,
  so the counter always equals what was stored, and re-running an import that creates
  nothing uses nothing.
* **Look-ups, database** (no Redis): one statement, run after the look-up has matched
  and before the answer is sent, adds the items to ``quota_usage`` if they fit and to
  the day's ``daily_usage`` per type; if they do not fit it changes nothing and the
  request gets 429. On PostgreSQL it is a single ``INSERT ... ON CONFLICT`` with a
  data-modifying CTE, committed asynchronously (a crash may forget the last fraction
  of a second of look-up counts; never a report). The counter's row lock is held for
  that one statement only, so one member's concurrent look-ups do not queue.
* **Look-ups, Redis** (``CLUE_REDIS_URL``): one Lua script checks and adds to the
  member's counter for the day and adds the usage to a buffer; a look-up then writes
  nothing to the database. Every few seconds one worker folds the buffer into
  ``daily_usage``, exactly once (``usage_flushes`` records each folded batch, and a
  batch left half-done by a dying worker is finished by the next). The console's
  usage figures lag by at most that interval; the quota itself is exact.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, text

from clue_server import metrics, outages
from clue_server.auth.nonces import (
    EPOCH_KEY,
    NONCE_TTL,
    REDIS_PREFIX,
    nonce_key,
    replayed,
    restarted,
)
from clue_server.db import iso_utc
from clue_server.errors import QuotaExceeded
from clue_server.quotas.settings import DEFAULT_DAILY_LOOKUPS, DEFAULT_DAILY_REGISTRATIONS

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from clue_server.auth.nonces import DatabaseNonceStore
    from clue_server.hotpath import HotPath

QUOTAS = ("lookups", "registrations")
DEFAULTS = {"lookups": DEFAULT_DAILY_LOOKUPS, "registrations": DEFAULT_DAILY_REGISTRATIONS}
#: Seconds between two folds of the Redis usage buffer into ``daily_usage``.
FLUSH_SECONDS = 5.0


def next_midnight(now: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)


def retry_after_seconds(now: dt.datetime) -> int:
    return max(1, int((next_midnight(now) - now).total_seconds() + 0.999))


# The SQL below is assembled from this module's own constants (quota names, column
# names, defaults), never from request data; every value travels as a bound parameter.


_PG_TYPES = {"day": "date", "member_id": "varchar", "n": "bigint", "id_type": "varchar",
             "quota": "varchar", **dict.fromkeys(("lookups", "hits", "registrations",
                                                   "quota_rejections"), "integer")}


def _typed(sql: str, dialect: str) -> str:
    """PostgreSQL cannot always deduce a parameter's type from its uses: spell it out."""
    if dialect != "postgresql":
        return sql
    return re.sub(r"(?<!:):(day|member_id|n|id_type|quota|lookups|hits|registrations|"
                  r"quota_rejections)\b", lambda m: f"CAST(:{m[1]} AS {_PG_TYPES[m[1]]})", sql)


def _json_int(dialect: str) -> str:
    return "(value #>> '{}')::integer" if dialect == "postgresql" else "CAST(value AS INTEGER)"


def limit_sql(quota: str, dialect: str) -> str:
    """SQL for the member's limit: override, else council default, else built-in."""
    return (f"COALESCE((SELECT daily_{quota} FROM member_quotas "  # noqa: S608
            "WHERE member_id = :member_id), "
            f"(SELECT {_json_int(dialect)} FROM council_settings "
            f"WHERE key = 'quota.daily_{quota}'), {DEFAULTS[quota]})")


def _quota_upsert(quota: str, dialect: str) -> str:
    limit = limit_sql(quota, dialect)
    return (f"INSERT INTO quota_usage (day, member_id, quota, used) "
            f"SELECT :day, :member_id, '{quota}', :n WHERE :n <= {limit} "
            f"ON CONFLICT (day, member_id, quota) DO UPDATE SET used = quota_usage.used + "
            f"excluded.used WHERE quota_usage.used + excluded.used <= {limit} RETURNING used")


USAGE_COLUMNS = ("lookups", "hits", "registrations", "quota_rejections")


def _usage_upsert(columns: tuple[str, ...]) -> str:
    values = ", ".join(f":{c}" if c in columns else "0" for c in USAGE_COLUMNS)
    updates = ", ".join(f"{c} = daily_usage.{c} + excluded.{c}" for c in columns)
    return ("INSERT INTO daily_usage (day, member_id, id_type, lookups, hits, registrations, "
            f"quota_rejections) SELECT :day, :member_id, :id_type, {values} WHERE true "
            f"ON CONFLICT (day, member_id, id_type) DO UPDATE SET {updates}")


class Statements:
    """The counting statements of one database dialect, built once."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.quota = {q: self.text(_quota_upsert(q, dialect)) for q in QUOTAS}
        self.used = self.text("SELECT used FROM quota_usage WHERE day = :day AND "
                              "member_id = :member_id AND quota = :quota")
        self.limit = {q: self.text(f"SELECT {limit_sql(q, dialect)}") for q in QUOTAS}
        self.usage = {cols: self.text(_usage_upsert(cols)) for cols in (
            ("lookups", "hits"), ("registrations",), ("quota_rejections",))}

    def text(self, sql: str) -> Any:
        return text(_typed(sql, self.dialect))


_STATEMENTS: dict[str, Statements] = {}


def statements(conn: Connection) -> Statements:
    dialect = conn.dialect.name
    found = _STATEMENTS.get(dialect)
    if found is None:
        found = _STATEMENTS[dialect] = Statements(dialect)
    return found


def refusal(conn: Connection, quota: str, member_id: str, n: int, now: dt.datetime,
            used: int | None = None) -> QuotaExceeded:
    """The 429 for ``n`` items that did not fit (reads the counter and limit: rare path)."""
    sql = statements(conn)
    params = {"day": now.date(), "member_id": member_id, "quota": quota}
    if used is None:
        used = int(conn.execute(sql.used, params).scalar() or 0)
    limit = int(conn.execute(sql.limit[quota], params).scalar_one())
    metrics.count_quota_rejection(quota, n)
    left = max(0, limit - used)
    resets_at = next_midnight(now)
    error = QuotaExceeded(
        f"daily {quota} quota exceeded: {n} item(s) asked, {left} of {limit} left today; "
        f"it resets at {iso_utc(resets_at)}",
        quota=quota, limit=limit, used=used, requested=n, resets_at=iso_utc(resets_at),
        retry_after=retry_after_seconds(now))
    error.headers["Retry-After"] = str(error.extra["retry_after"])
    return error


def add_usage(conn: Connection, member_id: str, day: dt.date,
              rows: Mapping[str, Mapping[str, int]]) -> None:
    """Add ``{id_type: {counter: n}}`` to the day's ``daily_usage`` (one statement per
    distinct set of counters)."""
    sql = statements(conn)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for id_type, counts in sorted(rows.items()):
        present = {k: int(v) for k, v in counts.items() if v}
        if not present:
            continue
        columns = tuple(c for c in USAGE_COLUMNS if c in present)
        if columns not in sql.usage:
            sql.usage[columns] = sql.text(_usage_upsert(columns))
        groups.setdefault(columns, []).append(
            {"day": day, "member_id": member_id, "id_type": id_type,
             **{c: present.get(c, 0) for c in columns}})
    for columns, params in groups.items():
        conn.execute(sql.usage[columns], params)


def count_registrations(conn: Connection, member_id: str, created: Mapping[str, int],
                        now: dt.datetime) -> None:
    """Add the reports a registration created, inside its transaction; raise 429 (the
    caller rolls back) when they do not fit in what is left of the day."""
    n = sum(created.values())
    if n == 0:
        return
    sql = statements(conn)
    used = conn.execute(sql.quota["registrations"],
                        {"day": now.date(), "member_id": member_id, "n": n}).scalar()
    if used is None:
        raise refusal(conn, "registrations", member_id, n, now)
    add_usage(conn, member_id, now.date(), {t: {"registrations": c} for t, c in created.items()})
    metrics.count_registrations(created)


def record_rejection(engine: Engine, member_id: str, items_by_type: Mapping[str, int],
                     now: dt.datetime) -> None:
    """Count refused items (after the refused request's own transaction rolled back)."""
    with engine.begin() as conn:
        add_usage(conn, member_id, now.date(),
                  {t: {"quota_rejections": n} for t, n in items_by_type.items()})


@dataclass(frozen=True)
class NonceClaim:
    """A request nonce to claim together with the count (a look-up claims its nonce in
    the counting statement: one round trip fewer)."""

    key_id: str
    nonce: str
    created: int


class LookupCounter(Protocol):
    def count(self, member_id: str, lookups: Mapping[str, int], hits: Mapping[str, int],
              now: dt.datetime, nonce: NonceClaim | None = None) -> None:
        """Count a look-up batch or raise ``QuotaExceeded`` (then nothing is counted
        but the rejection). With ``nonce``, claim it in the same step first: a replay
        raises ``ReplayedRequest`` and counts nothing."""

    def used(self, conn: Connection, member_id: str, day: dt.date) -> int:
        """Look-ups counted against the member's quota that day."""

    def lookup(self, member_id: str, lookups: Mapping[str, int],
               exact: Mapping[bytes, Sequence[int]], folded: Mapping[bytes, Sequence[int]],
               types: Sequence[str], now: dt.datetime, nonce: NonceClaim,
               hits_of: Callable[[list[tuple[Any, ...]]], Mapping[str, int]]
               ) -> list[tuple[Any, ...]]:
        """A whole look-up's database work: claim the nonce, count the batch (and the
        hits ``hits_of`` finds in the matching rows) and match; the matching rows.
        ``exact`` and ``folded``: each token hash and the indexes of the items that
        carry it; ``types``: each item's identifier type."""


class DatabaseLookupCounter:
    """``quota_usage`` and ``daily_usage`` in one statement on the request's hot-path
    connection; the rare refusal reads the counter and limit through SQLAlchemy."""

    def __init__(self, hot: HotPath | None = None, engine: Engine | None = None,
                 nonces: DatabaseNonceStore | None = None) -> None:
        self.hot = hot
        self.engine = engine
        self.nonces = nonces

    def count(self, member_id: str, lookups: Mapping[str, int], hits: Mapping[str, int],
              now: dt.datetime, nonce: NonceClaim | None = None) -> None:
        assert self.hot is not None and self.engine is not None
        if nonce is not None:
            assert self.nonces is not None
            self.nonces.check_epoch(nonce.created)
            claimed, used = self.hot.count_lookups(
                member_id, now.date(), dict(lookups), dict(hits),
                nonce_key=nonce_key(nonce.key_id, nonce.nonce), nonce_expires=now + NONCE_TTL)
            if not claimed:
                raise replayed()
            self.nonces.sweep_now_and_then(now)
        else:
            used = self.hot.count_lookups(member_id, now.date(), dict(lookups), dict(hits))[1]
        if used is None:
            self._refuse(member_id, lookups, now)
        metrics.count_lookups({t: (c, hits.get(t, 0)) for t, c in lookups.items()})

    def used(self, conn: Connection, member_id: str, day: dt.date) -> int:
        return int(conn.execute(statements(conn).used, {"day": day, "member_id": member_id,
                                                        "quota": "lookups"}).scalar() or 0)

    def lookup(self, member_id: str, lookups: Mapping[str, int],
               exact: Mapping[bytes, Sequence[int]], folded: Mapping[bytes, Sequence[int]],
               types: Sequence[str], now: dt.datetime, nonce: NonceClaim,
               hits_of: Callable[[list[tuple[Any, ...]]], Mapping[str, int]]
               ) -> list[tuple[Any, ...]]:
        assert self.hot is not None and self.nonces is not None
        self.nonces.check_epoch(nonce.created)
        claimed, used, rows, hits = self.hot.lookup(
            member_id, now.date(), dict(lookups), exact, folded, types, now, hits_of,
            nonce_key=nonce_key(nonce.key_id, nonce.nonce), nonce_expires=now + NONCE_TTL)
        if not claimed:
            raise replayed()
        self.nonces.sweep_now_and_then(now)
        if used is None:
            self._refuse(member_id, lookups, now)
        metrics.count_lookups({t: (c, hits.get(t, 0)) for t, c in lookups.items()})
        return rows

    def _refuse(self, member_id: str, lookups: Mapping[str, int], now: dt.datetime) -> None:
        assert self.engine is not None
        with self.engine.begin() as conn:
            error = refusal(conn, "lookups", member_id, sum(lookups.values()), now)
            add_usage(conn, member_id, now.date(), {t: {"quota_rejections": c}
                                                    for t, c in lookups.items()})
        raise error


# KEYS[1]: the member's counter for the day, KEYS[2]: the usage buffer, and with a
# nonce to claim first KEYS[3]: the nonce, KEYS[4]: the nonce store's epoch.
# ARGV: n, limit, expire-at, nonce ttl, created, now, then (field, increment) pairs.
# Returns {1, used after}, {0, used before} (refused), {-1, 0} (replayed) or
# {-2, epoch} (signed before the nonce store's memory began; auth.nonces).
_COUNT_LUA = """
if #KEYS > 2 then
  local epoch = redis.call('GET', KEYS[4])
  if not epoch then
    epoch = ARGV[6]
    redis.call('SET', KEYS[4], epoch)
  end
  if tonumber(ARGV[5]) <= tonumber(epoch) then return {-2, tonumber(epoch)} end
  if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[4]) then return {-1, 0} end
end
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
if used + n > tonumber(ARGV[2]) then return {0, used} end
redis.call('INCRBY', KEYS[1], n)
redis.call('EXPIREAT', KEYS[1], ARGV[3])
for i = 7, #ARGV, 2 do redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1]) end
return {1, used + n}
"""
# KEYS[1]: buffer, KEYS[2]: batch being folded, KEYS[3]: its id. ARGV[1]: a new id.
# Returns {id, field, value, field, value, ...} of the batch to fold (empty: nothing).
_TAKE_LUA = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('SET', KEYS[3], ARGV[1])
end
local out = {redis.call('GET', KEYS[3])}
for _, v in ipairs(redis.call('HGETALL', KEYS[2])) do out[#out + 1] = v end
return out
"""


def _known_members(conn: Connection, member_ids: set[str]) -> set[str]:
    found: set[str] = set()
    ids = sorted(member_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        found.update(row[0] for row in conn.execute(
            text("SELECT id FROM members WHERE id IN :ids").bindparams(
                bindparam("ids", expanding=True)), {"ids": chunk}))
    return found


class RedisLookupCounter:
    """Look-up quotas and usage in Redis; see the module docstring."""

    def __init__(self, client: Any, prefix: str, limits: Any, engine: Engine,
                 hot: HotPath) -> None:
        self.hot = hot
        self.redis = client
        self.prefix = prefix
        self.limits = limits  # member_id -> lookups limit, cached (quotas.services)
        self.engine = engine
        self._count = client.register_script(_COUNT_LUA)
        self._take = client.register_script(_TAKE_LUA)
        self._next_flush = time.monotonic() + FLUSH_SECONDS
        self._flush_lock = threading.Lock()

    def key(self, member_id: str, day: dt.date) -> str:
        return f"{self.prefix}lookups:{member_id}:{day.isoformat()}"

    @property
    def buffer_keys(self) -> list[str]:
        return [f"{self.prefix}usage", f"{self.prefix}usage:folding",
                f"{self.prefix}usage:folding-id"]

    def count(self, member_id: str, lookups: Mapping[str, int], hits: Mapping[str, int],
              now: dt.datetime, nonce: NonceClaim | None = None) -> None:
        n = sum(lookups.values())
        day = now.date().isoformat()
        fields: list[Any] = []
        for id_type, count in lookups.items():
            fields += [f"{day}|{member_id}|{id_type}|lookups", count]
            if hits.get(id_type):
                fields += [f"{day}|{member_id}|{id_type}|hits", hits[id_type]]
        limit = self.limits(member_id)
        expire_at = int(next_midnight(now).timestamp()) + 3600
        keys = [self.key(member_id, now.date()), self.buffer_keys[0]]
        created = 0
        if nonce is not None:
            keys += [REDIS_PREFIX + nonce_key(nonce.key_id, nonce.nonce), EPOCH_KEY]
            created = nonce.created
        taken, used = self._count(keys=keys, args=[
            n, limit, expire_at, int(NONCE_TTL.total_seconds()), created, int(time.time()),
            *fields])
        if taken == -1:
            raise replayed()
        if taken == -2:
            raise restarted(created, int(used))
        if not taken:
            pipe = self.redis.pipeline(transaction=False)
            for id_type, count in lookups.items():
                pipe.hincrby(self.buffer_keys[0], f"{day}|{member_id}|{id_type}|quota_rejections",
                             count)
            pipe.execute()
            with self.engine.connect() as conn:
                raise refusal(conn, "lookups", member_id, n, now, used=int(used))
        metrics.count_lookups({t: (lookups[t], hits.get(t, 0)) for t in lookups})
        self.maybe_flush()

    def used(self, conn: Connection, member_id: str, day: dt.date) -> int:
        return int(self.redis.get(self.key(member_id, day)) or 0)

    def lookup(self, member_id: str, lookups: Mapping[str, int],
               exact: Mapping[bytes, Sequence[int]], folded: Mapping[bytes, Sequence[int]],
               types: Sequence[str], now: dt.datetime, nonce: NonceClaim,
               hits_of: Callable[[list[tuple[Any, ...]]], Mapping[str, int]]
               ) -> list[tuple[Any, ...]]:
        rows = self.hot.match(list(exact), list(folded), now)
        self.count(member_id, lookups, hits_of(rows), now, nonce)
        return rows

    def maybe_flush(self) -> None:
        """Fold the buffer now and then, on the way out of a look-up that has already
        been counted: a fold that fails is logged and tried again later, and never fails
        the look-up it rides on (retried, that look-up would be counted twice)."""
        if time.monotonic() >= self._next_flush and self._flush_lock.acquire(False):
            try:
                self._next_flush = time.monotonic() + FLUSH_SECONDS
                self.flush()
            except Exception as error:
                # An outage in one line, a bug with its traceback (as errors.py logs).
                outage = outages.dependency_of(error) is not None
                _log.log(logging.WARNING if outage else logging.ERROR,
                         "folding the look-up usage buffer into daily_usage failed: %s; the "
                         "batch stays in Redis and is folded again in %d s",
                         outages.describe(error) if outage
                         else outages.describe_with_traceback(error), FLUSH_SECONDS)
            finally:
                self._flush_lock.release()

    def flush(self) -> int:
        """Fold the usage buffer into ``daily_usage`` exactly once; returns rows folded."""
        lock = f"{self.prefix}usage:lock"
        if not self.redis.set(lock, b"1", nx=True, px=30_000):
            return 0  # another worker is folding
        try:
            taken = self._take(keys=self.buffer_keys, args=[secrets.token_hex(8)])
            if not taken:
                return 0
            batch_id = taken[0].decode()
            rows: dict[tuple[str, str], dict[str, dict[str, int]]] = {}
            for i in range(1, len(taken), 2):
                day, member_id, id_type, counter = taken[i].decode().split("|")
                rows.setdefault((day, member_id), {}).setdefault(id_type, {})[counter] = int(
                    taken[i + 1])
            with self.engine.begin() as conn:
                # The batch id makes folding idempotent: a batch whose fold committed but
                # whose buffer was not yet dropped (the worker died) is not added twice.
                done = conn.execute(text("SELECT 1 FROM usage_flushes WHERE id = :id"),
                                    {"id": batch_id}).first()
                if done is None:
                    known = _known_members(conn, {member_id for _, member_id in rows})
                    strays = sorted({m for _, m in rows if m not in known})
                    if strays:
                        # Another deployment sharing this Redis and key prefix, or a
                        # member purged meanwhile: rows nobody here can own. Folding them
                        # would fail the whole batch, every time.
                        _log.warning(
                            "dropped look-up usage of %d member id(s) this database does "
                            "not know (%s): does another CLUE share this Redis database "
                            "and key prefix?", len(strays), ", ".join(strays[:5]))
                    for (day, member_id), by_type in rows.items():
                        if member_id in known:
                            add_usage(conn, member_id, dt.date.fromisoformat(day), by_type)
                    conn.execute(text("INSERT INTO usage_flushes (id, folded_at) "
                                      "VALUES (:id, :at)"),
                                 {"id": batch_id, "at": dt.datetime.now(dt.UTC)})
            self.redis.delete(self.buffer_keys[1], self.buffer_keys[2])
            return len(taken) // 2
        finally:
            self.redis.delete(lock)
