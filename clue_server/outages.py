"""Telling a dependency outage from a bug, and logging each outage once.

When PostgreSQL restarts or Redis goes away every request fails the same way; the
client must get a signed 503 with ``Retry-After`` (it retries within its deadline),
and the log must get one line when the outage starts and one when it ends, not a
traceback per request.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import traceback

from sqlalchemy import exc as sa_exc

#: A dependency is considered back when it has not failed for this long.
QUIET_SECONDS = 10.0

_SQLITE_TRANSIENT = ("unable to open database", "readonly database", "disk i/o error",
                     "database is locked", "database disk image is malformed")


def dependency_of(error: BaseException) -> str | None:
    """``"database"`` or ``"redis"`` when ``error`` means that service is unreachable or
    unusable right now, else None (a bug: log it in full)."""
    try:
        import redis
        from redis import exceptions as redis_errors
    except ImportError:  # pragma: no cover - redis is a dependency
        redis = None  # type: ignore[assignment]
    # A full (maxmemory, noeviction), read-only (a replica after failover) or
    # resyncing Redis refuses writes until an operator or its sentinel acts: an outage.
    if redis is not None and isinstance(error, redis.ConnectionError | redis.TimeoutError
                                        | redis.BusyLoadingError
                                        | redis_errors.OutOfMemoryError
                                        | redis_errors.ReadOnlyError
                                        | redis_errors.MasterDownError
                                        | redis_errors.TryAgainError):
        return "redis"
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated or isinstance(error, sa_exc.OperationalError
                                                      | sa_exc.InterfaceError):
            orig = error.orig
            if isinstance(orig, sqlite3.OperationalError) and not any(
                    text in str(orig).lower() for text in _SQLITE_TRANSIENT):
                return None  # e.g. a syntax error: a bug, not an outage
            return "database"
    if isinstance(error, sa_exc.TimeoutError):  # pool exhausted: the database is too slow
        return "database"
    # The hot path talks to the driver directly (clue_server.hotpath): its errors arrive
    # unwrapped.
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        psycopg = None  # type: ignore[assignment]
    if psycopg is not None and isinstance(error, psycopg.OperationalError
                                          | psycopg.InterfaceError):
        return "database"
    if isinstance(error, sqlite3.OperationalError) and any(
            text in str(error).lower() for text in _SQLITE_TRANSIENT):
        return "database"
    return None


def describe(error: BaseException) -> str:
    """A short description that carries no statement parameters or row values.

    PostgreSQL's messages can quote a value (``invalid input syntax for type integer:
    "..."``, a DETAIL naming a key), so only the error class, its SQLSTATE and the names
    of the table, column and constraint involved are kept; SQLite's messages name tables
    and columns and never quote values.
    """
    orig = getattr(error, "orig", None) or error
    diag = getattr(orig, "diag", None)
    name = f"{type(orig).__module__}.{type(orig).__name__}"
    if diag is not None:
        where = ", ".join(f"{label} {value}" for label, value in (
            ("table", diag.table_name), ("column", diag.column_name),
            ("constraint", diag.constraint_name)) if value)
        return f"{name} (sqlstate {diag.sqlstate}{', ' + where if where else ''})"
    if isinstance(orig, sqlite3.Error):
        return f"{name}: {orig}"
    return name


def describe_with_traceback(error: BaseException) -> str:
    """:func:`describe` and the traceback, for what is a bug rather than an outage: the
    frames without the exception's own text, which may quote row values."""
    return describe(error) + "\n" + "".join(traceback.format_tb(error.__traceback__))


class OutageLog:
    """One log line per outage of each dependency, and one when it is over."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._lock = threading.Lock()
        self._down: dict[str, tuple[float, float, int]] = {}  # since, last, failures

    def failed(self, dependency: str, error: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self._close_quiet(now)
            since, _last, count = self._down.get(dependency, (now, now, 0))
            first = count == 0
            self._down[dependency] = (since, now, count + 1)
        if first:
            self.logger.error("%s unavailable (%s); answering 503 until it is back",
                              dependency, describe(error))

    def succeeded(self) -> None:
        if self._down:
            with self._lock:
                self._close_quiet(time.monotonic())

    def _close_quiet(self, now: float) -> None:
        for dependency, (since, last, count) in list(self._down.items()):
            if now - last >= QUIET_SECONDS:
                del self._down[dependency]
                self.logger.warning("%s back after %.1f s (%d request(s) answered 503)",
                                    dependency, last - since, count)
