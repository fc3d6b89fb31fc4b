"""The look-up path's database statements, on the driver's own connection.

On PostgreSQL a look-up is one statement: claim the nonce, count against the quota,
match, and add the batch and its hits to the day's usage. Other signed requests claim
their nonce in a statement of their own. Through SQLAlchemy each statement costs tens
of microseconds of Python around the driver call (compiled-cache lookup, execution
context, result wrapping); here they are fixed SQL texts run on a DB-API connection
(psycopg 3, prepared on the server; sqlite3, cached statements) that each worker thread
keeps, with one cursor reused. Everything else in the server keeps SQLAlchemy.

On PostgreSQL the connection is in autocommit mode with ``synchronous_commit = off``: a
nonce claim and a look-up count each commit as one statement without waiting for the
disk (see ``auth.nonces`` for why that is safe). Its prepared statements keep their
generic plans (``plan_cache_mode``, see ``fast_engine``). On SQLite the counting runs
in its own ``BEGIN IMMEDIATE`` transaction, with ``synchronous = NORMAL``.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, event

from clue_server.db import from_sqlite_time, sqlite_time
from clue_server.quotas.counters import limit_sql

_MATCH_COLUMNS = (
    "r.id, r.member_id, r.id_type, r.category, r.created_at, r.token_hash, r.folded_hash, "
    "EXISTS (SELECT 1 FROM dispute_reports dr JOIN disputes d ON d.id = dr.dispute_id "
    "WHERE dr.report_id = r.id AND d.status = 'open')")
_LIVE = "r.expires_at > :now AND r.suspended_at IS NULL"


def pg_placeholders(sql: str) -> str:
    """``:name`` placeholders to psycopg's ``%(name)s``."""
    return re.sub(r"(?<![:\w]):([a-z_]+)", r"%(\1)s", sql)


_pg = pg_placeholders  # the short name the statements below use


class HotPath:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()
        self.postgres = engine.dialect.name == "postgresql"
        lookups_limit = limit_sql("lookups", engine.dialect.name)
        quota_upsert = (
            "INSERT INTO quota_usage (day, member_id, quota, used) "
            f"SELECT :day, :member_id, 'lookups', :n WHERE :n <= {lookups_limit} "
            "ON CONFLICT (day, member_id, quota) DO UPDATE SET used = quota_usage.used + "
            f"excluded.used WHERE quota_usage.used + excluded.used <= {lookups_limit} "
            "RETURNING used")
        self.nonce_sql = ("INSERT INTO seen_nonces (key, expires_at) VALUES (:key, :expires_at) "
                          "ON CONFLICT DO NOTHING RETURNING 1")
        self.sweep_sql = "DELETE FROM seen_nonces WHERE expires_at < :now"
        if self.postgres:
            self.nonce_sql, self.sweep_sql = _pg(self.nonce_sql), _pg(self.sweep_sql)
            quota_pg = (
                "INSERT INTO quota_usage (day, member_id, quota, used) "  # noqa: S608
                "SELECT %(day)s::date, %(member_id)s::varchar, 'lookups', %(n)s::bigint "
                f"WHERE EXISTS (SELECT 1 FROM n) AND %(n)s::bigint <= {_pg(lookups_limit)} "
                "ON CONFLICT (day, member_id, quota) DO UPDATE SET used = quota_usage.used + "
                f"excluded.used WHERE quota_usage.used + excluded.used <= {_pg(lookups_limit)} "
                "RETURNING used")
            # Everything a look-up does to the database, in one round trip and one commit:
            # claim the nonce (a replay changes nothing), add the batch to the quota if it
            # fits, match, and add the batch and its hits to the day's usage. The match
            # comes back beside the claim and the count, on at least one row. ``ex`` and
            # ``fx`` pair each token hash (exact, folded) with the index and type of an
            # item carrying it; an item is a hit if a live report of its type matches
            # one of its hashes (as ``lookups.services.lookup`` finds in Python).
            def pairs(name: str) -> str:
                return (f"SELECT substring(%({name})b::bytea FROM k::int * 32 - 31 FOR 32) "  # noqa: S608
                        f"AS h, x.i, x.t FROM unnest(string_to_array(%({name}_items)s, ',')"
                        f"::integer[], string_to_array(%({name}_types)s, ',')) "
                        "WITH ORDINALITY AS x(i, t, k)")
            self.lookup_sql = (
                "WITH n AS (INSERT INTO seen_nonces (key, expires_at) "  # noqa: S608
                "VALUES (%(key)s, %(expires_at)s) ON CONFLICT DO NOTHING RETURNING 1), "
                f"q AS ({quota_pg}), ex AS ({pairs('exact')}), fx AS ({pairs('folded')}), "
                f"m AS (SELECT {_MATCH_COLUMNS} FROM reports r WHERE "
                "(r.token_hash = ANY(ARRAY(SELECT h FROM ex)) "
                "OR r.folded_hash = ANY(ARRAY(SELECT h FROM fx))) "
                "AND r.expires_at > %(now)s AND r.suspended_at IS NULL), "
                "hit AS (SELECT ex.i, ex.t FROM ex JOIN m ON m.token_hash = ex.h "
                "AND m.id_type = ex.t UNION SELECT fx.i, fx.t FROM fx JOIN m "
                "ON m.folded_hash = fx.h AND m.id_type = fx.t), "
                "u AS (INSERT INTO daily_usage (day, member_id, id_type, lookups, hits, "
                "registrations, quota_rejections) SELECT %(day)s::date, "
                "%(member_id)s::varchar, v.t, v.l, "
                "(SELECT count(*) FROM hit WHERE hit.t = v.t), 0, 0 FROM unnest("
                "string_to_array(%(types)s, ','), "
                "string_to_array(%(counts)s, ',')::integer[]) AS v(t, l) "
                "WHERE EXISTS (SELECT 1 FROM q) ON CONFLICT (day, member_id, id_type) "
                "DO UPDATE SET lookups = daily_usage.lookups + excluded.lookups, "
                "hits = daily_usage.hits + excluded.hits) "
                "SELECT EXISTS (SELECT 1 FROM n), (SELECT used FROM q), m.* "
                "FROM (VALUES (1)) AS one(x) LEFT JOIN m ON true")
            self.match_exact = _pg(f"SELECT {_MATCH_COLUMNS} FROM reports r "  # noqa: S608
                                   f"WHERE r.token_hash = ANY(:exact) AND {_LIVE}")
            self.match_both = _pg(f"SELECT {_MATCH_COLUMNS} FROM reports r "  # noqa: S608
                                  "WHERE (r.token_hash = ANY(:exact) OR "
                                  f"r.folded_hash = ANY(:folded)) AND {_LIVE}")
            typed = (quota_upsert.replace(":day", "CAST(:day AS date)")
                     .replace(":member_id", "CAST(:member_id AS varchar)")
                     .replace(":n", "CAST(:n AS bigint)"))
            usage = (
                "u AS (INSERT INTO daily_usage (day, member_id, id_type, lookups, hits, "
                "registrations, quota_rejections) "
                "SELECT CAST(:day AS date), CAST(:member_id AS varchar), v.t, v.l, v.h, 0, 0 "
                "FROM unnest(CAST(:types AS varchar[]), CAST(:lookups AS integer[]), "
                "CAST(:hits AS integer[])) AS v(t, l, h) WHERE EXISTS (SELECT 1 FROM q) "
                "ON CONFLICT (day, member_id, id_type) DO UPDATE SET "
                "lookups = daily_usage.lookups + excluded.lookups, "
                "hits = daily_usage.hits + excluded.hits)")
            # The nonce, the quota and the day's usage in one statement: one round trip,
            # one commit. A replay (the nonce is there) counts nothing; a refusal for
            # quota still records the nonce.
            claimed = typed.replace(" WHERE CAST(:n AS bigint) <= ",
                                    " WHERE EXISTS (SELECT 1 FROM n) AND CAST(:n AS bigint) <= ")
            assert claimed != typed
            self.claim_count_sql = _pg(
                "WITH n AS (INSERT INTO seen_nonces (key, expires_at) VALUES "  # noqa: S608
                "(CAST(:key AS varchar), CAST(:expires_at AS timestamptz)) "
                f"ON CONFLICT DO NOTHING RETURNING 1), q AS ({claimed}), {usage} "
                "SELECT EXISTS (SELECT 1 FROM n), (SELECT used FROM q)")
            # Quota and the day's usage in one statement: one round trip, one commit.
            self.count_sql = _pg(
                f"WITH q AS ({typed}), "  # noqa: S608 - constants only
                "u AS (INSERT INTO daily_usage (day, member_id, id_type, lookups, hits, "
                "registrations, quota_rejections) "
                "SELECT CAST(:day AS date), CAST(:member_id AS varchar), v.t, v.l, v.h, 0, 0 "
                "FROM unnest(CAST(:types AS varchar[]), CAST(:lookups AS integer[]), "
                "CAST(:hits AS integer[])) AS v(t, l, h) WHERE EXISTS (SELECT 1 FROM q) "
                "ON CONFLICT (day, member_id, id_type) DO UPDATE SET "
                "lookups = daily_usage.lookups + excluded.lookups, "
                "hits = daily_usage.hits + excluded.hits) "
                "SELECT used FROM q")
        else:
            self.quota_sql = quota_upsert
            self.usage_sql = (
                "INSERT INTO daily_usage (day, member_id, id_type, lookups, hits, "
                "registrations, quota_rejections) SELECT :day, :member_id, :id_type, :lookups, "
                ":hits, 0, 0 WHERE true ON CONFLICT (day, member_id, id_type) DO UPDATE SET "
                "lookups = daily_usage.lookups + excluded.lookups, "
                "hits = daily_usage.hits + excluded.hits")
            self._match_sqlite: dict[tuple[int, int], str] = {}

    # -- the thread's connection --------------------------------------------------------

    def connection(self) -> Any:
        """This thread's DB-API connection, checked out of the pool once and kept (a
        check-out and check-in per request cost more than the statements' own Python)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.engine.raw_connection()
        return conn

    def release(self, exc: BaseException | None = None) -> None:
        """At the end of a request: after a database error, give the connection back so
        that the pool discards or checks it (a server that restarted kills them all)."""
        if exc is not None and getattr(self._local, "conn", None) is not None:
            self.discard()

    def close(self) -> None:
        """Give this thread's connection back (the app is going away: tests, shutdown)."""
        conn, self._local.conn = getattr(self._local, "conn", None), None
        if conn is not None:
            conn.close()

    def discard(self) -> None:
        """Drop this thread's connection (after a database error: the next request makes
        a new one, so a restarted server or a file writable again heals at once)."""
        conn, self._local.conn = getattr(self._local, "conn", None), None
        if conn is None:
            return
        try:
            conn.invalidate()
        except Exception:  # noqa: S110 - already broken: nothing more to do
            pass

    def cursor(self) -> Any:
        """The request connection's cursor, kept with the connection and reused (a new
        psycopg cursor per statement costs about 20 us)."""
        conn = self.connection()
        cursor = conn.info.get("clue_cursor")
        if cursor is None:
            cursor = conn.info["clue_cursor"] = conn.cursor()
        return cursor

    def epoch(self) -> int | None:
        """When this connection's database server started (PostgreSQL), else None."""
        value = self.connection().info.get("clue_epoch")
        return int(value) if value is not None else None

    # -- statements -------------------------------------------------------------------------

    def claim_nonce(self, key: str, expires_at: dt.datetime) -> bool:
        cursor = self.cursor()
        if self.postgres:
            cursor.execute(self.nonce_sql, {"key": key, "expires_at": expires_at},
                           prepare=True)
            return cursor.fetchone() is not None
        cursor.execute(self.nonce_sql, {"key": key, "expires_at": sqlite_time(expires_at)})
        return cursor.fetchone() is not None

    def sweep_nonces(self, now: dt.datetime) -> None:
        # Every 10 s at most: planned each time with its real bound (how much of the
        # table has expired), never kept as a generic plan.
        if self.postgres:
            self.cursor().execute(self.sweep_sql, {"now": now}, prepare=False)
        else:
            self.cursor().execute(self.sweep_sql, {"now": sqlite_time(now)})

    def match(self, exact: Sequence[bytes], folded: Sequence[bytes], now: dt.datetime
              ) -> list[tuple[Any, ...]]:
        """Live reports whose token hash is in ``exact`` or folded hash in ``folded``:
        ``(id, member_id, id_type, category, created_at, token_hash, folded_hash,
        disputed)``, ``created_at`` an aware UTC datetime."""
        cursor = self.cursor()
        if self.postgres:
            params: dict[str, Any] = {"exact": list(exact), "now": now}
            if folded:
                params["folded"] = list(folded)
            cursor.execute(self.match_both if folded else self.match_exact, params,
                           prepare=True)
            return [tuple(row) for row in cursor.fetchall()]
        sql = self._sqlite_match(len(exact), len(folded))
        cursor.execute(sql, [*exact, *folded, sqlite_time(now)])
        return [(*row[:4], from_sqlite_time(row[4]), *row[5:7], bool(row[7]))
                for row in cursor.fetchall()]

    def _sqlite_match(self, n_exact: int, n_folded: int) -> str:
        sql = self._match_sqlite.get((n_exact, n_folded))
        if sql is None:
            where = f"r.token_hash IN ({', '.join('?' * n_exact)})"
            if n_folded:
                where = f"({where} OR r.folded_hash IN ({', '.join('?' * n_folded)}))"
            sql = (f"SELECT {_MATCH_COLUMNS} FROM reports r WHERE {where} "  # noqa: S608
                   "AND r.expires_at > ? AND r.suspended_at IS NULL")
            if len(self._match_sqlite) < 256:
                self._match_sqlite[(n_exact, n_folded)] = sql
        return sql

    def lookup(self, member_id: str, day: dt.date, lookups: dict[str, int],
               exact: Mapping[bytes, Sequence[int]], folded: Mapping[bytes, Sequence[int]],
               item_types: Sequence[str], now: dt.datetime,
               hits_of: Callable[[list[tuple[Any, ...]]], Mapping[str, int]], *,
               nonce_key: str, nonce_expires: dt.datetime
               ) -> tuple[bool, int | None, list[tuple[Any, ...]], Mapping[str, int]]:
        """Claim the nonce, count the batch and its hits if it fits, and match: (nonce
        claimed, count after the batch or None when it did not fit, the matching rows as
        ``match`` gives them, the hits per type as ``hits_of`` finds them in the rows).
        A replay changes nothing; a refusal keeps the nonce. ``exact``/``folded``: each
        hash and the indexes of the items carrying it, ``item_types`` their types. On
        PostgreSQL all of it is one statement, which counts the hits itself; on SQLite
        the count, then the match, then the hits."""
        if not self.postgres:
            claimed, used = self.count_lookups(member_id, day, lookups, {},
                                               nonce_key=nonce_key, nonce_expires=nonce_expires)
            if not claimed:
                return False, None, [], {}
            rows = self.match(list(exact), list(folded), now)
            hits = hits_of(rows)
            if hits and used is not None:
                self._add_hits(member_id, day, dict(hits))
            return True, used, rows, hits
        types = sorted(lookups)
        params: dict[str, Any] = {
            "key": nonce_key, "expires_at": nonce_expires, "day": day, "member_id": member_id,
            "n": sum(lookups.values()), "types": ",".join(types),
            "counts": ",".join(str(lookups[t]) for t in types), "now": now}
        for name, of in (("exact", exact), ("folded", folded)):
            pairs = [(h, i) for h, indexes in of.items() for i in indexes]
            params[name] = b"".join(h for h, _ in pairs)
            params[f"{name}_items"] = ",".join(str(i) for _, i in pairs)
            params[f"{name}_types"] = ",".join(item_types[i] for _, i in pairs)
        cursor = self.cursor()
        cursor.execute(self.lookup_sql, params, prepare=True)
        rows = cursor.fetchall()
        claimed, used = rows[0][0], rows[0][1]
        matches = [tuple(row[2:]) for row in rows if row[2] is not None]
        return (bool(claimed), (int(used) if used is not None else None), matches,
                hits_of(matches))

    def _add_hits(self, member_id: str, day: dt.date, hits: dict[str, int]) -> None:
        """Add matched items to the day's usage rows the look-up's count created
        (SQLite; on PostgreSQL the look-up's statement counts them)."""
        types = sorted(hits)
        cursor = self.cursor()
        cursor.executemany(
            "UPDATE daily_usage SET hits = hits + :h WHERE day = :day AND "
            "member_id = :member_id AND id_type = :t",
            [{"h": hits[t], "day": day.isoformat(), "member_id": member_id, "t": t}
             for t in types])

    def count_lookups(self, member_id: str, day: dt.date, lookups: dict[str, int],
                      hits: dict[str, int], *, nonce_key: str | None = None,
                      nonce_expires: dt.datetime | None = None) -> tuple[bool, int | None]:
        """Claim the nonce (when given) and add the batch to the member's quota and the
        day's usage if it fits. Returns (nonce claimed, count after the batch or None
        when it does not fit); a nonce already seen changes nothing."""
        types = sorted(lookups)
        n = sum(lookups.values())
        cursor = self.cursor()
        if self.postgres:
            params: dict[str, Any] = {
                "day": day, "member_id": member_id, "n": n, "types": types,
                "lookups": [lookups[t] for t in types],
                "hits": [hits.get(t, 0) for t in types]}
            if nonce_key is None:
                cursor.execute(self.count_sql, params, prepare=True)
                row = cursor.fetchone()
                return True, (int(row[0]) if row is not None else None)
            params.update(key=nonce_key, expires_at=nonce_expires)
            cursor.execute(self.claim_count_sql, params, prepare=True)
            claimed, used = cursor.fetchone()
            return bool(claimed), (int(used) if used is not None else None)
        cursor.execute("BEGIN IMMEDIATE")
        try:
            if nonce_key is not None:
                assert nonce_expires is not None
                cursor.execute(self.nonce_sql, {"key": nonce_key,
                                                "expires_at": sqlite_time(nonce_expires)})
                if cursor.fetchone() is None:
                    cursor.execute("ROLLBACK")
                    return False, None
            cursor.execute(self.quota_sql, {"day": day.isoformat(), "member_id": member_id,
                                            "n": n})
            row = cursor.fetchone()
            if row is not None:
                cursor.executemany(self.usage_sql, [
                    {"day": day.isoformat(), "member_id": member_id, "id_type": t,
                     "lookups": lookups[t], "hits": hits.get(t, 0)} for t in types])
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        return True, (int(row[0]) if row is not None else None)




def fast_engine(url: str, make_engine: Any) -> Engine:
    """The engine the hot path draws its connections from: like the app's, but its
    commits do not wait for the disk, and on PostgreSQL it is in autocommit mode and
    knows when the server started (the nonce store's epoch)."""
    engine: Engine = make_engine(url, durable=False)
    if engine.dialect.name == "postgresql":
        @event.listens_for(engine, "connect")
        def _setup(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.autocommit = True
            cursor = dbapi_connection.cursor()
            cursor.execute("SET synchronous_commit = off")
            # Every statement here is prepared once and matches a few hashes or one
            # narrow bucket: the generic plan (by the indexes) is always the right one.
            # Left to choose, PostgreSQL re-planned the match and the bucket statements
            # on every execution (their generic plans look dear for want of estimates
            # of the parameters): 147 and 245-305 us of backend CPU each, against 37 and
            # 70-75 us with the plan kept (tests/functional/test_query_plans.py).
            cursor.execute("SET plan_cache_mode = force_generic_plan")
            cursor.execute("SELECT extract(epoch FROM pg_postmaster_start_time())::bigint")
            record.info["clue_epoch"] = int(cursor.fetchone()[0])
            cursor.close()
    return engine
