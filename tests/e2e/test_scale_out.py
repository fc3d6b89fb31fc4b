"""Scale-out: two separate gunicorn servers (two masters, as on two machines behind one
reverse proxy) on one PostgreSQL and one Redis share the replay memory and the quotas.

Behind a proxy every app server sees the same ``Host``, so a request captured on its way
to one server verifies on the other: only the shared nonce store refuses it there.
"""

from __future__ import annotations

import http.client
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from clue_client import protocol
from clue_server import db
from clue_server.quotas import services as quotas
from tests.e2e.conftest import Server, _serve
from tests.helpers import Creds

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture(scope="module", params=["database", "redis"])
def two_servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                server_keys_dir: Path) -> Iterator[tuple[Server, Server]]:
    url: str = request.getfixturevalue("postgres_url")
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    first = _serve(tmp_path_factory, "scale-a", url, server_keys_dir, redis_url)
    second = _serve(tmp_path_factory, "scale-b", url, server_keys_dir, redis_url)
    a, b = next(first), next(second)
    try:
        yield a, b
    finally:
        for generator in (second, first):
            generator.close()


def _signed(host: str, creds: Creds, body: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body, separators=(",", ":")).encode()
    message = protocol.Message(method="POST", url=f"http://{host}/v1/lookups",
                               headers={"Host": host, "Content-Type": "application/json"})
    protocol.sign_request(message, raw, key_id=creds.key_id, private_key=creds.signing_key)
    return raw, dict(message.headers)


def _send(server: Server, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    host, port = server.url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", "/v1/lookups", body=body, headers=headers)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


def _lookup(n: int) -> dict[str, object]:
    return {"items": [{"type": "phone", "key_version": 1,
                       "token": protocol.b64url(secrets.token_bytes(32))} for _ in range(n)]}


def test_a_request_replayed_to_the_other_app_server_is_refused(
        two_servers: tuple[Server, Server]) -> None:
    a, b = two_servers
    creds = a.admit(f"Scale {secrets.token_hex(3)}")
    proxy_host = a.url.split("//")[1]  # the one name both servers answer to
    body, headers = _signed(proxy_host, creds, _lookup(1))

    first = _send(a, body, headers)
    replayed = _send(b, body, headers)
    again = _send(a, body, headers)

    assert first[0] == 200
    assert (replayed[0], replayed[1]["type"]) == (401, "urn:clue:problem:replayed")
    assert (again[0], again[1]["type"]) == (401, "urn:clue:problem:replayed")
    # The other server accepts the same member's fresh requests: it is not refusing all.
    assert _send(b, *_signed(proxy_host, creds, _lookup(1)))[0] == 200


def test_two_app_servers_share_one_quota(two_servers: tuple[Server, Server]) -> None:
    a, b = two_servers
    creds = a.admit(f"Quota {secrets.token_hex(3)}")
    with db.session_scope(a.app) as session:
        quotas.set_member_quota(session, creds.member_id, 5, None, actor="test")
    host = a.url.split("//")[1]

    assert _send(a, *_signed(host, creds, _lookup(3)))[0] == 200
    assert _send(b, *_signed(host, creds, _lookup(2)))[0] == 200
    over_b = _send(b, *_signed(host, creds, _lookup(1)))
    over_a = _send(a, *_signed(host, creds, _lookup(1)))

    assert (over_b[0], over_b[1]["type"]) == (429, "urn:clue:problem:quota-exceeded")
    assert over_b[1]["used"] == 5 and over_b[1]["limit"] == 5
    assert over_a[0] == 429
