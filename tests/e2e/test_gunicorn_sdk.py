"""The SDK against real gunicorn (2 workers), on SQLite and PostgreSQL.

Issue 2: two members share a network keyring, one registers, the other looks
up; a replayed request is refused even when another worker sees it (database
and Redis nonce stores); the SDK refuses a server whose key is not the pinned one.
"""

from __future__ import annotations

import json
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import keys
from clue_client import ClueClient, canonical, protocol, tokens
from clue_client.errors import NotFoundError, ResponseVerificationError
from clue_client.models import ReportInput
from tests.e2e.conftest import Server
from tests.helpers import Creds

pytestmark = pytest.mark.e2e

IDENTIFIERS = {
    "phone": ("090-3141-5926", "+81 90 3141 5926"),
    "email": ("Fraud.Ster+shop@Example.com", "fraud.ster+shop@example.com"),
    "ip": ("1.0.0.1", "::ffff:1.0.0.1"),
    "device_id": ("fp-7f3a9c", " fp-7f3a9c "),
    "bank_account": ("0005-123-1-4567", "0005-123-1-0004567"),
}
"""type -> (as the reporter writes it, as the looking-up member writes it)."""


def _client(server: Server, creds: Creds, ring: keys.Keyring, **overrides: object) -> ClueClient:
    options: dict[str, object] = {
        "signing_key": creds.signing_key, "server_public_key": server.keys.public_key,
        "server_key_id": server.keys.signing_key_id, "network_keys": ring, "retries": 0,
        **overrides}
    return ClueClient(server.url, **options)  # type: ignore[arg-type]


def _name(prefix: str) -> str:
    return f"{prefix} {secrets.token_hex(3)}"


@pytest.fixture
def ring() -> keys.Keyring:
    return keys.Keyring([keys.new_symmetric_key("network", 1)])


def test_register_lookup_withdraw_between_two_members(server: Server, ring: keys.Keyring) -> None:
    alpha = _client(server, server.admit(_name("Alpha Pay")), ring)
    beta = _client(server, server.admit(_name("Beta Bank")), ring)
    assert alpha.ping()["pong"] is True

    batch = [ReportInput(t, written, "account_takeover") for t, (written, _) in
             IDENTIFIERS.items()]
    key = "e2e-" + secrets.token_hex(8)
    first = alpha.register_many(batch, idempotency_key=key)
    assert [r.id_type for r in first] == list(IDENTIFIERS)
    assert all(r.created for r in first)
    # A retry with the same Idempotency-Key (say, after a lost answer) gets the first answer.
    retried = alpha.register_many(batch, idempotency_key=key)
    assert retried == first
    # The same batch again without a key: the server finds the reports, no duplicates.
    again = alpha.register_many(batch)
    assert [r.id for r in again] == [r.id for r in first]
    assert not any(r.created for r in again)
    assert sorted(r.id for r in alpha.reports()) == sorted(r.id for r in first)

    seen = beta.lookup(**{t: asked for t, (_, asked) in IDENTIFIERS.items()})
    assert set(seen) == set(IDENTIFIERS)
    for id_type, result in seen.items():
        assert result.matched, id_type
        assert result.reporters == 1
        assert result.reported_by_me is False
        assert result.categories == ("account_takeover",)
        assert result.first_reported is not None
    assert seen["email"].match == "exact"

    many = beta.lookup_many([("phone", "09031415926"),
                             {"type": "email", "value": "fraud.ster+other@example.com"},
                             ("ip", "1.0.0.1"), ("device_id", "fp-unknown"),
                             ("bank_account", "0005-123-1-0004567")])
    assert [(r.id_type, r.matched) for r in many] == [
        ("phone", True), ("email", True), ("ip", True), ("device_id", False),
        ("bank_account", True)]
    # Another +tag of the same mailbox: only the folded form (tag removed) matches.
    assert many[1].match == "folded"
    assert all(r.reporters == 1 and not r.reported_by_me for r in many if r.matched)
    assert alpha.lookup(phone="09031415926")["phone"].reported_by_me is True

    withdrawn = next(r for r in first if r.id_type == "ip")
    with pytest.raises(NotFoundError):
        beta.withdraw(withdrawn.id)  # only the reporter may withdraw
    alpha.withdraw(withdrawn.id)
    after = beta.lookup(ip="1.0.0.1", phone="+819031415926")
    assert after["ip"].matched is False
    assert after["phone"].matched is True
    assert withdrawn.id not in {r.id for r in alpha.reports()}

    beta.register("phone", "090 3141 5926", "phishing")
    both = alpha.lookup(phone="090-3141-5926")["phone"]
    assert (both.reporters, both.reported_by_me) == (2, True)
    assert both.categories == ("account_takeover", "phishing")


def test_sdk_registers_again_after_a_withdrawal(server: Server, ring: keys.Keyring) -> None:
    # Regression: with a body-derived default Idempotency-Key the server replayed the
    # withdrawn report's answer ("created") within 24 h and stored nothing.
    alpha = _client(server, server.admit(_name("Alpha Pay")), ring)
    beta = _client(server, server.admit(_name("Beta Bank")), ring)
    first = alpha.register("device_id", "fp-withdrawn-by-mistake", "other")
    alpha.withdraw(first.id)
    again = alpha.register("device_id", "fp-withdrawn-by-mistake", "other")
    assert again.id != first.id
    assert beta.lookup(device_id="fp-withdrawn-by-mistake")["device_id"].matched


# -- replay across workers --------------------------------------------------------------


def _signed_lookup(server: Server, creds: Creds, ring: keys.Keyring
                   ) -> tuple[requests.PreparedRequest, str]:
    """One signed POST /v1/lookups (and its nonce), built once and then sent again and again."""
    token = tokens.derive_token(ring.current.secret, "phone",
                                canonical.canonicalize("phone", "090-2718-2818"))
    body = json.dumps({"items": [{"type": "phone", "key_version": 1,
                                  "token": tokens.encode_token(token)}]}).encode()
    prepared = requests.Request("POST", server.url + "/v1/lookups", data=body,
                                headers={"Content-Type": "application/json",
                                         "Connection": "close"}).prepare()
    nonce = protocol.sign_request(prepared, body, key_id=creds.key_id,
                                  private_key=creds.signing_key)
    return prepared, nonce


def _send_fresh(prepared: requests.PreparedRequest) -> requests.Response:
    with requests.Session() as session:
        return session.send(prepared, timeout=10)


@pytest.fixture(params=["database", "redis"])
def nonce_store_server(request: pytest.FixtureRequest, e2e_database_url: str) -> Server:
    """The e2e server with the database nonce store, or the one with Redis."""
    server: Server = request.getfixturevalue("server" if request.param == "database"
                                             else "redis_server")
    return server


def test_replay_is_refused_across_two_workers(nonce_store_server: Server,
                                              ring: keys.Keyring) -> None:
    server = nonce_store_server
    creds = server.admit(_name("Replay"))
    prepared, nonce = _signed_lookup(server, creds, ring)
    mark = server.log_mark()

    # The request, then bursts of its replays from many connections at once until both
    # workers have answered (each takes whatever connections the kernel hands it). (A
    # connection held open mid-request would pin a one-thread worker: production sits
    # behind a buffering reverse proxy, docs/runbook.md.)
    answers = [_send_fresh(prepared)]
    for _ in range(30):
        with ThreadPoolExecutor(16) as pool:
            answers += list(pool.map(lambda _: _send_fresh(prepared), range(32)))
        served = server.access_since(mark, expect=len(answers), method="POST",
                                     path="/v1/lookups")
        if len({line.pid for line in served}) == 2:
            break

    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 1 and statuses[0] == 200, statuses
    accepted = answers[0]
    protocol.verify_response(accepted.status_code, accepted.headers, accepted.content, prepared,
                             public_key=server.keys.public_key,
                             key_id=server.keys.signing_key_id,
                             nonce=nonce)
    assert accepted.json()["results"][0]["matched"] is False
    for answer in answers[1:]:
        assert answer.status_code == 401
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.json()["type"] == "urn:clue:problem:replayed"
    served = server.access_since(mark, expect=len(answers), method="POST",
                                 path="/v1/lookups")
    assert len(served) == len(answers)
    # Both workers answered, and between them accepted the request exactly once.
    assert len({line.pid for line in served}) == 2, served
    assert [line.status for line in served].count(200) == 1, served


# -- the pinned server key ----------------------------------------------------------------


def test_sdk_refuses_a_server_whose_key_is_not_the_pinned_one(server: Server,
                                                              ring: keys.Keyring) -> None:
    creds = server.admit(_name("Pinned"))
    assert _client(server, creds, ring).ping()["pong"] is True

    impostor = keys.generate_signing_key().public_key()
    # Pinned to another key under the server's key id: the signature does not verify.
    with pytest.raises(ResponseVerificationError, match="refusing the server's answer"):
        _client(server, creds, ring, server_public_key=impostor).lookup(phone="090-1234-5678")
    # Pinned to another key and its id: the answer is signed by a key it does not pin.
    with pytest.raises(ResponseVerificationError, match="refusing the server's answer"):
        _client(server, creds, ring, server_public_key=impostor,
                server_key_id=protocol.server_key_id(impostor)).ping()
    # Nor does it write through such a server without noticing.
    with pytest.raises(ResponseVerificationError):
        _client(server, creds, ring, server_public_key=impostor).register(
            "phone", "090-1234-5678", "other")
