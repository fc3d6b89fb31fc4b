"""Writes stay safe under concurrency and leave nothing a database thief could test."""

from __future__ import annotations

import hashlib
import threading

import requests
from sqlalchemy import func, select

from clue_client import ClueClient, canonical, tokens
from clue_server import db
from clue_server.auth.models import IdempotencyRecord
from clue_server.keystore import load_server_keys
from clue_server.reports.models import Report
from tests.helpers import BASE_URL, WSGIAdapter


def test_racing_registrations_store_once_and_never_fail(app, make_member, network_keys,
                                                         server_keys_dir):
    creds = make_member()
    server = load_server_keys(server_keys_dir)
    phones = [f"090-5555-{n:04d}" for n in range(12)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        session = requests.Session()
        session.mount(BASE_URL, WSGIAdapter(app))
        client = ClueClient(BASE_URL, signing_key=creds.signing_key,
                            server_public_key=server.public_key, network_keys=network_keys,
                            session=session, retries=0)
        try:
            for phone in phones:
                barrier.wait(timeout=10)
                client.register("phone", phone, "card_theft")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with db.session_scope(app) as session:
        assert session.scalar(select(func.count()).select_from(Report)) == len(phones)


def test_stored_idempotent_answers_cannot_confirm_a_guess(app, make_member, make_client,
                                                           network_keys):
    """A dump plus a network key, without the pepper, must not confirm a guessed identifier."""
    client, adapter = make_client(make_member())
    client.register("phone", "090-1234-5678", "card_theft", idempotency_key="k1")
    sent = adapter.captured[-1]
    body = sent.body if isinstance(sent.body, bytes) else sent.body.encode()
    guessed = tokens.encode_token(tokens.derive_token(
        network_keys.current.secret, "phone", canonical.canonicalize("phone", "09012345678")))
    assert guessed.encode() in body  # the attacker can rebuild this exact body
    plain = hashlib.sha256(b"POST /v1/reports\n" + body).hexdigest()
    with db.session_scope(app) as session:
        record = session.scalar(select(IdempotencyRecord))
        assert record is not None
        assert record.request_hash != plain
        assert guessed not in record.response_body
    # The same key and body still replay, the same key with another body is refused.
    again = client.register("phone", "090-1234-5678", "card_theft", idempotency_key="k1")
    assert again.created is True


def test_an_idempotency_key_attached_on_the_way_is_refused(http, make_member):
    """Issue 10 item 1: a man in the middle who saw an earlier request's Idempotency-Key
    attaches it to a later identical body, hoping for the stored "created" answer while
    nothing is written. The key is covered by the signature, so the request is refused."""
    from clue_client import protocol
    from tests.helpers import signed

    member = make_member()
    body = {"reports": [{"type": "phone", "category": "phishing", "key_version": 1,
                         "token": "D" * 42 + "A"}]}
    first = signed(http, member, "POST", "/v1/reports", body,
                   headers={"Idempotency-Key": "batch-1"})
    assert first.status_code == 201

    def attach(message: protocol.Message) -> None:
        message.headers["Idempotency-Key"] = "batch-1"

    replayed = signed(http, member, "POST", "/v1/reports", body, after_sign=attach)
    assert replayed.status_code == 401
    assert "idempotency-key" in replayed.get_json()["detail"]
    assert "Idempotent-Replayed" not in replayed.headers

    def swap_type(message: protocol.Message) -> None:  # and Content-Type is covered too
        message.headers["Content-Type"] = "text/plain"

    assert signed(http, member, "POST", "/v1/reports", body,
                  after_sign=swap_type).status_code == 401
