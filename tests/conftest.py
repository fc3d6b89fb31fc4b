"""Fixtures: every functional test runs against SQLite and, when
``CLUE_TEST_DATABASE_URL`` is set, PostgreSQL too (same tests, parametrised)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import keys
from clue_client import ClueClient
from clue_server import create_app, db
from clue_server.keystore import ensure_server_keys, load_server_keys
from clue_server.members import services as members
from clue_server.migrate import upgrade
from clue_server.models import Base
from tests.helpers import BASE_URL, Creds, WSGIAdapter

PG_URL = os.environ.get("CLUE_TEST_DATABASE_URL")
# Children before parents, so TRUNCATE ... CASCADE order does not matter but reads well.
TABLES = tuple(t.name for t in reversed(Base.metadata.sorted_tables))


REDIS_URL = os.environ.get("CLUE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
_postgres_passed = 0


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _postgres_passed
    if report.when == "call" and report.passed and "postgresql" in report.nodeid:
        _postgres_passed += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # CI insists: a run where the PostgreSQL half silently skipped is a failure.
    if os.environ.get("CLUE_REQUIRE_POSTGRES") == "1" and _postgres_passed == 0:
        print("\nCLUE_REQUIRE_POSTGRES=1 but no PostgreSQL test passed", flush=True)
        session.exitstatus = 1


def pytest_report_header() -> str:
    backends = "sqlite + postgresql" if PG_URL else "sqlite only (CLUE_TEST_DATABASE_URL unset)"
    return f"CLUE backends: {backends}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "clue.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if not PG_URL:
        pytest.skip("CLUE_TEST_DATABASE_URL is not set")
    url = _worker_database(PG_URL)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade(url)
    return url


def _worker_database(url: str) -> str:
    """Under pytest-xdist each worker gets its own database, made next to the given one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    parsed = make_url(url)
    name = f"{parsed.database}_{worker}"
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                            {"n": name}).first():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "clue.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    engine.dispose()
    yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        if os.environ.get("CLUE_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"Redis not answering at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture(scope="session")
def server_keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("server-keys")
    ensure_server_keys(directory)
    return directory


@pytest.fixture
def app(database_url: str, server_keys_dir: Path) -> Iterator[Any]:
    application = create_app({"database_url": database_url, "server_keys_dir": server_keys_dir,
                              "redis_url": None})
    application.config["TESTING"] = True
    yield application
    db.dispose(application)


@pytest.fixture
def http(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def make_member(app: Any) -> Any:
    def make(name: str = "Example Pay") -> Creds:
        key = keys.generate_signing_key()
        with db.session_scope(app) as session:
            member = members.add_member(session, name, key.public_key())
            return Creds(member.id, key)

    return make


@pytest.fixture
def network_keys() -> keys.Keyring:
    return keys.Keyring([keys.new_symmetric_key("network", 1)])


@pytest.fixture
def make_client(app: Any, network_keys: keys.Keyring, server_keys_dir: Path) -> Any:
    server = load_server_keys(server_keys_dir)

    # Protocol 1 unless a test asks otherwise: these clients' requests are counted, and
    # following the server's choice costs a GET /v2/config first.
    def make(creds: Creds, ring: keys.Keyring | None = None, *,
             private_lookups: bool | None = False) -> tuple[ClueClient, WSGIAdapter]:
        adapter = WSGIAdapter(app)
        session = requests.Session()
        session.mount(BASE_URL, adapter)
        client = ClueClient(BASE_URL, signing_key=creds.signing_key,
                            server_public_key=server.public_key,
                            server_key_id=server.signing_key_id,
                            network_keys=ring or network_keys, session=session, retries=0,
                            private_lookups=private_lookups)
        return client, adapter

    return make
