"""The worked example of docs/protocol.md, checked byte for byte.

Every ``<!-- example:NAME -->`` block of the page is recomputed twice: by the project's
own code (the SDK's real request, the server's real response signing and checks) and
from scratch with hashlib, hmac and cryptography, so the page doubles as a spec and
cannot drift from the code. The keys are the page's published test-only keys.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import Flask, Response
from flask import request as flask_request
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

import keys
from clue_client import ClueClient, canonical, protocol, tokens
from clue_server.auth import services as auth
from clue_server.auth.nonces import NONCE_TTL
from clue_server.config import DEFAULT_RETENTION_DAYS, Settings
from clue_server.errors import ALL_ERRORS
from clue_server.idempotency import MAX_KEY_LENGTH
from clue_server.keystore import ServerKeys
from clue_server.lookups.services import _result
from clue_server.networkkeys.services import MAX_ENVELOPE_BYTES
from clue_server.reports.services import MAX_KEY_VERSION

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

# The fixed inputs the page promises.
SERVER_URL = "https://clue.example"
LOOKUP_URI = SERVER_URL + "/v1/lookups"
CREATED = 1700000000
RESPONSE_CREATED = CREATED + 1
NONCE = "bm9uY2UtZXhhbXBsZS0wMDE"

_BLOCK = re.compile(r"<!-- example:([a-z0-9-]+) -->\n```[a-z]*\n(.*?)\n```", re.DOTALL)


def _blocks(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, body in _BLOCK.findall(text):
        assert name not in found, f"example block {name!r} appears twice in {DOC}"
        found[name] = body
    return found


DOC_TEXT = DOC.read_text(encoding="utf-8")
EX = _blocks(DOC_TEXT)


def _http(name: str) -> tuple[str, CaseInsensitiveDict[str], str]:
    """Split an ``http`` example block into its start line, headers and body text."""
    head, blank, body = EX[name].partition("\n\n")
    assert blank, f"example {name!r} has no blank line before its body"
    start, *lines = head.split("\n")
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for line in lines:
        field, sep, value = line.partition(": ")
        assert sep, f"bad header line in example {name!r}: {line!r}"
        headers[field] = value
    return start, headers, body


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _digest(body: bytes) -> str:
    return f"sha-256=:{_b64(hashlib.sha256(body).digest())}:"


def _signature_value(header: str) -> bytes:
    match = re.fullmatch(r"clue=:([A-Za-z0-9+/=]+):", header)
    assert match, f"not a single clue=:...: signature: {header!r}"
    return base64.b64decode(match.group(1), validate=True)


def _member_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(EX["member-private-key-hex"]))


def _server_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(EX["server-private-key-hex"]))


def _raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes_raw()


def _network_ring() -> keys.Keyring:
    secret = bytes.fromhex(EX["network-key-hex"])
    created = dt.datetime.fromtimestamp(CREATED, dt.UTC)
    return keys.Keyring([keys.SymmetricKey("network", 1, secret, created)])


def _server_keys() -> ServerKeys:
    created = dt.datetime.fromtimestamp(CREATED, dt.UTC)
    pepper = keys.SymmetricKey("pepper", 1, bytes.fromhex(EX["pepper-hex"]), created)
    server = _server_key()
    return ServerKeys(signing_key=server, signing_key_id=EX["server-keyid"],
                      peppers=keys.Keyring([pepper]))


def _response_body() -> bytes:
    # The page shows the body without its final newline and says the newline is there.
    _, _, body = _http("lookup-response")
    return body.encode() + b"\n"


class _Captured(Exception):
    """Raised by the adapter to stop the SDK once it has sent its request."""


class _Adapter(BaseAdapter):
    """Records what the SDK sends; answers with the page's response or stops."""

    def __init__(self, answer: bool) -> None:
        super().__init__()
        self.answer = answer
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        self.sent.append(request)
        if not self.answer:
            raise _Captured
        _, headers, _ = _http("lookup-response")
        response = requests.Response()
        response.status_code = 200
        response.headers = CaseInsensitiveDict(headers)
        response._content = _response_body()
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


def _client(monkeypatch: pytest.MonkeyPatch, *, answer: bool) -> tuple[ClueClient, _Adapter]:
    monkeypatch.setattr(protocol, "new_nonce", lambda: NONCE)
    monkeypatch.setattr(protocol, "_now", lambda: dt.datetime.fromtimestamp(CREATED, dt.UTC))
    adapter = _Adapter(answer)
    session = requests.Session()
    session.mount(SERVER_URL, adapter)
    client = ClueClient(SERVER_URL, signing_key=_member_key(),
                        server_public_key=_server_key().public_key(),
                        server_key_id=EX["server-keyid"], network_keys=_network_ring(),
                        session=session, retries=0, private_lookups=False)  # protocol 1's page
    return client, adapter


# -- keys ----------------------------------------------------------------------------


def test_the_published_keys_are_the_promised_test_only_bytes() -> None:
    assert EX["member-private-key-hex"] == bytes(range(1, 33)).hex()
    assert EX["server-private-key-hex"] == bytes(range(33, 65)).hex()
    assert EX["network-key-hex"] == bytes(range(32)).hex()
    assert EX["pepper-hex"] == bytes(range(64, 96)).hex()


def test_public_keys_and_key_ids() -> None:
    member, server = _member_key(), _server_key()
    assert EX["member-public-key-hex"] == _raw(member).hex()
    assert EX["server-public-key-hex"] == _raw(server).hex()
    by_hand = "k-" + hashlib.sha256(_raw(member)).hexdigest()[:16]
    assert EX["member-keyid"] == by_hand == keys.key_id(member.public_key())
    server_by_hand = "server-k-" + hashlib.sha256(_raw(server)).hexdigest()[:16]
    assert EX["server-keyid"] == server_by_hand == protocol.server_key_id(server.public_key())


# -- canonical forms and tokens ------------------------------------------------------


def test_phone_canonical_form() -> None:
    assert EX["phone-input"] == "090-1234-5678"
    assert canonical.canonicalize("phone", EX["phone-input"]) == EX["phone-canonical"]


def test_phone_token_layout_and_value() -> None:
    network_key = bytes.fromhex(EX["network-key-hex"])
    message = b"clue/v1" + b"\x00" + b"phone" + b"\x00" + EX["phone-canonical"].encode("utf-8")
    assert EX["phone-hmac-input-hex"] == message.hex()
    token = hmac.new(network_key, message, hashlib.sha256).digest()
    assert EX["phone-token-hex"] == token.hex()
    assert EX["phone-token"] == _b64url(token)
    assert len(EX["phone-token"]) == tokens.TOKEN_TEXT_LENGTH
    # The project's own derivation agrees, and its strict decoder takes the text back.
    assert tokens.derive_token(network_key, "phone", EX["phone-canonical"]) == token
    assert tokens.encode_token(token) == EX["phone-token"]
    assert tokens.decode_token(EX["phone-token"]) == token


def test_email_canonical_folded_and_tokens() -> None:
    network_key = bytes.fromhex(EX["network-key-hex"])
    exact = canonical.canonicalize("email", EX["email-input"])
    assert exact == EX["email-canonical"]
    assert canonical.email_folded(exact) == EX["email-folded"]
    for name, form in (("email-token", exact), ("email-folded-token", EX["email-folded"])):
        message = b"clue/v1\x00email\x00" + form.encode("utf-8")
        by_hand = _b64url(hmac.new(network_key, message, hashlib.sha256).digest())
        assert EX[name] == by_hand
        assert tokens.encode_token(tokens.derive_token(network_key, "email", form)) == by_hand


def test_stored_form_is_hmac_of_the_token_under_the_pepper() -> None:
    token = bytes.fromhex(EX["phone-token-hex"])
    by_hand = hmac.new(bytes.fromhex(EX["pepper-hex"]), token, hashlib.sha256).digest()
    assert EX["phone-stored-hex"] == by_hand.hex()
    assert _server_keys().token_hash(token) == by_hand
    assert _server_keys().token_hashes(token) == [by_hand]


# -- the signed lookup request -------------------------------------------------------


def test_sdk_sends_exactly_the_documented_request(monkeypatch: pytest.MonkeyPatch) -> None:
    client, adapter = _client(monkeypatch, answer=True)
    results = client.lookup(phone=EX["phone-input"])

    start, headers, body = _http("lookup-request")
    assert len(adapter.sent) == 1
    sent = adapter.sent[0]
    method, target, version = start.split(" ")
    url = urlsplit(sent.url or "")
    assert (sent.method, url.path, version) == (method, target, "HTTP/1.1")
    assert url.netloc == headers["Host"]
    assert sent.url == f"https://{headers['Host']}{target}" == LOOKUP_URI
    assert sent.body == body.encode()
    for field in ("Content-Type", "Content-Length", "Content-Digest", "Signature-Input",
                  "Signature"):
        assert sent.headers[field] == headers[field], field
    assert json.loads(body)["items"][0]["token"] == EX["phone-token"]

    # The SDK accepted the documented response and read it as the page says.
    result = results["phone"]
    answer = json.loads(_response_body())["results"][0]
    assert result.matched is answer["matched"] is True
    assert result.match == answer["match"] == "exact"
    assert list(result.categories) == answer["categories"] == ["card_theft"]
    assert result.reporters == answer["reporters"] == 2
    assert result.first_reported == dt.date.fromisoformat(answer["first_reported"])
    assert result.last_reported == dt.date.fromisoformat(answer["last_reported"])
    assert result.reported_by_me is answer["reported_by_me"] is False


def test_request_signature_built_by_hand() -> None:
    _, headers, body = _http("lookup-request")
    digest = _digest(body.encode())
    assert headers["Content-Length"] == str(len(body.encode()))
    assert headers["Content-Digest"] == digest

    params = (f'("@method" "@target-uri" "content-type" "content-digest");created={CREATED};'
              f'keyid="{EX["member-keyid"]}";alg="ed25519";nonce="{NONCE}"')
    assert headers["Signature-Input"] == "clue=" + params
    base = "\n".join([
        '"@method": POST',
        f'"@target-uri": {LOOKUP_URI}',
        '"content-type": application/json',
        f'"content-digest": {digest}',
        f'"@signature-params": {params}',
    ])
    assert EX["request-signature-base"] == base

    signature = _signature_value(headers["Signature"])
    member = _member_key()
    assert member.sign(base.encode("ascii")) == signature  # Ed25519 is deterministic
    member.public_key().verify(signature, base.encode("ascii"))
    with pytest.raises(InvalidSignature):
        member.public_key().verify(signature, base.replace("POST", "PUT").encode("ascii"))


def test_project_code_signs_and_verifies_the_documented_request() -> None:
    _, headers, body = _http("lookup-request")
    message = protocol.Message(method="POST", url=LOOKUP_URI,
                               headers={"Content-Type": "application/json"})
    protocol.sign_request(message, body.encode(), key_id=EX["member-keyid"],
                          private_key=_member_key(), nonce=NONCE,
                          created=dt.datetime.fromtimestamp(CREATED, dt.UTC))
    for field in ("Content-Digest", "Signature-Input", "Signature"):
        assert message.headers[field] == headers[field], field

    # The server's check accepts it within 300 s and refuses it after, or tampered.
    received = protocol.Message(method="POST", url=LOOKUP_URI, headers=dict(headers))
    public = _member_key().public_key()

    def verify(raw: bytes, *, at: int, url: str = LOOKUP_URI) -> protocol.SignedBy:
        seen = protocol.Message(method="POST", url=url, headers=dict(headers))
        return protocol.verify_request(seen.as_request(), raw, public_key=public,
                                       key_id=EX["member-keyid"],
                                       now=dt.datetime.fromtimestamp(at, dt.UTC))

    signed = verify(body.encode(), at=CREATED + protocol.MAX_SIGNATURE_AGE)
    assert (signed.key_id, signed.nonce, signed.created) == (EX["member-keyid"], NONCE, CREATED)
    assert protocol.read_key_id(received.headers) == EX["member-keyid"]
    with pytest.raises(protocol.SignatureError):
        verify(body.encode(), at=CREATED + protocol.MAX_SIGNATURE_AGE + 1)
    with pytest.raises(protocol.SignatureError):
        verify(body.encode().replace(b'"key_version":1', b'"key_version":2'), at=CREATED)
    with pytest.raises(protocol.SignatureError):
        verify(body.encode(), at=CREATED, url=SERVER_URL + "/v1/reports")


# -- the signed response --------------------------------------------------------------


def test_response_body_is_what_the_server_sends() -> None:
    body = _response_body()
    _, headers, _ = _http("lookup-response")
    assert headers["Content-Length"] == str(len(body))
    answer = json.loads(body)
    # The same fields in the same order as the lookup service returns them.
    assert list(answer) == ["results"]
    assert list(answer["results"][0]) == list(_result("m_x", [], []))
    app = Flask("protocol-example")
    app.json.sort_keys = False  # type: ignore[attr-defined]  # as create_app sets it
    with app.app_context():
        assert app.json.response(answer).get_data() == body


def test_server_signs_exactly_the_documented_response(monkeypatch: pytest.MonkeyPatch) -> None:
    _, req_headers, req_body = _http("lookup-request")
    _, headers, _ = _http("lookup-response")
    monkeypatch.setattr(protocol, "_now",
                        lambda: dt.datetime.fromtimestamp(RESPONSE_CREATED, dt.UTC))
    app = Flask("protocol-example")
    with app.test_request_context("/v1/lookups", base_url=SERVER_URL, method="POST",
                                  data=req_body.encode(), headers=dict(req_headers)):
        assert auth.target_uri(flask_request) == LOOKUP_URI
        response = Response(_response_body(), status=200, content_type="application/json")
        auth.sign_response(response, flask_request, _server_keys(), NONCE)
    for field in ("Content-Type", "Content-Length", "Content-Digest", "Signature-Input",
                  "Signature"):
        assert response.headers[field] == headers[field], field


def test_response_signature_built_by_hand() -> None:
    start, headers, _ = _http("lookup-response")
    assert start == "HTTP/1.1 200 OK"
    digest = _digest(_response_body())
    assert headers["Content-Digest"] == digest
    params = ('("@status" "content-type" "@method";req "@target-uri";req "content-digest");'
              f'created={RESPONSE_CREATED};keyid="{EX["server-keyid"]}";alg="ed25519";'
              f'nonce="{NONCE}"')
    assert headers["Signature-Input"] == "clue=" + params
    base = "\n".join([
        '"@status": 200',
        '"content-type": application/json',
        '"@method";req: POST',
        f'"@target-uri";req: {LOOKUP_URI}',
        f'"content-digest": {digest}',
        f'"@signature-params": {params}',
    ])
    assert EX["response-signature-base"] == base
    signature = _signature_value(headers["Signature"])
    _server_key().public_key().verify(signature, base.encode("ascii"))
    assert _server_key().sign(base.encode("ascii")) == signature


def test_client_checks_on_the_documented_response() -> None:
    _, headers, _ = _http("lookup-response")
    body = _response_body()
    server = _server_key().public_key()

    def check(*, status: int = 200, raw: bytes = body, nonce: str | None = NONCE,
              key_id: str = EX["server-keyid"], public: Ed25519PublicKey = server,
              url: str = LOOKUP_URI) -> None:
        request = protocol.Message(method="POST", url=url, headers={}).as_request()
        protocol.verify_response(status, dict(headers), raw, request, public_key=public,
                                 key_id=key_id, nonce=nonce)

    check()
    other = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    refusals: list[dict[str, Any]] = [
        {"nonce": "another-nonce-0000000"},  # answers another request
        {"nonce": None},
        {"raw": body.replace(b'"reporters":2', b'"reporters":3')},  # digest mismatch
        {"status": 201},
        {"url": SERVER_URL + "/v1/reports"},  # answers another URI
        {"key_id": "server-k-0000000000000000"},  # not the pinned key id
        {"public": other},  # not the pinned key
    ]
    for change in refusals:
        with pytest.raises(protocol.SignatureError):
            check(**change)


# -- registration -----------------------------------------------------------------------


def test_sdk_registration_body(monkeypatch: pytest.MonkeyPatch) -> None:
    client, adapter = _client(monkeypatch, answer=False)
    with pytest.raises(_Captured):
        client.register("phone", EX["phone-input"], "card_theft")
    sent = adapter.sent[0]
    assert (sent.method, sent.url) == ("POST", SERVER_URL + "/v1/reports")
    assert sent.body == EX["register-body"].encode()
    assert sent.headers["Content-Digest"] == EX["register-content-digest"]
    assert _digest(EX["register-body"].encode()) == EX["register-content-digest"]
    body = json.loads(EX["register-body"])
    assert body == {"reports": [{"type": "phone", "key_version": 1, "token": EX["phone-token"],
                                 "category": "card_theft"}]}
    # §9: no Idempotency-Key unless the caller gives one, and then exactly that one.
    assert "Idempotency-Key" not in sent.headers
    with pytest.raises(_Captured):
        client.register("phone", EX["phone-input"], "card_theft", idempotency_key="batch-7")
    assert adapter.sent[1].headers["Idempotency-Key"] == "batch-7"
    assert adapter.sent[1].body == sent.body


# -- tables -------------------------------------------------------------------------------


def _table(marker: str) -> list[list[str]]:
    match = re.search(rf"<!-- {marker}:begin -->\n(.*?)\n<!-- {marker}:end -->", DOC_TEXT,
                      re.DOTALL)
    assert match, f"no {marker} table in {DOC}"
    rows = []
    for line in match.group(1).split("\n")[2:]:  # skip the header and the rule
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def test_problem_types_table_matches_errors_module() -> None:
    documented = {(row[0].strip("`"), int(row[1])) for row in _table("problem-types")}
    actual = {(cls("x").type, cls.status) for cls in ALL_ERRORS}
    assert documented == actual


def test_limits_table_matches_the_code() -> None:
    settings = Settings()
    expected = {
        "request body": (settings.max_body_bytes,),
        "items per request": (settings.max_batch_items,),
        "raw identifier length": (canonical.MAX_IDENTIFIER_LENGTH,),
        "device_id length": (canonical.MAX_DEVICE_ID_LENGTH,),
        "signature age": (protocol.MAX_SIGNATURE_AGE,),
        "signature created in the future": (protocol.MAX_CLOCK_SKEW,),
        "nonce length": (16, protocol.MAX_NONCE_LENGTH),
        "nonce memory": (int(NONCE_TTL.total_seconds()),),
        "Idempotency-Key length": (1, MAX_KEY_LENGTH),
        "Idempotency-Key memory": (settings.idempotency_ttl_hours,),
        "key_version": (1, MAX_KEY_VERSION),
        "network-key envelope": (MAX_ENVELOPE_BYTES,),
        "retention, `ip`": (DEFAULT_RETENTION_DAYS["ip"],),
        "retention, other types": (DEFAULT_RETENTION_DAYS["phone"],),
    }
    documented = {}
    for label, value, _where in _table("limits"):
        numbers = tuple(int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", value))
        documented[label] = numbers
    for label, numbers in expected.items():
        assert documented[label][:len(numbers)] == numbers, label
    assert {t: d for t, d in DEFAULT_RETENTION_DAYS.items() if t != "ip"} == {
        t: DEFAULT_RETENTION_DAYS["phone"] for t in DEFAULT_RETENTION_DAYS if t != "ip"}


def test_created_may_be_up_to_the_documented_skew_ahead() -> None:
    # §6: at most MAX_CLOCK_SKEW (300 s) ahead of the server clock. The signature
    # library checks the wall clock itself, so this uses the real time, with margins.
    def verify(ahead: int) -> None:
        created = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ahead)
        message = protocol.Message(method="GET", url=SERVER_URL + "/v1/ping", headers={})
        protocol.sign_request(message, b"", key_id=EX["member-keyid"],
                              private_key=_member_key(), created=created)
        protocol.verify_request(message.as_request(), b"", public_key=_member_key().public_key(),
                                key_id=EX["member-keyid"])

    verify(protocol.MAX_CLOCK_SKEW - 2)
    with pytest.raises(protocol.SignatureError):
        verify(protocol.MAX_CLOCK_SKEW + 3)
