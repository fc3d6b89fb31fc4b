"""Database engine and sessions (SQLAlchemy 2).

SQLite is the embedded default (WAL mode, foreign keys on); PostgreSQL via
psycopg 3 in production. One session per request, closed at teardown.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import DateTime, Engine, MetaData, TypeDecorator, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso_utc(value: dt.datetime) -> str:
    """The API's one timestamp form: UTC, whole seconds, ``Z``."""
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def make_engine(url: str, *, durable: bool = True, pool_size: int = 5) -> Engine:
    """An engine for ``url``. ``durable=False`` (replay nonces only) commits without
    waiting for the disk: SQLite ``synchronous = NORMAL``; the PostgreSQL side is set
    in ``hotpath.fast_engine``.

    Statement parameters never reach a log line (``hide_parameters``): they hold
    peppered token hashes, which must not leak into error logs.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        synchronous = "FULL" if durable else "NORMAL"

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # pysqlite's own transaction handling defers BEGIN; we issue
            # BEGIN IMMEDIATE ourselves so concurrent writers queue instead of
            # failing half-way with "database is locked".
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        @event.listens_for(engine, "handle_error")
        def _sqlite_heal(context: Any) -> None:
            # SQLite opens a file it cannot write read-only, and such a connection stays
            # read-only after the file is writable again: treat it as a lost connection
            # so the pool replaces it.
            if "readonly database" in str(context.original_exception).lower():
                context.is_disconnect = True

        return engine
    # The hot path's connections (durable=False, one per worker thread, see hotpath) run
    # without a pre-ping: one that died with the server fails once, the request answers
    # 503 for the client to retry, and the thread makes a new one. The app's other work
    # (key cache refreshes, registrations, the console) checks a connection out a few
    # times a second at most: a pre-ping round trip there costs little and heals a
    # restarted server without a single failed request.
    return create_engine(url, pool_size=pool_size, max_overflow=10, hide_parameters=True,
                         pool_pre_ping=durable)


#: Seconds a Redis call may take before the request answers 503 (a frozen Redis must
#: not hold a worker).
REDIS_TIMEOUT = 0.5


def make_redis(url: str) -> Any:
    """A Redis client with timeouts on every socket operation, and one immediate retry on a
    new connection (a connection that died with a restarted Redis heals at once)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT,
                                socket_connect_timeout=REDIS_TIMEOUT,
                                retry=Retry(NoBackoff(), 1), health_check_interval=30)


def init_app(app: Flask, url: str) -> None:
    engine = make_engine(url)
    app.extensions["clue_engine"] = engine
    # Sessions carry the app's extensions, so services called outside a request (CLI,
    # console) find the app's shared state (e.g. the Redis look-up counter).
    app.extensions["clue_sessionmaker"] = sessionmaker(
        engine, expire_on_commit=False, info={"clue_extensions": app.extensions})

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


def dispose(app: Flask) -> None:
    """Close everything the app holds open: its engines (the main one and the hot path's),
    this thread's hot-path connection, its Redis client."""
    extensions = app.extensions
    if "clue_hot" in extensions:
        extensions["clue_hot"].close()
    for name in ("clue_fast_engine", "clue_engine"):
        if name in extensions:
            extensions[name].dispose()
    if extensions.get("clue_redis") is not None:
        extensions["clue_redis"].close()


def get_session() -> Session:
    """The request's session (created on first use)."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["clue_sessionmaker"]()
    session: Session = g.db_session
    return session


@contextmanager
def session_scope(app: Flask) -> Iterator[Session]:
    """A session outside a request (CLI commands): commit on success, roll back on error."""
    session: Session = app.extensions["clue_sessionmaker"]()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# -- plain SQL on the driver's connection (hotpath, reports.bulk) ---------------------------

def split_bytes_sql(p: str, width: int) -> str:
    """Values of ``width`` bytes sent concatenated as one ``bytea`` (``p``), split back
    into an array by the server: psycopg would adapt a Python list element by element."""
    return (f"ARRAY(SELECT substring({p} FROM i * {width} + 1 FOR {width}) "  # noqa: S608 - the caller's placeholder
            f"FROM generate_series(0, length({p}) / {width} - 1) AS i)")


def sqlite_time(value: dt.datetime) -> str:
    """How SQLAlchemy's SQLite DATETIME stores a UTC time (``db.UtcDateTime``)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def from_sqlite_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
