"""The look-up path's database statements, on the driver's own connection.

A look-up is three statements: claim the nonce, match, count. Through SQLAlchemy each
costs tens of microseconds of Python around the driver call (compiled-cache lookup,
execution context, result wrapping); here they are fixed SQL texts run on the DB-API
connection (psycopg 3, prepared on the server; sqlite3, cached statements), one pooled
connection per request. Everything else in the server keeps SQLAlchemy.

On PostgreSQL the connection is in autocommit mode with ``synchronous_commit = off``: a
nonce claim and a look-up count each commit as one statement without waiting for the
disk (see ``auth.nonces`` for why that is safe). On SQLite the counting runs in its
own ``BEGIN IMMEDIATE`` transaction, with ``synchronous = NORMAL``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from flask import g
from sqlalchemy import Engine, event

from clue_server.quotas.counters import limit_sql

_MATCH_COLUMNS = (
    "r.id, r.member_id, r.id_type, r.category, r.created_at, r.token_hash, r.folded_hash, "
    "EXISTS (SELECT 1 FROM dispute_reports dr JOIN disputes d ON d.id = dr.dispute_id "
    "WHERE dr.report_id = r.id AND d.status = 'open')")
_LIVE = "r.expires_at > :now AND r.suspended_at IS NULL"


def _pg(sql: str) -> str:
    """``:name`` placeholders to psycopg's ``%(name)s``."""
    return re.sub(r"(?<![:\w]):([a-z_]+)", r"%(\1)s", sql)


class HotPath:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
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
            self.match_exact = _pg(f"SELECT {_MATCH_COLUMNS} FROM reports r "  # noqa: S608
                                   f"WHERE r.token_hash = ANY(:exact) AND {_LIVE}")
            self.match_both = _pg(f"SELECT {_MATCH_COLUMNS} FROM reports r "  # noqa: S608
                                  "WHERE (r.token_hash = ANY(:exact) OR "
                                  f"r.folded_hash = ANY(:folded)) AND {_LIVE}")
            typed = (quota_upsert.replace(":day", "CAST(:day AS date)")
                     .replace(":member_id", "CAST(:member_id AS varchar)")
                     .replace(":n", "CAST(:n AS bigint)"))
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

    # -- the request's connection ---------------------------------------------------------

    def connection(self) -> Any:
        """This request's pooled DB-API connection (returned by ``release`` at teardown)."""
        conn = g.get("clue_hot_connection")
        if conn is None:
            conn = g.clue_hot_connection = self.engine.raw_connection()
        return conn

    @staticmethod
    def release(_exc: BaseException | None = None) -> None:
        conn = g.pop("clue_hot_connection", None)
        if conn is not None:
            conn.close()  # back to the pool (a dead one is discarded there)

    def epoch(self) -> int | None:
        """When this connection's database server started (PostgreSQL), else None."""
        value = self.connection().info.get("clue_epoch")
        return int(value) if value is not None else None

    # -- statements -------------------------------------------------------------------------

    def claim_nonce(self, key: str, expires_at: dt.datetime) -> bool:
        conn = self.connection()
        cursor = conn.cursor()
        try:
            if self.postgres:
                cursor.execute(self.nonce_sql, {"key": key, "expires_at": expires_at},
                               prepare=True)
                return cursor.fetchone() is not None
            cursor.execute(self.nonce_sql, {"key": key, "expires_at": _sqlite_time(expires_at)})
            return cursor.fetchone() is not None
        finally:
            cursor.close()

    def sweep_nonces(self, now: dt.datetime) -> None:
        cursor = self.connection().cursor()
        try:
            cursor.execute(self.sweep_sql, {"now": now if self.postgres else _sqlite_time(now)})
        finally:
            cursor.close()

    def match(self, exact: Sequence[bytes], folded: Sequence[bytes], now: dt.datetime
              ) -> list[tuple[Any, ...]]:
        """Live reports whose token hash is in ``exact`` or folded hash in ``folded``:
        ``(id, member_id, id_type, category, created_at, token_hash, folded_hash,
        disputed)``, ``created_at`` an aware UTC datetime."""
        cursor = self.connection().cursor()
        try:
            if self.postgres:
                params: dict[str, Any] = {"exact": list(exact), "now": now}
                if folded:
                    params["folded"] = list(folded)
                cursor.execute(self.match_both if folded else self.match_exact, params,
                               prepare=True)
                return [tuple(row) for row in cursor.fetchall()]
            sql = self._sqlite_match(len(exact), len(folded))
            cursor.execute(sql, [*exact, *folded, _sqlite_time(now)])
            return [(*row[:4], _from_sqlite_time(row[4]), *row[5:7], bool(row[7]))
                    for row in cursor.fetchall()]
        finally:
            cursor.close()

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

    def count_lookups(self, member_id: str, day: dt.date, lookups: dict[str, int],
                      hits: dict[str, int]) -> int | None:
        """Add the batch to the member's quota and the day's usage if it fits: the count
        after it, or None (nothing changed) when it does not fit."""
        types = sorted(lookups)
        n = sum(lookups.values())
        conn = self.connection()
        cursor = conn.cursor()
        try:
            if self.postgres:
                cursor.execute(self.count_sql, {
                    "day": day, "member_id": member_id, "n": n, "types": types,
                    "lookups": [lookups[t] for t in types],
                    "hits": [hits.get(t, 0) for t in types]}, prepare=True)
                row = cursor.fetchone()
                return int(row[0]) if row is not None else None
            cursor.execute("BEGIN IMMEDIATE")
            try:
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
            return int(row[0]) if row is not None else None
        finally:
            cursor.close()


def _sqlite_time(value: dt.datetime) -> str:
    """How SQLAlchemy's SQLite DATETIME stores a UTC time (``db.UtcDateTime``)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _from_sqlite_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


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
            cursor.execute("SELECT extract(epoch FROM pg_postmaster_start_time())::bigint")
            record.info["clue_epoch"] = int(cursor.fetchone()[0])
            cursor.close()
    return engine
