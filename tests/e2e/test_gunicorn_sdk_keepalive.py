"""Both SDK clients against real gunicorn with a keep-alive worker class (gthread).

One TCP connection serves many calls (shown by the server's own access log, which
records each request's client port), threads share one sync client, the async client
keeps its connections too, and the clock offset is read from gunicorn's Date header.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import keys
from clue_client import AsyncClueClient, ClueClient, RequestClockSkewError
from clue_server import create_app
from clue_server.devserver import Gunicorn
from clue_server.keystore import load_server_keys
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

# One line per request: the client's port (so, its connection), the request line, status.
PORT_LOG_FORMAT = '%({REMOTE_PORT}e)s "%(r)s" %(s)s'


@pytest.fixture(scope="module")
def keepalive_server(tmp_path_factory: pytest.TempPathFactory, e2e_database_url: str,
                     server_keys_dir: Path) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("gunicorn-gthread")
    env = {"CLUE_DATABASE_URL": e2e_database_url, "CLUE_SERVER_KEYS_DIR": str(server_keys_dir),
           "CLUE_REDIS_URL": ""}
    app = create_app({"database_url": e2e_database_url, "server_keys_dir": server_keys_dir,
                      "redis_url": None}, load_keys=False)
    log = root / "gunicorn.log"
    args = ("--worker-class gthread --threads 4 --keep-alive 10 --access-logformat "
            + shlex.quote(PORT_LOG_FORMAT))
    try:
        with Gunicorn({**env, "GUNICORN_CMD_ARGS": args}, workers=2, log=log) as gunicorn:
            yield Server(url=gunicorn.url, env=env, log=log,
                         keys=load_server_keys(server_keys_dir), app=app)
    finally:
        app.extensions["clue_engine"].dispose()


@pytest.fixture
def ring() -> keys.Keyring:
    return keys.Keyring([keys.new_symmetric_key("network", 1)])


def _options(server: Server, ring: keys.Keyring) -> dict[str, Any]:
    creds = server.admit(f"Keep-alive {secrets.token_hex(3)}")
    return {"signing_key": creds.signing_key, "server_public_key": server.keys.public_key,
            "server_key_id": server.keys.signing_key_id, "network_keys": ring,
            "private_lookups": False}  # the log lines counted are POST /v1/lookups


def _ports(server: Server, mark: int, expect: int) -> list[int]:
    """The client ports of the look-ups logged after ``mark``."""
    deadline = time.monotonic() + 10
    while True:
        with server.log.open("rb") as handle:
            handle.seek(mark)
            lines = handle.read().decode(errors="replace").splitlines()
        ports = [int(line.split(" ", 1)[0]) for line in lines
                 if '"POST /v1/lookups ' in line and line.split(" ", 1)[0].isdigit()]
        if len(ports) >= expect or time.monotonic() > deadline:
            return ports


def test_the_sync_client_keeps_one_connection(keepalive_server: Server,
                                              ring: keys.Keyring) -> None:
    server = keepalive_server
    with ClueClient(server.url, **_options(server, ring)) as client:
        client.register("phone", "090-4321-8765", "phishing")
        mark = server.log_mark()
        for n in range(30):
            result = client.lookup(phone="090-4321-8765" if n % 2 else f"090-4000-{n:04d}")
            assert result["phone"].matched is bool(n % 2)
        ports = _ports(server, mark, 30)
        assert len(ports) == 30 and len(set(ports)) == 1, ports
        assert client._http.pool.opened == 1
        # Many threads, one client: each borrows one of at most as many connections.
        mark = server.log_mark()
        with ThreadPoolExecutor(4) as pool:
            found = list(pool.map(lambda n: client.lookup(phone="090-4321-8765")["phone"],
                                  range(40)))
        assert all(r.matched and r.reporters == 1 for r in found)
        assert len(set(_ports(server, mark, 40))) <= 4
        # gunicorn dates its answers: this machine and the server share a clock.
        client.ping()
        assert client.clock_offset == pytest.approx(0, abs=1.5)


def test_the_async_client_keeps_its_connections(keepalive_server: Server,
                                                ring: keys.Keyring) -> None:
    server = keepalive_server
    options = _options(server, ring)

    async def scenario() -> list[bool]:
        async with AsyncClueClient(server.url, **options) as client:
            await client.register("email", "keep.alive@example.com", "phishing")
            return [(await client.lookup(email="keep.alive+x@example.com"))["email"].matched
                    for _ in range(20)]

    mark = server.log_mark()
    assert asyncio.run(scenario()) == [True] * 20
    ports = _ports(server, mark, 20)
    assert len(ports) == 20 and len(set(ports)) == 1, ports


def test_a_clock_far_off_is_named_with_its_offset(keepalive_server: Server,
                                                  ring: keys.Keyring) -> None:
    server = keepalive_server
    behind = ClueClient(server.url, clock=lambda: time.time() - 400, **_options(server, ring))
    with pytest.raises(RequestClockSkewError) as caught:
        behind.ping()
    assert caught.value.offset == pytest.approx(400, abs=1.5)
    assert "about 400 s behind the server's" in str(caught.value)
    ahead = ClueClient(server.url, clock=lambda: time.time() + 400, **_options(server, ring))
    with pytest.raises(RequestClockSkewError, match="about 400 s ahead of the server's"):
        ahead.lookup(phone="090-1234-5678")
