"""What the server sees and keeps: tokens only, peppered at rest, never the network key.

DESIGN properties 1-3 and issue 2 must 2:
1. no raw identifier, canonical form or plain SHA-256 of either leaves the member;
2. the server's database, configuration and key files hold no network key;
3. at rest the server keeps HMAC(pepper, token), never the token.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import os
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from sqlalchemy import inspect, select, text

import keys
from clue_client import ReportInput, keyshare
from clue_client.canonical import canonicalize, email_folded
from clue_client.tokens import derive_token, encode_token
from clue_server import db
from clue_server.keystore import load_server_keys
from clue_server.reports import services as report_services
from clue_server.reports.models import Report

# (type, raw value as a member's system holds it): raw and canonical differ on purpose.
IDENTIFIERS = [
    ("phone", "０９０－１２３４－５６７８"),
    ("email", "J.Doe+shop@GoogleMail.com"),
    ("ip", "2606:4700:4700:8d3:1319:8a2e:370:7348"),
    ("device_id", " fp-7f3a9c61d2e04b8a "),
    ("bank_account", "0005 123 1 45678"),
]


# -- encodings a leak could take ----------------------------------------------------


def _encodings(data: bytes) -> list[bytes]:
    """``data`` as raw bytes, hex (both cases), base64 and base64url (padded or not)."""
    std = base64.b64encode(data)
    url = base64.urlsafe_b64encode(data)
    return [data, data.hex().encode(), data.hex().upper().encode(),
            std, std.rstrip(b"="), url, url.rstrip(b"=")]


def _text_forms(value: str) -> list[bytes]:
    """A string as it could appear in a body, a header or a URL."""
    forms = {value.encode(), json.dumps(value).encode()[1:-1],
             quote(value, safe="").encode(), quote(value).encode()}
    return [f for f in forms if f]


def _identifier_needles(id_type: str, raw: str) -> dict[str, bytes]:
    """Every form of one identifier that must never leave the member."""
    canon = canonicalize(id_type, raw)
    forms = {"raw": raw, "raw stripped": raw.strip(), "canonical": canon}
    if id_type == "email":
        forms["folded"] = email_folded(canon)
    if id_type == "phone":
        forms["national digits"] = canon.removeprefix("+81")
        forms["e164 digits"] = canon.removeprefix("+")
    needles: dict[str, bytes] = {}
    for label, value in forms.items():
        for n, form in enumerate(_text_forms(value)):
            needles[f"{label} text#{n}"] = form
        digest = hashlib.sha256(value.encode()).digest()
        for n, form in enumerate(_encodings(digest)):
            needles[f"sha256({label}) enc#{n}"] = form
    return needles


def _find(blob: bytes, needles: dict[str, bytes]) -> list[str]:
    lowered = blob.lower()
    return [label for label, needle in needles.items()
            if needle in blob or needle.lower() in lowered]


def _request_bytes(request) -> bytes:
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    url = request.url or ""
    headers = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
    return b"\n".join([request.method.encode(), url.encode(), unquote(url).encode(),
                       headers.encode(), body])


def test_the_leak_finder_finds_what_it_looks_for():
    # Without this, the privacy tests below could pass by looking at nothing.
    needles = _identifier_needles("phone", "090-1234-5678")
    digest = hashlib.sha256(b"+819012345678").digest()
    for planted in (b'{"value":"+819012345678"}', base64.urlsafe_b64encode(digest).rstrip(b"="),
                    digest.hex().upper().encode(), b"x=%2B819012345678", b"09012345678"):
        assert _find(b"prefix " + planted + b" suffix", needles), planted
    assert _find(b'"token": "abc", "key_version": 1', needles) == []


# -- property 1: nothing but tokens leaves the member ----------------------------------


def test_no_identifier_in_any_request_the_sdk_sends(make_member, make_client, network_keys):
    client, adapter = make_client(make_member())

    reports = client.register_many([ReportInput(t, v, "card_theft") for t, v in IDENTIFIERS])
    client.register(*IDENTIFIERS[0], "phishing", expires_in_days=10)
    client.lookup(**dict(IDENTIFIERS))
    client.lookup_many(IDENTIFIERS)
    list(client.reports(page_size=2))
    client.withdraw(reports[0].id)
    client.ping()

    sent = [_request_bytes(r) for r in adapter.captured]
    assert len(sent) >= 8
    everything = b"\n".join(sent)
    for id_type, raw in IDENTIFIERS:
        leaks = _find(everything, _identifier_needles(id_type, raw))
        assert leaks == [], f"{id_type} leaked as {leaks}"
        # Control: what is sent instead is the token, so these are the right bytes.
        token = derive_token(network_keys.current.secret, id_type, canonicalize(id_type, raw))
        assert encode_token(token).encode() in everything


def test_a_leaking_client_would_be_caught(make_member, make_client, monkeypatch):
    # Mutation check of the capture pipeline: a client that sent the canonical form
    # (here in a header) is caught by the same code that clears the real one.
    from dataclasses import replace

    from clue_client import ClueError
    from clue_client._transport import SyncTransport

    original = SyncTransport.request

    def leaky(self, call, deadline):
        headers = {**(call.headers or {}), "X-Debug": canonicalize("phone", IDENTIFIERS[0][1])}
        return original(self, replace(call, headers=headers), deadline)

    monkeypatch.setattr(SyncTransport, "request", leaky)
    client, adapter = make_client(make_member())
    try:
        client.lookup(phone=IDENTIFIERS[0][1])
    except ClueError:
        pass
    everything = b"\n".join(_request_bytes(r) for r in adapter.captured)
    assert _find(everything, _identifier_needles(*IDENTIFIERS[0]))


# -- property 3: the server stores HMAC(pepper, token), not the token --------------------


def _dump_database(app) -> bytes:
    """Every column of every row of every table, as bytes."""
    engine = app.extensions["clue_engine"]
    parts = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    parts.append(_as_bytes(value))
    return b"\n".join(parts)


def _as_bytes(value) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, dict | list):
        return json.dumps(value).encode()
    return str(value).encode()


def _sqlite_files(app) -> bytes:
    """The SQLite database files themselves (free pages and WAL included)."""
    url = app.extensions["clue_engine"].url
    if url.get_backend_name() != "sqlite":
        return b""
    base = Path(url.database)
    return b"".join(p.read_bytes() for p in base.parent.glob(base.name + "*"))


def test_stored_rows_hold_peppered_hashes_not_tokens(app, make_member, make_client,
                                                     network_keys, server_keys_dir):
    creds = make_member()
    client, _ = make_client(creds)
    reports = client.register_many([ReportInput(t, v, "phishing") for t, v in IDENTIFIERS])
    client.lookup_many(IDENTIFIERS)
    server = load_server_keys(server_keys_dir)
    secret = network_keys.current.secret

    dump = _dump_database(app) + _sqlite_files(app)

    with db.session_scope(app) as session:
        rows = {r.id: r for r in session.scalars(select(Report))}
    for report, (id_type, raw) in zip(reports, IDENTIFIERS, strict=True):
        canon = canonicalize(id_type, raw)
        token = derive_token(secret, id_type, canon)
        row = rows[report.id]
        assert row.token_hash == hmac.new(server.peppers.current.secret, token,
                                          hashlib.sha256).digest()
        assert row.pepper_version == server.peppers.current.version
        tokens = {"token": token}
        if id_type == "email":
            tokens["folded token"] = derive_token(secret, id_type, email_folded(canon))
            assert row.folded_hash == server.token_hash(tokens["folded token"])
        else:
            assert row.folded_hash is None
        for label, value in tokens.items():
            needles = {f"{label} enc#{n}": e for n, e in enumerate(_encodings(value))}
            assert _find(dump, needles) == [], f"{id_type} {label} stored"
        assert _find(dump, _identifier_needles(id_type, raw)) == []
        assert row.token_hash in dump  # control: the dump does hold the stored form


# -- property 2: the server holds no network key ----------------------------------------


def _server_side_bytes(app, server_keys_dir: Path) -> bytes:
    """Everything the operator holds: database, configuration, key files, loaded keys."""
    parts = [_dump_database(app), _sqlite_files(app)]
    parts += [p.read_bytes() for p in sorted(server_keys_dir.rglob("*")) if p.is_file()]
    parts += [f"{k}={v!r}".encode() for k, v in app.config.items()]
    settings = app.extensions["clue_settings"]
    parts.append(repr(dataclasses.asdict(settings)).encode())
    server = app.extensions["clue_keys"]
    parts.append(server.signing_key.private_bytes(Encoding.Raw, PrivateFormat.Raw,
                                                  NoEncryption()))
    parts += [p.secret for p in server.peppers]
    parts += [f"{k}={v}".encode() for k, v in os.environ.items()]
    return b"\n".join(parts)


def _key_needles(secret: bytes) -> dict[str, bytes]:
    return {f"network key enc#{n}": e for n, e in enumerate(_encodings(secret))}


def _exercise(app, make_member, make_client, network_keys) -> list[str]:
    """Two members share the network key through the server, report, look up and
    withdraw; the council purges. Returns the report ids."""
    alice, bob = make_member("Alice Pay"), make_member("Bob Pay")
    alice_client, _ = make_client(alice)
    bob_client, _ = make_client(bob)
    bob_client.publish_hpke_key(keys.generate_hpke_key().public_key())
    shared = keyshare.share(alice_client, network_keys.current, alice.signing_key,
                            own_member_id=alice.member_id)
    assert shared.shared_with == (bob.member_id,)  # an envelope is now stored
    reports = alice_client.register_many([ReportInput(t, v, "card_theft") for t, v in IDENTIFIERS],
                                         idempotency_key="import-1")
    bob_client.register(*IDENTIFIERS[1], "phishing", expires_in_days=1)
    assert bob_client.lookup(**dict(IDENTIFIERS))["email"].reporters == 2
    alice_client.lookup_many(IDENTIFIERS)
    alice_client.withdraw(reports[-1].id)
    with db.session_scope(app) as session:
        report_services.purge_expired(session, now=db.utcnow() + dt.timedelta(days=2))
    return [r.id for r in reports]


def test_no_network_key_anywhere_on_the_server(app, make_member, make_client, network_keys,
                                               server_keys_dir, tmp_path):
    _exercise(app, make_member, make_client, network_keys)
    needles = _key_needles(network_keys.current.secret)

    held = _server_side_bytes(app, server_keys_dir)

    assert len(held) > 1000
    assert _find(held, needles) == []
    # Control: a member's network key file does contain the key in a form we look for.
    member_file = tmp_path / "network-v1.key"
    keys.save_symmetric_key(member_file, network_keys.current)
    assert _find(member_file.read_bytes(), needles)


def test_the_operator_cannot_confirm_a_right_guess(app, make_member, make_client, network_keys,
                                                   server_keys_dir):
    # The operator guesses exactly the reported identifiers and holds every server secret;
    # no way of hashing them it could try without the network key gives a stored value.
    _exercise(app, make_member, make_client, network_keys)
    server = load_server_keys(server_keys_dir)
    with db.session_scope(app) as session:
        stored = {h for r in session.scalars(select(Report))
                  for h in (r.token_hash, r.folded_hash) if h is not None}
    candidate_keys = [p.secret for p in server.peppers]
    candidate_keys.append(server.signing_key.private_bytes(Encoding.Raw, PrivateFormat.Raw,
                                                           NoEncryption()))

    def peppered(token: bytes) -> set[bytes]:
        return {hmac.new(p.secret, token, hashlib.sha256).digest() for p in server.peppers}

    for id_type, raw in IDENTIFIERS[:-1]:  # the last one was withdrawn
        canon = canonicalize(id_type, raw)
        guesses = [canon.encode(), hashlib.sha256(canon.encode()).digest(),
                   hashlib.sha256(f"{id_type}\x00{canon}".encode()).digest()]
        guesses += [derive_token(k, id_type, canon) for k in candidate_keys]
        for guess in guesses:
            assert not peppered(guess) & stored
        # Control: with the network key (which only members hold) the guess is confirmed.
        real = derive_token(network_keys.current.secret, id_type, canon)
        assert peppered(real) & stored


@pytest.mark.parametrize("id_type,raw", IDENTIFIERS)
def test_one_identifier_registration_sends_only_its_token(make_member, make_client,
                                                          network_keys, id_type, raw):
    client, adapter = make_client(make_member())
    client.register(id_type, raw, "other")
    client.lookup(**{id_type: raw})
    [post_register, post_lookup] = adapter.captured
    for request in (post_register, post_lookup):
        body = json.loads(request.body)
        [item] = body.get("reports") or body.get("items")
        expected = {"type", "key_version", "token"} | (
            {"folded_token"} if id_type == "email" else set())
        if "reports" in body:
            expected |= {"category"}
        # Nothing but the type, the key version, the token(s) and the category.
        assert set(item) == expected
        assert item["token"] == encode_token(derive_token(
            network_keys.current.secret, id_type, canonicalize(id_type, raw)))
