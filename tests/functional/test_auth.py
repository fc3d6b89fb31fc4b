"""Issue 2, must hold 3: every request is signed, every answer is signed.

Server side: hostile, hand-signed requests are refused with a problem+json 401
(403 for a suspended member), and even the refusal is signed by the server and
answers the request's nonce. SDK side: an unsigned, tampered, re-addressed or
replayed answer is refused with ``ResponseVerificationError``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import http_sf
import pytest
import redis
import requests

import keys
from clue_client import ClueClient, protocol
from clue_client.errors import (
    AuthenticationError,
    ForbiddenError,
    ResponseVerificationError,
)
from clue_server import create_app, db
from clue_server.auth.models import SeenNonce
from clue_server.errors import PROBLEM_CONTENT_TYPE
from clue_server.keystore import ServerKeys, load_server_keys
from clue_server.members.services import set_status
from tests.helpers import BASE_URL, Creds, WSGIAdapter, signed

LOOKUP = {"items": [{"type": "phone", "key_version": 1,
                     "token": base64.urlsafe_b64encode(bytes(32)).rstrip(b"=").decode()}]}


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture
def server(server_keys_dir: Path) -> ServerKeys:
    return load_server_keys(server_keys_dir)


@pytest.fixture
def make_app(database_url: str, server_keys_dir: Path) -> Iterator[Callable[..., Any]]:
    """More app instances on the same database (stand-ins for more gunicorn workers)."""
    made = []

    def make(redis_url: str | None = None) -> Any:
        application = create_app({"database_url": database_url,
                                  "server_keys_dir": server_keys_dir, "redis_url": redis_url})
        application.config["TESTING"] = True
        made.append(application)
        return application

    yield make
    for application in made:
        db.dispose(application)


def send(http: Any, creds: Creds, method: str, path: str, body: Any = None, *,
         nonce: str | None = None, after_sign: Callable[[protocol.Message], None] | None = None,
         **options: Any) -> tuple[Any, protocol.Message, str]:
    """``signed`` that also returns the message as sent and its nonce."""
    nonce = nonce or protocol.new_nonce()
    sent: list[protocol.Message] = []

    def keep(message: protocol.Message) -> None:
        if after_sign is not None:
            after_sign(message)
        sent.append(message)

    response = signed(http, creds, method, path, body, nonce=nonce, after_sign=keep, **options)
    return response, sent[0], nonce


def assert_server_signed(response: Any, method: str, url: str, nonce: str | None,
                         server: ServerKeys) -> None:
    """The answer verifies under the server key and answers this request (and nonce)."""
    request = protocol.Message(method=method, url=url).as_request()
    protocol.verify_response(response.status_code, dict(response.headers.items()),
                             response.get_data(), request,
                             public_key=server.public_key, key_id=server.signing_key_id,
                             nonce=nonce)


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == PROBLEM_CONTENT_TYPE
    problem = response.get_json(force=True)
    assert problem["type"] == f"urn:clue:problem:{slug}"
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]
    return problem


def assert_refused(response: Any, message: protocol.Message, nonce: str | None,
                   server: ServerKeys, slug: str = "unauthenticated", status: int = 401
                   ) -> dict[str, Any]:
    problem = assert_problem(response, status, slug)
    assert_server_signed(response, message.method or "", message.url or "", nonce, server)
    return problem


def header_name(headers: Any, name: str) -> str:
    return next(key for key in headers if key.lower() == name.lower())


def signature_nonce(headers: Any) -> str:
    parsed = http_sf.parse(headers[header_name(headers, "Signature-Input")].encode(),
                           tltype="dictionary")
    return str(parsed["clue"][1]["nonce"])


# -- the happy path, so that every refusal below is the tampering's doing ------------------


def test_well_signed_request_is_accepted_and_its_answer_signed(http, make_member, server):
    creds = make_member()
    response, _, nonce = send(http, creds, "POST", "/v1/lookups", LOOKUP)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["results"][0]["matched"] is False
    assert_server_signed(response, "POST", BASE_URL + "/v1/lookups", nonce, server)
    with pytest.raises(protocol.SignatureError):
        assert_server_signed(response, "POST", BASE_URL + "/v1/lookups", protocol.new_nonce(),
                             server)


# -- missing or malformed signatures -------------------------------------------------------


def test_no_signature_at_all(http, server):
    response = http.post("/v1/lookups", base_url=BASE_URL, json=LOOKUP)
    problem = assert_refused(response, protocol.Message("POST", BASE_URL + "/v1/lookups"), None,
                             server)
    assert "not signed" in problem["detail"]


@pytest.mark.parametrize("drop", ["Signature-Input", "Signature"])
def test_one_of_the_two_signature_headers_missing(http, make_member, server, drop):
    creds = make_member()

    def strip(message: protocol.Message) -> None:
        del message.headers[header_name(message.headers, drop)]

    response, message, _ = send(http, creds, "POST", "/v1/lookups", LOOKUP, after_sign=strip)
    assert_refused(response, message, None, server)


@pytest.mark.parametrize("value", ["garbage(", "clue=1", 'clue=("@method");keyid=7', ""])
def test_unparseable_signature_input(http, make_member, server, value):
    creds = make_member()

    def garble(message: protocol.Message) -> None:
        message.headers[header_name(message.headers, "Signature-Input")] = value

    response, message, _ = send(http, creds, "POST", "/v1/lookups", LOOKUP, after_sign=garble)
    assert_refused(response, message, None, server)


def test_signature_under_another_label(http, make_member, server):
    creds = make_member()

    def relabel(message: protocol.Message) -> None:
        for name in ("Signature-Input", "Signature"):
            key = header_name(message.headers, name)
            message.headers[key] = "other" + message.headers[key][len("clue"):]

    response, message, _ = send(http, creds, "POST", "/v1/lookups", LOOKUP, after_sign=relabel)
    problem = assert_refused(response, message, None, server)
    assert '"clue"' in problem["detail"]


def test_two_signatures(http, make_member, server):
    creds = make_member()

    def add_second(message: protocol.Message) -> None:
        for name in ("Signature-Input", "Signature"):
            key = header_name(message.headers, name)
            original = message.headers[key]
            message.headers[key] = original + ", extra" + original[len("clue"):]

    response, message, _ = send(http, creds, "POST", "/v1/lookups", LOOKUP,
                                after_sign=add_second)
    problem = assert_refused(response, message, None, server)
    assert "exactly one" in problem["detail"]


# -- keys ----------------------------------------------------------------------------------


def test_wrong_key_claiming_an_admitted_keyid(http, make_member, server):
    creds = make_member()
    impostor = keys.generate_signing_key()
    response, message, nonce = send(http, creds, "POST", "/v1/lookups", LOOKUP, key=impostor)
    assert_refused(response, message, nonce, server)


def test_unknown_keyid(http, make_member, server):
    make_member()
    stranger = keys.generate_signing_key()
    creds = Creds("m_nobody", stranger)
    response, message, nonce = send(http, creds, "POST", "/v1/lookups", LOOKUP)
    problem = assert_refused(response, message, nonce, server)
    assert creds.key_id in problem["detail"]


# -- tampering after signing ---------------------------------------------------------------


def test_tampered_body(http, make_member, server):
    creds = make_member()
    other = {"items": [{**LOOKUP["items"][0], "type": "email"}]}

    def swap_body(message: protocol.Message) -> None:
        message.body = protocol_json(other)  # type: ignore[attr-defined]

    response, message, nonce = send(http, creds, "POST", "/v1/lookups", LOOKUP,
                                    after_sign=swap_body)
    problem = assert_refused(response, message, nonce, server)
    assert "digest" in problem["detail"].lower()


def test_tampered_body_with_a_matching_digest(http, make_member, server):
    """Recomputing Content-Digest does not help: the signature covers it."""
    creds = make_member()
    body = protocol_json({"items": [{**LOOKUP["items"][0], "type": "email"}]})

    def swap_body_and_digest(message: protocol.Message) -> None:
        message.body = body  # type: ignore[attr-defined]
        message.headers[header_name(message.headers, "Content-Digest")] = digest_of(body)

    response, message, nonce = send(http, creds, "POST", "/v1/lookups", LOOKUP,
                                    after_sign=swap_body_and_digest)
    assert_refused(response, message, nonce, server)


@pytest.mark.parametrize("digest", [None, "sha-256=:AAAA:", "garbage", "sha-512=:AAAA:"])
def test_content_digest_removed_or_altered(http, make_member, server, digest):
    creds = make_member()

    def alter(message: protocol.Message) -> None:
        key = header_name(message.headers, "Content-Digest")
        if digest is None:
            del message.headers[key]
        else:
            message.headers[key] = digest

    response, message, nonce = send(http, creds, "POST", "/v1/lookups", LOOKUP, after_sign=alter)
    assert_refused(response, message, nonce, server)


@pytest.mark.parametrize(("signed_path", "sent_path"), [
    ("/v1/lookups", "/v1/reports"),
    ("/v1/reports?limit=5", "/v1/reports?limit=6"),
    ("/v1/reports", "/v1/reports?limit=1"),
    ("/v1/reports?limit=1", "/v1/reports"),
])
def test_tampered_path_or_query(http, make_member, server, signed_path, sent_path):
    creds = make_member()
    method = "POST" if signed_path == "/v1/lookups" else "GET"
    body = LOOKUP if method == "POST" else None

    def readdress(message: protocol.Message) -> None:
        message.url = BASE_URL + sent_path

    response, message, nonce = send(http, creds, method, signed_path, body, after_sign=readdress)
    assert_refused(response, message, nonce, server)


def test_tampered_method(http, make_member, server):
    # GET and POST /v1/reports both exist, so only the signature can tell them apart.
    creds = make_member()

    def repost(message: protocol.Message) -> None:
        message.method = "POST"

    response, message, nonce = send(http, creds, "GET", "/v1/reports", after_sign=repost)
    assert_refused(response, message, nonce, server)


def test_tampered_nonce(http, make_member, server):
    creds = make_member()
    fresh = protocol.new_nonce()

    def renonce(message: protocol.Message) -> None:
        key = header_name(message.headers, "Signature-Input")
        message.headers[key] = re.sub(r'nonce="[^"]*"', f'nonce="{fresh}"', message.headers[key])

    response, message, _ = send(http, creds, "POST", "/v1/lookups", LOOKUP, after_sign=renonce)
    assert_refused(response, message, fresh, server)


# -- freshness -----------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-301, -3600, 301, 600])
def test_stale_or_future_created_is_refused(http, make_member, server, offset):
    creds = make_member()
    created = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)
    response, message, nonce = send(http, creds, "POST", "/v1/lookups", LOOKUP, created=created)
    problem = assert_refused(response, message, nonce, server)
    assert ("old" if offset < 0 else "future") in problem["detail"]


@pytest.mark.parametrize("offset", [-280, 5, 280])
def test_created_within_the_allowed_skew_is_accepted(http, make_member, server, offset):
    creds = make_member()
    created = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)
    response, _, nonce = send(http, creds, "POST", "/v1/lookups", LOOKUP, created=created)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert_server_signed(response, "POST", BASE_URL + "/v1/lookups", nonce, server)


# -- nonces and replay ---------------------------------------------------------------------


@pytest.mark.parametrize("nonce", ["x" * 15, "short", "y" * 65])
def test_nonce_of_the_wrong_length(http, make_member, server, nonce):
    creds = make_member()
    response, message, _ = send(http, creds, "POST", "/v1/lookups", LOOKUP, nonce=nonce)
    problem = assert_refused(response, message, nonce, server)
    assert "nonce" in problem["detail"]


@pytest.mark.parametrize("nonce", ["n" * 16, "m" * 64])
def test_nonce_at_the_length_limits_is_accepted(http, make_member, nonce):
    creds = make_member()
    response, _, _ = send(http, creds, "POST", "/v1/lookups", LOOKUP, nonce=nonce)
    assert response.status_code == 200, response.get_data(as_text=True)


def replay_twice(first: Any, second: Any, creds: Creds) -> tuple[Any, Any, protocol.Message, str]:
    """Send the very same signed request (same nonce, same created) to two test clients."""
    nonce = protocol.new_nonce()
    created = dt.datetime.now(dt.UTC)
    answer_1, _, _ = send(first, creds, "POST", "/v1/lookups", LOOKUP, nonce=nonce,
                          created=created)
    answer_2, message, _ = send(second, creds, "POST", "/v1/lookups", LOOKUP, nonce=nonce,
                                created=created)
    return answer_1, answer_2, message, nonce


def seen_nonces(app: Any) -> int:
    with db.session_scope(app) as session:
        return session.query(SeenNonce).count()


def test_replay_with_the_database_nonce_store(app, http, make_member, server):
    creds = make_member()
    first, second, message, nonce = replay_twice(http, http, creds)
    assert first.status_code == 200
    problem = assert_refused(second, message, nonce, server, slug="replayed")
    assert "nonce" in problem["detail"]
    assert seen_nonces(app) == 1


def test_expired_nonces_are_swept_while_requests_claim_new_ones(app, http, make_member):
    """Every 10 s at most, a worker claiming a nonce deletes the expired ones (on
    PostgreSQL planned afresh each time, with its real bound); live ones stay."""
    creds = make_member()
    now = dt.datetime.now(dt.UTC)
    with db.session_scope(app) as session:
        session.add_all([SeenNonce(key="old:expired", expires_at=now - dt.timedelta(seconds=1)),
                         SeenNonce(key="old:live", expires_at=now + dt.timedelta(minutes=5))])
    store, sweeps = app.extensions["clue_nonces"], 7  # beyond psycopg's prepare_threshold (5)
    for _ in range(sweeps):
        store._next_sweep = 0.0  # a sweep with each ping
        assert signed(http, creds, "GET", "/v1/ping").status_code == 200
    with db.session_scope(app) as session:
        keys_left = {n.key for n in session.query(SeenNonce)}
    assert "old:expired" not in keys_left and "old:live" in keys_left
    assert len(keys_left) == 1 + sweeps  # the live one and the pings' own
    hot = app.extensions["clue_hot"]
    if hot.postgres:  # never kept as a generic plan: not a prepared statement at all
        cursor = hot.cursor()
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        assert not [s for (s,) in cursor.fetchall() if "DELETE FROM seen_nonces" in s]


def test_replay_across_two_app_instances_sharing_the_database(app, make_app, make_member,
                                                              server):
    creds = make_member()
    other_worker = make_app()
    first, second, message, nonce = replay_twice(app.test_client(), other_worker.test_client(),
                                                 creds)
    assert first.status_code == 200
    assert_refused(second, message, nonce, server, slug="replayed")


@pytest.fixture
def redis_nonces(redis_url: str) -> Iterator[redis.Redis]:
    # Nonce keys expire by themselves; deleting them here could erase those of another
    # test process (xdist worker) sharing the Redis database mid-replay-test.
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_replay_with_the_redis_nonce_store(app, make_app, make_member, server, redis_url,
                                           redis_nonces):
    creds = make_member()
    with_redis = make_app(redis_url)
    http = with_redis.test_client()
    first, second, message, nonce = replay_twice(http, http, creds)
    assert first.status_code == 200
    assert_refused(second, message, nonce, server, slug="replayed")
    key = f"clue:nonce:{creds.key_id}:{nonce}"
    assert redis_nonces.exists(key)
    assert 0 < redis_nonces.ttl(key) <= protocol.MAX_SIGNATURE_AGE + protocol.MAX_CLOCK_SKEW + 5
    assert seen_nonces(app) == 0  # Redis, not the database, remembered it


def test_replay_across_two_app_instances_sharing_redis(make_app, make_member, server,
                                                       redis_url, redis_nonces):
    creds = make_member()
    worker_1, worker_2 = make_app(redis_url), make_app(redis_url)
    first, second, message, nonce = replay_twice(worker_1.test_client(), worker_2.test_client(),
                                                 creds)
    assert first.status_code == 200
    assert_refused(second, message, nonce, server, slug="replayed")


def test_same_nonce_from_two_members_is_not_a_replay(http, make_member):
    # Nonces are remembered per signing key: one member cannot burn another's.
    alice, bob = make_member("Alice Pay"), make_member("Bob Pay")
    nonce = protocol.new_nonce()
    for creds in (alice, bob):
        response, _, _ = send(http, creds, "POST", "/v1/lookups", LOOKUP, nonce=nonce)
        assert response.status_code == 200, response.get_data(as_text=True)


def test_refused_request_does_not_burn_its_nonce(http, make_member):
    """A tampered copy seen first must not stop the genuine request getting through."""
    creds = make_member()
    nonce = protocol.new_nonce()

    def swap_body(message: protocol.Message) -> None:
        message.body = b'{"items": []}'  # type: ignore[attr-defined]

    tampered, _, _ = send(http, creds, "POST", "/v1/lookups", LOOKUP, nonce=nonce,
                          after_sign=swap_body)
    assert tampered.status_code == 401
    genuine, _, _ = send(http, creds, "POST", "/v1/lookups", LOOKUP, nonce=nonce)
    assert genuine.status_code == 200, genuine.get_data(as_text=True)


# -- member status -------------------------------------------------------------------------


def test_suspended_member_gets_403_and_resumed_member_works_again(app, http, make_member,
                                                                  server):
    creds = make_member()
    with db.session_scope(app) as session:
        set_status(session, creds.member_id, "suspended")
    response, message, nonce = send(http, creds, "POST", "/v1/lookups", LOOKUP)
    problem = assert_refused(response, message, nonce, server, slug="member-suspended",
                             status=403)
    assert creds.member_id in problem["detail"]

    with db.session_scope(app) as session:
        set_status(session, creds.member_id, "active")
    response, _, nonce = send(http, creds, "POST", "/v1/lookups", LOOKUP)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert_server_signed(response, "POST", BASE_URL + "/v1/lookups", nonce, server)


def test_sdk_reports_suspension_and_unknown_keys_as_typed_errors(app, make_member, make_client):
    """Refusals are signed answers to the request, so the SDK can trust and type them."""
    creds = make_member()
    client, _ = make_client(creds)
    with db.session_scope(app) as session:
        set_status(session, creds.member_id, "suspended")
    with pytest.raises(ForbiddenError) as refused:
        client.ping()
    assert refused.value.type == "urn:clue:problem:member-suspended"

    stranger, _ = make_client(Creds("m_nobody", keys.generate_signing_key()))
    with pytest.raises(AuthenticationError) as unknown:
        stranger.ping()
    assert unknown.value.type == "urn:clue:problem:unauthenticated"


# -- the SDK refuses answers it cannot trust -----------------------------------------------


def without_signature(response: requests.Response) -> None:
    for name in ("Signature", "Signature-Input"):
        del response.headers[name]


def flip_body_byte(response: requests.Response) -> None:
    content = bytearray(response._content)  # type: ignore[arg-type]
    content[len(content) // 2] ^= 0x01
    response._content = bytes(content)


def flip_body_and_fix_digest(response: requests.Response) -> None:
    flip_body_byte(response)
    response.headers["Content-Digest"] = digest_of(response._content)  # type: ignore[arg-type]


def status_to(status: int) -> Callable[[requests.Response], None]:
    def change(response: requests.Response) -> None:
        response.status_code = status
    return change


def other_nonce(response: requests.Response) -> None:
    response.headers["Signature-Input"] = re.sub(r'nonce="[^"]*"',
                                                 f'nonce="{protocol.new_nonce()}"',
                                                 response.headers["Signature-Input"])


def nonce_of_this_request(response: requests.Response) -> None:
    # The strongest forgery a man in the middle can make: the right nonce, but
    # the server never signed it for this answer.
    nonce = signature_nonce(response.request.headers)  # type: ignore[union-attr]
    response.headers["Signature-Input"] = re.sub(r'nonce="[^"]*"', f'nonce="{nonce}"',
                                                 response.headers["Signature-Input"])
    response.status_code = 201


@pytest.mark.parametrize("tamper", [
    pytest.param(without_signature, id="unsigned"),
    pytest.param(lambda r: r.headers.__delitem__("Signature"), id="no-signature-header"),
    pytest.param(flip_body_byte, id="body-byte-flipped"),
    pytest.param(flip_body_and_fix_digest, id="body-flipped-digest-recomputed"),
    pytest.param(lambda r: r.headers.__delitem__("Content-Digest"), id="no-digest"),
    pytest.param(status_to(500), id="status-500"),
    pytest.param(status_to(401), id="status-401"),
    pytest.param(other_nonce, id="other-nonce"),
    pytest.param(nonce_of_this_request, id="nonce-rewritten-status-changed"),
])
def test_sdk_refuses_a_tampered_answer(make_member, make_client, tamper):
    client, adapter = make_client(make_member())
    assert client.ping()["pong"] is True  # untampered, the same call works
    adapter.tamper = tamper
    with pytest.raises(ResponseVerificationError):
        client.ping()


def test_sdk_refuses_a_tampered_error_answer(make_member, make_client):
    """Refusals are verified too: a forged 401 cannot be slipped in either."""
    creds = make_member()
    client, adapter = make_client(Creds(creds.member_id, keys.generate_signing_key()))
    with pytest.raises(AuthenticationError):
        client.ping()
    adapter.tamper = flip_body_byte
    with pytest.raises(ResponseVerificationError):
        client.ping()


def test_sdk_refuses_an_earlier_answer_replayed_to_a_new_request(make_member, make_client):
    client, adapter = make_client(make_member())
    earlier: list[requests.Response] = []

    def record(response: requests.Response) -> None:
        earlier.append(response)

    adapter.tamper = record
    client.ping()

    def replay_earlier(response: requests.Response) -> None:
        response.status_code = earlier[0].status_code
        response.headers = earlier[0].headers
        response._content = earlier[0]._content

    adapter.tamper = replay_earlier
    with pytest.raises(ResponseVerificationError, match="nonce"):
        client.ping()

    # Same answer with its nonce rewritten to the new request's: the signature breaks.
    def replay_with_new_nonce(response: requests.Response) -> None:
        replay_earlier(response)
        nonce_of_this_request(response)
        response.status_code = earlier[0].status_code

    adapter.tamper = replay_with_new_nonce
    with pytest.raises(ResponseVerificationError):
        client.ping()


def test_sdk_refuses_an_answer_to_another_endpoint(make_member, make_client):
    """An answer is bound to the request's method and URI, not just its nonce."""
    client, adapter = make_client(make_member())
    answers: list[requests.Response] = []
    adapter.tamper = answers.append
    assert list(client.reports()) == []
    assert answers[0].request.path_url.startswith("/v1/reports")  # type: ignore[union-attr]

    def swap_for_reports_answer(response: requests.Response) -> None:
        # The /v1/reports answer, its nonce rewritten, presented as the answer to /v1/ping.
        old = answers[0]
        response.headers = requests.structures.CaseInsensitiveDict(old.headers)
        response._content = old._content
        nonce_of_this_request(response)
        response.status_code = old.status_code

    adapter.tamper = swap_for_reports_answer
    with pytest.raises(ResponseVerificationError):
        client.ping()


@pytest.mark.parametrize("same_key_id", [False, True], ids=["other-key-id", "same-key-id"])
def test_sdk_pinned_to_another_server_key_refuses(app, make_member, network_keys,
                                                 server, same_key_id):
    creds = make_member()
    impostor = keys.generate_signing_key().public_key()
    adapter = WSGIAdapter(app)
    session = requests.Session()
    session.mount(BASE_URL, adapter)
    client = ClueClient(BASE_URL, signing_key=creds.signing_key, server_public_key=impostor,
                        server_key_id=server.signing_key_id if same_key_id
                        else protocol.server_key_id(impostor),
                        network_keys=network_keys, session=session, retries=0)
    with pytest.raises(ResponseVerificationError):
        client.ping()
    assert len(adapter.captured) == 1  # it did reach the server; the answer was refused


def protocol_json(body: Any) -> bytes:
    return json.dumps(body).encode()


def digest_of(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def test_a_request_signed_for_another_deployment_is_refused(database_url, server_keys_dir,
                                                            make_member):
    """BCM review G-1: with CLUE_PUBLIC_HOSTS set, the signed host name must be ours."""
    from clue_server import create_app, db
    from tests.helpers import BASE_URL, signed

    ours = BASE_URL.split("//")[1]
    app = create_app({"database_url": database_url, "server_keys_dir": server_keys_dir,
                      "redis_url": None, "public_hosts": frozenset({ours})})
    try:
        http = app.test_client()
        member = make_member()
        assert signed(http, member, "GET", "/v1/ping").status_code == 200

        def elsewhere(message: protocol.Message) -> None:
            message.headers["Host"] = "clue-test.example"  # what another deployment sees

        other = protocol.Message("GET", "http://clue-test.example/v1/ping", headers={})
        protocol.sign_request(other, b"", key_id=member.key_id,
                              private_key=member.signing_key)
        refused = http.open("/v1/ping", base_url="http://clue-test.example", method="GET",
                            headers=other.headers)
        assert refused.status_code == 401
        assert "signed for 'clue-test.example'" in refused.get_json()["detail"]
    finally:
        db.dispose(app)
