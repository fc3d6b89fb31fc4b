"""What the operator learns from another member's look-up, with one member's network key
(issue 13, point 4; docs/threat-model.md has the table).

The attacker holds everything the server holds (database, OPRF and pepper keys, logs,
every request it received) plus a network key obtained from one colluding member, and
tries to tell which of 100,000 candidate phone numbers the victim looked up:

* protocol v1: the token in the request identifies the number at once;
* v2 online look-up: the evaluation request carries a blinded element the attacker
  cannot link to any candidate; the bucket request narrows the candidates to those
  whose entry id starts with the prefix (about candidates / 2^prefix_bits), no further;
* v2 with the replica: the requests do not depend on the identifier at all.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import random
from typing import Any

import pytest

import keys
from clue_client import ReportInput, canonical, tokens
from clue_client.private_lookups import entries as pl
from clue_client.protocol import b64url
from clue_server.keystore import load_server_keys
from keys._oprf import _input_element  # the attacker's view of a candidate
from tests.helpers import Creds, signed

CANDIDATES = 100_000
PHONE_SPACE = 300_000_000  # Japanese mobile numbers (070, 080, 090)


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _candidates() -> list[str]:
    """100,000 distinct mobile numbers in canonical form (``+8190`` and 8 digits, as
    ``canonical.canonicalize`` writes them), in a fixed random order."""
    rng = random.Random(1300)
    numbers = rng.sample(range(10**8), CANDIDATES)
    return [f"+8190{n:08d}" for n in numbers]


def _valid(number: str) -> bool:
    try:
        return canonical.canonicalize("phone", number) == number
    except ValueError:  # a number in an unallocated block
        return False


def _token(network_key: bytes, canonical_phone: str) -> bytes:
    return tokens.derive_token(network_key, "phone", canonical_phone)


class Traffic:
    """Every request body and query the server received (what the operator records)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []

    def send(self, http: Any, creds: Creds, method: str, path: str, body: Any = None) -> Any:
        self.requests.append((method, path, json.dumps(body).encode() if body else b""))
        answer = signed(http, creds, method, path, body)
        assert answer.status_code == 200, answer.get_data()[:300]
        return answer


def _online_lookup(http: Any, creds: Creds, traffic: Traffic, token: bytes) -> int:
    """The victim's v2 online look-up; returns the prefix it revealed."""
    blind = keys.oprf_blind(token)
    answer = traffic.send(http, creds, "POST", "/v2/evaluations", {
        "oprf_version": 1, "items": [{"type": "phone", "blinded": b64url(blind.blinded_element)}]})
    body = answer.get_json()
    y = keys.oprf_finalize(blind, _b64(body["evaluated"][0]))
    prefix = pl.bucket_prefix(pl.derive_entry(y, "exact").entry_id, body["prefix_bits"])
    traffic.send(http, creds, "POST", "/v2/buckets", {
        "oprf_version": 1, "prefix_bits": body["prefix_bits"], "prefixes": [prefix]})
    return prefix


def _replica_lookup(http: Any, creds: Creds, traffic: Traffic, token: bytes) -> None:
    blind = keys.oprf_blind(token)
    traffic.send(http, creds, "POST", "/v2/evaluations", {
        "oprf_version": 1, "items": [{"type": "phone", "blinded": b64url(blind.blinded_element)}]})
    traffic.send(http, creds, "GET", "/v2/replica?oprf_version=1&after=0")


def test_the_operator_with_a_members_key_narrows_a_private_lookup_to_its_bucket_only(
        app: Any, http: Any, make_member: Any, make_client: Any, network_keys: keys.Keyring,
        server_keys_dir: Any, database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the attack reads the same traffic on either backend")
    caplog.set_level(logging.DEBUG)
    victim, reporter = make_member("Victim Pay"), make_member("Reporter Bank")
    candidates = _candidates()
    secret = candidates[random.Random(7).randrange(CANDIDATES)]
    network_key = network_keys.current.secret
    # Some of the candidates are reported, so buckets are not empty.
    reporter_client, _ = make_client(reporter)
    reporter_client.register_many([ReportInput("phone", number, "card_theft")
                                   for number in candidates[:100] if _valid(number)][:20])

    # Before (protocol v1): the captured token identifies the number at once.
    v1_traffic = Traffic()
    v1_traffic.send(http, victim, "POST", "/v1/lookups", {"items": [
        {"type": "phone", "key_version": 1,
         "token": tokens.encode_token(_token(network_key, secret))}]})
    seen = _b64(json.loads(v1_traffic.requests[0][2])["items"][0]["token"])
    assert [c for c in candidates if hmac.compare_digest(_token(network_key, c), seen)] \
        == [secret]

    # After (v2 online): everything the server received.
    traffic = Traffic()
    revealed = _online_lookup(http, victim, traffic, _token(network_key, secret))
    evaluation, bucket_request = (json.loads(body) for _, _, body in traffic.requests)
    blinded = _b64(evaluation["items"][0]["blinded"])
    prefix_bits = bucket_request["prefix_bits"]
    assert bucket_request["prefixes"] == [revealed]

    # The attacker evaluates every candidate itself (it holds the OPRF key).
    server = load_server_keys(server_keys_dir)
    oprf = server.oprf_keys[1]
    remaining = []
    for number in candidates:
        token = _token(network_key, number)
        entry = pl.derive_entry(oprf.evaluate(token), "exact")
        if pl.bucket_prefix(entry.entry_id, prefix_bits) == revealed:
            remaining.append(number)
    # The bucket holds the secret and about candidates / 2^bits others: a binomial
    # count, here 100,000 / 65,536 = 1.5 on average; 12 would be a 1-in-10^8 event.
    assert secret in remaining
    assert 1 <= len(remaining) <= 12
    assert PHONE_SPACE >> prefix_bits >= 1_000  # the whole mobile space: >= 1,000 per bucket

    # Nothing else narrows it: the blinded element is a fresh random group element,
    # unrelated to any candidate's hash or evaluation, and differs on every look-up.
    again = Traffic()
    _online_lookup(http, victim, again, _token(network_key, secret))
    assert _b64(json.loads(again.requests[0][2])["items"][0]["blinded"]) != blinded
    for number in remaining:  # neither H(token) nor skS * H(token) of any candidate
        element = _input_element(_token(network_key, number))
        assert blinded not in (element, oprf.blind_evaluate(element))
    # The server's logs hold neither the prefix's identifier nor the blinded element.
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret_form in (secret, tokens.encode_token(_token(network_key, secret)),
                        b64url(blinded)):
        assert secret_form not in logged

    # With the replica the requests do not depend on the identifier at all.
    first, second = Traffic(), Traffic()
    _replica_lookup(http, victim, first, _token(network_key, secret))
    _replica_lookup(http, victim, second, _token(network_key, candidates[0]))
    shape = [(m, p, len(b)) for m, p, b in first.requests]
    assert shape == [(m, p, len(b)) for m, p, b in second.requests]
    assert first.requests[1] == second.requests[1]  # the same replica request
