"""End-to-end fixtures: real gunicorn (2 sync workers) on SQLite and on PostgreSQL.

Starting gunicorn costs seconds, so each server is package-scoped (stopped when
the last e2e test is done) and shared by the e2e modules: per backend one server
with the database nonce store and, for the replay test, one with Redis. Tests
keep out of each other's way by admitting their own members; nothing here
assumes an empty database beyond the start.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

import keys
from clue_server import create_app, db
from clue_server.devserver import Gunicorn
from clue_server.keystore import ServerKeys, load_server_keys
from clue_server.members import services as members
from tests.conftest import TABLES
from tests.helpers import Creds

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
# The worker pid in every access-log line shows which worker served a request.
ACCESS_LOG_FORMAT = '%(p)s "%(r)s" %(s)s'
_ACCESS_LINE = re.compile(r'^<(?P<pid>\d+)> "(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[\d.]+" '
                          r"(?P<status>\d{3})$")


@dataclass(frozen=True)
class AccessLine:
    pid: int
    method: str
    target: str
    status: int


@dataclass
class Server:
    """A running gunicorn, its settings, and an in-process app on the same database."""

    url: str
    env: dict[str, str]
    log: Path
    keys: ServerKeys
    app: Any

    def admit(self, name: str) -> Creds:
        """Admit a member through the council's service layer (as ``clue-server member add``)."""
        key = keys.generate_signing_key()
        with db.session_scope(self.app) as session:
            member = members.add_member(session, name, key.public_key())
            return Creds(member.id, key)

    def log_mark(self) -> int:
        return self.log.stat().st_size

    def access_since(self, mark: int, *, expect: int, method: str | None = None,
                     path: str | None = None, timeout: float = 10.0) -> list[AccessLine]:
        """Access-log lines written after ``mark`` (waiting for ``expect`` of them).

        gunicorn writes the line just after sending the answer, so the client can
        be a moment ahead of the log.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self.log.open("rb") as handle:
                handle.seek(mark)
                lines = [_parse(raw) for raw in handle.read().decode(errors="replace")
                         .splitlines()]
            found = [a for a in lines if a is not None
                     and (method is None or a.method == method)
                     and (path is None or a.target.split("?")[0] == path)]
            if len(found) >= expect or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


def _parse(line: str) -> AccessLine | None:
    match = _ACCESS_LINE.match(line.strip())
    if match is None:
        return None
    return AccessLine(int(match["pid"]), match["method"], match["target"], int(match["status"]))


@pytest.fixture(scope="package", params=BACKENDS)
def e2e_database_url(request: pytest.FixtureRequest,
                     tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database for one backend, shared by every e2e server on it."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("e2e-sqlite") / "clue.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    engine.dispose()
    return url


def _serve(tmp_path_factory: pytest.TempPathFactory, name: str, database_url: str,
           keys_dir: Path, redis_url: str | None) -> Iterator[Server]:
    root = tmp_path_factory.mktemp(name)
    env = {"CLUE_DATABASE_URL": database_url, "CLUE_SERVER_KEYS_DIR": str(keys_dir),
           # Empty means "no Redis" (the database nonce store), whatever the caller's env says.
           "CLUE_REDIS_URL": redis_url or ""}
    app = create_app({"database_url": database_url, "server_keys_dir": keys_dir,
                      "redis_url": None}, load_keys=False)
    log = root / "gunicorn.log"
    gunicorn_env = {**env, "GUNICORN_CMD_ARGS": "--access-logformat "
                    + shlex.quote(ACCESS_LOG_FORMAT)}
    try:
        with Gunicorn(gunicorn_env, workers=2, log=log) as gunicorn:
            yield Server(url=gunicorn.url, env=env, log=log,
                         keys=load_server_keys(keys_dir), app=app)
    finally:
        db.dispose(app)


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory, e2e_database_url: str,
           server_keys_dir: Path) -> Iterator[Server]:
    """gunicorn with the database nonce store."""
    yield from _serve(tmp_path_factory, "gunicorn-db", e2e_database_url, server_keys_dir, None)


@pytest.fixture(scope="package")
def redis_server(tmp_path_factory: pytest.TempPathFactory, e2e_database_url: str,
                 server_keys_dir: Path, redis_url: str) -> Iterator[Server]:
    """gunicorn with the Redis nonce store (``CLUE_REDIS_URL``), on the same database."""
    yield from _serve(tmp_path_factory, "gunicorn-redis", e2e_database_url, server_keys_dir,
                      redis_url)
