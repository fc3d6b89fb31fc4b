"""Faults, for real: the test starts its own PostgreSQL and Redis on their own ports, puts
gunicorn on them, and stops, freezes and restarts them under it.

What must hold (issue 11): an outage answers a signed 503 problem with Retry-After and
logs one line per outage, not one per request; the server heals when the service is
back, without a restart; a Redis or PostgreSQL that comes back empty (or restarted)
does not reopen replays: requests signed before it came back are refused with a 503
that says to sign again.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import keys
from clue_client import protocol
from clue_server import create_app, db
from clue_server.devserver import Gunicorn, free_port
from clue_server.keystore import load_server_keys
from clue_server.members import services as members
from clue_server.migrate import upgrade
from tests.helpers import Creds

pytestmark = pytest.mark.e2e

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
LOOKUP = {"items": [{"type": "phone", "key_version": 1, "token": "A" * 43}]}


def _postgres_user() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


class OwnPostgres:
    """A throw-away PostgreSQL cluster of this test's, on a port of its own."""

    def __init__(self, root: Path) -> None:
        self.bin = Path(PG_BIN[-1])
        self.data = root / "data"
        self.port = free_port()
        self.user = _postgres_user()
        assert self.user is not None
        os.chown(root, self.user.pw_uid, self.user.pw_gid)
        self._as_postgres(self.bin / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                          "--no-sync")
        self.socket_dir = root

    def _as_postgres(self, *command: Any) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *map(str, command)], check=True, capture_output=True)

    def start(self) -> None:
        self._as_postgres(self.bin / "pg_ctl", "-D", self.data, "-w", "-l",
                          self.data / "server.log", "-o",
                          f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
                          "-c fsync=off", "start")

    def wait_until_accepting(self, timeout: float = 30) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                                connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        self._as_postgres(self.bin / "pg_ctl", "-D", self.data, "-w", "-m", "fast", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    if not PG_BIN or _postgres_user() is None or shutil.which("runuser") is None:
        pytest.skip("needs PostgreSQL's server binaries and its postgres user")
    # Not under pytest's own temporary directory: its parents are closed to other users.
    root = Path(tempfile.mkdtemp(prefix="clue-own-pg-"))
    cluster = OwnPostgres(root)
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


class OwnRedis:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        import redis

        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)
            server.kill()


def _serve(database_url: str, keys_dir: Path, log: Path, redis_url: str = "") -> Any:
    upgrade(database_url)
    return Gunicorn({"CLUE_DATABASE_URL": database_url, "CLUE_SERVER_KEYS_DIR": str(keys_dir),
                     "CLUE_REDIS_URL": redis_url}, workers=2, log=log)


def _admit(database_url: str, keys_dir: Path, name: str) -> Creds:
    upgrade(database_url)
    app = create_app({"database_url": database_url, "server_keys_dir": keys_dir,
                      "redis_url": None}, load_keys=False)
    key = keys.generate_signing_key()
    try:
        with db.session_scope(app) as session:
            return Creds(members.add_member(session, name, key.public_key()).id, key)
    finally:
        db.dispose(app)


def _signed(url: str, creds: Creds) -> tuple[requests.PreparedRequest, str]:
    body = json.dumps(LOOKUP).encode()
    prepared = requests.Request("POST", url + "/v1/lookups", data=body,
                                headers={"Content-Type": "application/json"}).prepare()
    nonce = protocol.sign_request(prepared, body, key_id=creds.key_id,
                                  private_key=creds.signing_key)
    return prepared, nonce


def _send(prepared: requests.PreparedRequest, nonce: str, server_keys: Any
          ) -> tuple[int, dict[str, Any], requests.Response]:
    with requests.Session() as session:
        answer = session.send(prepared, timeout=20)
    # Every answer, refusals and outages included, is signed for this very request.
    protocol.verify_response(answer.status_code, answer.headers, answer.content, prepared,
                             public_key=server_keys.public_key,
                             key_id=server_keys.signing_key_id, nonce=nonce)
    return answer.status_code, answer.json(), answer


def _lookup(server: Any, creds: Creds, server_keys: Any) -> tuple[int, dict[str, Any],
                                                                  requests.Response]:
    return _send(*_signed(server.url, creds), server_keys)


def _outage_lines(log: Path, dependency: str) -> int:
    return log.read_text(errors="replace").count(f"{dependency} unavailable")


def test_a_postgresql_outage_answers_signed_503_and_heals_without_a_restart(
        own_postgres: OwnPostgres, server_keys_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "gunicorn.log"
    keys_ = load_server_keys(server_keys_dir)
    creds = _admit(own_postgres.url, server_keys_dir, "Outage Pay")
    with _serve(own_postgres.url, server_keys_dir, log) as server:
        assert _lookup(server, creds, keys_)[0] == 200
        captured = _signed(server.url, creds)  # signed now, sent after the restart
        time.sleep(1.1)  # the restart comes in a later second
        own_postgres.stop()
        try:
            answers = [_lookup(server, creds, keys_) for _ in range(12)]
        finally:
            own_postgres.start()
            own_postgres.wait_until_accepting()
        for status, problem, answer in answers:
            assert status == 503, problem
            assert problem["type"] == "urn:clue:problem:unavailable"
            assert int(answer.headers["Retry-After"]) >= 1
        # One line per outage and worker, not one per request, and no traceback.
        assert 1 <= _outage_lines(log, "database") <= 2
        assert "Traceback" not in log.read_text(errors="replace")
        # Back without restarting gunicorn: each worker answers 503 once or twice more
        # (each connection it held died with the server; it is replaced on first use)
        # and then serves again.
        # (For the second the database came back in, requests get 503 store-restarted:
        # signed in that second they may have been claimed and forgotten.)
        healed = []
        for _ in range(60):
            status, problem, _ = _lookup(server, creds, keys_)
            healed.append(problem.get("type", status))
            if healed[-6:] == [200] * 6:
                break
            time.sleep(0.1)
        assert healed[-6:] == [200] * 6, healed
        assert set(healed) <= {200, "urn:clue:problem:unavailable",
                               "urn:clue:problem:store-restarted"}, healed
        assert healed.count("urn:clue:problem:unavailable") <= 4, healed
        # The restarted database may have lost its last unflushed nonces: a request
        # signed before it started is refused, with the advice to sign again.
        status, problem, answer = _send(*captured, keys_)
        assert (status, problem["type"]) == (503, "urn:clue:problem:store-restarted")
        assert answer.headers["Retry-After"] == "1"


def test_a_frozen_or_restarted_redis_answers_503_heals_and_reopens_no_replay(
        own_postgres: OwnPostgres, own_redis: OwnRedis, server_keys_dir: Path,
        tmp_path: Path) -> None:
    log = tmp_path / "gunicorn.log"
    keys_ = load_server_keys(server_keys_dir)
    creds = _admit(own_postgres.url, server_keys_dir, "Frozen Pay")
    with _serve(own_postgres.url, server_keys_dir, log, own_redis.url) as server:
        assert _lookup(server, creds, keys_)[0] == 200
        captured = _signed(server.url, creds)
        time.sleep(1.1)  # the restart below comes in a later second
        # Frozen: every call times out (socket timeouts); nothing hangs a worker.
        assert own_redis.process is not None
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            status, problem, _ = _lookup(server, creds, keys_)
            waited = time.monotonic() - started
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
        assert (status, problem["type"]) == (503, "urn:clue:problem:unavailable")
        assert waited < 5, waited
        assert _lookup(server, creds, keys_)[0] == 200  # thawed: heals at once
        # Restarted empty: the replay memory is gone, and so is the replay window.
        own_redis.kill()
        own_redis.start()
        status, problem, _ = _send(*captured, keys_)
        assert (status, problem["type"]) == (503, "urn:clue:problem:store-restarted")
        time.sleep(1.1)  # requests signed in the store's first second are refused too
        assert _lookup(server, creds, keys_)[0] == 200
        assert _outage_lines(log, "redis") >= 1


def test_a_full_redis_answers_signed_503_not_500_and_heals_when_it_has_room(
        own_postgres: OwnPostgres, own_redis: OwnRedis, server_keys_dir: Path,
        tmp_path: Path) -> None:
    import redis

    log = tmp_path / "gunicorn.log"
    keys_ = load_server_keys(server_keys_dir)
    creds = _admit(own_postgres.url, server_keys_dir, "Full Pay")
    admin = redis.Redis(port=own_redis.port)
    with _serve(own_postgres.url, server_keys_dir, log, own_redis.url) as server:
        assert _lookup(server, creds, keys_)[0] == 200
        # Under noeviction (the runbook's setting) a full Redis refuses every write.
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")
        try:
            status, problem, answer = _lookup(server, creds, keys_)
        finally:
            admin.config_set("maxmemory", "0")
        assert (status, problem["type"]) == (503, "urn:clue:problem:unavailable")
        assert "redis" in problem["detail"]
        assert answer.headers["Retry-After"]
        assert _lookup(server, creds, keys_)[0] == 200
    assert _outage_lines(log, "redis") == 1
    assert "Traceback" not in log.read_text(errors="replace")
