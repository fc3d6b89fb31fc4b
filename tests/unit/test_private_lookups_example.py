"""The worked example of docs/private-lookups.md, checked byte for byte.

Every ``<!-- example:NAME -->`` block of the page is recomputed twice: with the
project's code (``keys`` OPRF, ``clue_client.private_lookups``) and from scratch with
hashlib, hmac, ``cryptography`` and libsodium's ristretto255 called directly, so the
page doubles as a spec for clients in other languages and cannot drift from the code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import struct
from pathlib import Path

import pysodium
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import keys
from clue_client import canonical, protocol, tokens
from clue_client.private_lookups import entries
from clue_client.private_lookups.entries import Answer, derive_entry, open_answer, seal_answer
from clue_client.private_lookups.replica import Delta, encode_delta, parse_delta
from keys import _oprf

DOC = Path(__file__).resolve().parents[2] / "docs" / "private-lookups.md"
_BLOCK = re.compile(r"<!-- example:([a-z0-9-]+) -->\n```[a-z]*\n(.*?)\n```", re.DOTALL)

NETWORK_KEY = bytes(range(32))
SERVER_SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(0x21, 0x41)))
NONCE = bytes(range(12))
ISSUED_AT = 1700000002
PREFIX_BITS = 16
ANSWER = Answer(("card_theft",), 2, dt.date(2023, 11, 1), dt.date(2023, 11, 14), False)


@pytest.fixture(scope="module")
def blocks() -> dict[str, str]:
    found: dict[str, str] = {}
    for name, body in _BLOCK.findall(DOC.read_text(encoding="utf-8")):
        assert name not in found, f"example block {name!r} appears twice"
        found[name] = body
    return found


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def test_every_value_with_the_projects_code(blocks: dict[str, str]) -> None:
    seed = bytes.fromhex(blocks["oprf-seed-hex"])
    assert seed == bytes(range(96, 128))
    key = keys.OprfKey.derive(seed, blocks["oprf-key-info"].encode())
    assert key.private_bytes().hex() == blocks["oprf-sk-hex"]

    token = tokens.derive_token(NETWORK_KEY, "phone", canonical.canonicalize("phone",
                                                                             "090-1234-5678"))
    assert token.hex() == blocks["oprf-input-hex"] == entries.oprf_input(token).hex()
    state = _oprf._blind_with(token, bytes.fromhex(blocks["blind-hex"]))
    assert blocks["evaluations-request"] == _compact(
        {"oprf_version": 1, "items": [{"type": "phone",
                                       "blinded": protocol.b64url(state.blinded_element)}]})
    evaluated = key.blind_evaluate(state.blinded_element)
    assert blocks["evaluations-response"] == _compact(
        {"oprf_version": 1, "prefix_bits": PREFIX_BITS,
         "evaluated": [protocol.b64url(evaluated)]})
    output = keys.oprf_finalize(state, evaluated)
    assert output.hex() == blocks["oprf-output-hex"] == key.evaluate(token).hex()

    entry = derive_entry(output, "exact")
    assert entry.entry_id.hex() == blocks["entry-id-hex"]
    assert entry.key.hex() == blocks["entry-key-hex"]
    prefix = entries.bucket_prefix(entry.entry_id, PREFIX_BITS)
    assert str(prefix) == blocks["bucket-prefix-16"]
    assert ANSWER.to_bytes().hex() == blocks["answer-hex"]
    sealed = seal_answer(entry, 1, ANSWER, nonce=NONCE)
    assert sealed.hex() == blocks["sealed-hex"]
    assert open_answer(entry, 1, sealed) == ANSWER

    assert blocks["buckets-request"] == _compact(
        {"oprf_version": 1, "prefix_bits": PREFIX_BITS, "prefixes": [prefix]})
    assert blocks["buckets-response"] == _compact(
        {"oprf_version": 1, "prefix_bits": PREFIX_BITS, "cursor": 1,
         "buckets": [{"prefix": prefix, "entries": protocol.b64url(entry.entry_id + sealed),
                      "mine": []}]})

    exact_token = tokens.derive_token(NETWORK_KEY, "email", canonical.canonicalize(
        "email", "J.Doe+Shop@GoogleMail.com"))
    folded_token = tokens.derive_token(NETWORK_KEY, "email", "jdoe@gmail.com")
    folded_state = keys.oprf_blind(folded_token)
    y_folded = keys.oprf_finalize(folded_state, key.blind_evaluate(folded_state.blinded_element))
    assert y_folded.hex() == blocks["email-folded-output-hex"] == key.evaluate(folded_token).hex()
    exact_entry, folded_entry = entries.derive_email_entries(y_folded, exact_token)
    assert folded_entry.entry_id.hex() == blocks["email-folded-entry-id-hex"]
    assert exact_entry.entry_id.hex() == blocks["email-exact-entry-id-hex"]
    assert str(entries.bucket_prefix(folded_entry.entry_id, PREFIX_BITS)) \
        == blocks["email-bucket-prefix-16"]

    key_id = protocol.server_key_id(SERVER_SIGNING_KEY.public_key())
    delta = Delta(1, 0, 1, ISSUED_AT, False, ((entry.entry_id, sealed),), ())
    data = encode_delta(delta, SERVER_SIGNING_KEY, key_id)
    assert data.hex() == blocks["replica-delta-hex"]
    assert parse_delta(data, {key_id: SERVER_SIGNING_KEY.public_key()}) == delta


# -- from scratch: the RFCs' definitions, libsodium called directly --------------------------

CONTEXT = b"OPRFV1-\x00-ristretto255-SHA512"


def _xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    dst_prime = dst + bytes([len(dst)])
    b0 = hashlib.sha512(bytes(128) + msg + length.to_bytes(2, "big") + b"\x00"
                        + dst_prime).digest()
    out, previous = b"", bytes(64)
    for i in range(1, -(-length // 64) + 1):
        previous = hashlib.sha512(bytes(a ^ b for a, b in zip(b0, previous, strict=True))
                                  + bytes([i]) + dst_prime).digest()
        out += previous
    return out[:length]


def test_every_value_from_scratch(blocks: dict[str, str]) -> None:
    seed = bytes.fromhex(blocks["oprf-seed-hex"])
    info = blocks["oprf-key-info"].encode()
    # DeriveKeyPair: counter 0 gives a non-zero scalar here.
    derive_input = seed + len(info).to_bytes(2, "big") + info + b"\x00"
    sk = pysodium.crypto_core_ristretto255_scalar_reduce(
        _xmd(derive_input, b"DeriveKeyPair" + CONTEXT, 64))
    assert sk.hex() == blocks["oprf-sk-hex"]

    token = hmac.digest(NETWORK_KEY, b"clue/v1\x00phone\x00+819012345678", hashlib.sha256)
    assert token.hex() == blocks["oprf-input-hex"]
    point = pysodium.crypto_core_ristretto255_from_hash(
        _xmd(token, b"HashToGroup-" + CONTEXT, 64))
    blind = bytes.fromhex(blocks["blind-hex"])
    blinded = pysodium.crypto_scalarmult_ristretto255(blind, point)
    assert json.loads(blocks["evaluations-request"])["items"][0]["blinded"] \
        == protocol.b64url(blinded)
    evaluated = pysodium.crypto_scalarmult_ristretto255(sk, blinded)
    assert json.loads(blocks["evaluations-response"])["evaluated"] == [protocol.b64url(evaluated)]
    unblinded = pysodium.crypto_scalarmult_ristretto255(
        pysodium.crypto_core_ristretto255_scalar_invert(blind), evaluated)
    output = hashlib.sha512(b"\x00\x20" + token + b"\x00\x20" + unblinded + b"Finalize").digest()
    assert output.hex() == blocks["oprf-output-hex"]

    entry_id = hmac.digest(output, b"clue/v2 entry-id\x00exact\x01", hashlib.sha256)[:16]
    entry_key = hmac.digest(output, b"clue/v2 entry-key\x00exact\x01", hashlib.sha256)
    assert entry_id.hex() == blocks["entry-id-hex"] and entry_key.hex() == blocks["entry-key-hex"]
    assert int.from_bytes(entry_id[:2], "big") == int(blocks["bucket-prefix-16"])

    days = [(d - dt.date(1970, 1, 1)).days for d in (dt.date(2023, 11, 1), dt.date(2023, 11, 14))]
    answer = struct.pack(">BHHHHB", 1, 0b1, 2, days[0], days[1], 0)  # bit 0: card_theft
    assert answer.hex() == blocks["answer-hex"]
    aad = b"clue/v2 entry\x00" + (1).to_bytes(4, "big") + entry_id
    sealed = NONCE + AESGCM(entry_key).encrypt(NONCE, answer, aad)
    assert sealed.hex() == blocks["sealed-hex"]

    # The e-mail: one evaluation, of the folded token; the exact token bound by HKDF.
    folded_token = hmac.digest(NETWORK_KEY, b"clue/v1\x00email\x00jdoe@gmail.com", hashlib.sha256)
    exact_token = hmac.digest(NETWORK_KEY, b"clue/v1\x00email\x00j.doe+shop@googlemail.com",
                              hashlib.sha256)
    folded_point = pysodium.crypto_core_ristretto255_from_hash(
        _xmd(folded_token, b"HashToGroup-" + CONTEXT, 64))
    y_folded = hashlib.sha512(b"\x00\x20" + folded_token + b"\x00\x20"
                              + pysodium.crypto_scalarmult_ristretto255(sk, folded_point)
                              + b"Finalize").digest()
    assert y_folded.hex() == blocks["email-folded-output-hex"]
    folded_id = hmac.digest(y_folded, b"clue/v2 entry-id\x00folded\x01", hashlib.sha256)[:16]
    exact_id = hmac.digest(y_folded, b"clue/v2 entry-id\x00exact\x00" + exact_token + b"\x01",
                           hashlib.sha256)[:16]
    assert folded_id.hex() == blocks["email-folded-entry-id-hex"]
    assert exact_id.hex() == blocks["email-exact-entry-id-hex"]
    assert int.from_bytes(folded_id[:2], "big") == int(blocks["email-bucket-prefix-16"])

    data = bytes.fromhex(blocks["replica-delta-hex"])
    key_id = b"server-k-c945cbf2a5602002"
    body = (b"CLUERD" + bytes([1, 0]) + struct.pack(">IQQQI", 1, 0, 1, ISSUED_AT, 1)
            + bytes([len(key_id)]) + key_id + b"\x01" + entry_id + sealed)
    assert data[:-64] == body and len(data) == 185
    SERVER_SIGNING_KEY.public_key().verify(data[-64:], b"clue/v2 replica delta\x00" + body)
