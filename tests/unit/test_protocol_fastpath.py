"""The fast path for CLUE's fixed RFC 9421 profile, cross-checked against the library.

``clue_client.protocol`` builds and checks the signature base of CLUE's own messages
directly and leaves everything else to ``http-message-signatures``. Both must agree,
both ways: whatever one signs the other verifies, and every tampered variant is
refused by both.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)
from http_message_signatures.exceptions import HTTPMessageSignaturesException
from hypothesis import given, settings
from hypothesis import strategies as st

from clue_client import protocol

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
KEY_ID = "k-0123456789abcdef"
SERVER_ID = "server-k-fedcba9876543210"
URL = "https://clue.example/v1/lookups"
BODY = b'{"items":[{"type":"phone","key_version":1,"token":"' + b"A" * 43 + b'"}]}'


def _request(method: str = "POST", url: str = URL, body: bytes = BODY,
             headers: dict[str, str] | None = None) -> protocol.Message:
    base = {"Content-Type": "application/json"} if body else {}
    return protocol.Message(method=method, url=url, headers={**base, **(headers or {})})


def _fast_sign(message: protocol.Message, body: bytes, **options: Any) -> str:
    return protocol.sign_request(message, body, key_id=KEY_ID, private_key=KEY, **options)


def _library_sign(message: protocol.Message, body: bytes, *, nonce: str = "n" * 24,
                  include_alg: bool = True, expires: dt.datetime | None = None) -> str:
    fields = protocol.header_fields(message.headers)
    covered = [c for c in protocol.request_components(fields) if c != "content-digest"]
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519,
                               key_resolver=MappingKeyResolver(public_keys={},
                                                               private_keys={KEY_ID: KEY}))
    signer.sign(message.as_request(), key_id=KEY_ID, created=dt.datetime.now(dt.UTC),
                nonce=nonce, label="clue", covered_component_ids=covered, body=body,
                include_alg=include_alg, expires=expires)
    return nonce


def _fast_verify(message: protocol.Message, body: bytes) -> protocol.SignedBy:
    return protocol.verify_request(message.as_request(), body, public_key=KEY.public_key(),
                                   key_id=KEY_ID)


def _library_verify(message: protocol.Message, body: bytes) -> None:
    fields = protocol.header_fields(message.headers)
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519,
                                   key_resolver=MappingKeyResolver(
                                       public_keys={KEY_ID: KEY.public_key()}, private_keys={}))
    verifier.max_clock_skew = dt.timedelta(seconds=protocol.MAX_CLOCK_SKEW)
    verifier.verify(message.as_request(), max_age=None,
                    require_components=protocol.request_components(fields), body=body)


def test_fast_signatures_verify_with_the_library_and_take_the_fast_path() -> None:
    for headers in ({}, {"Idempotency-Key": "import-2026-11-30-batch-7"}):
        message = _request(headers=headers)
        _fast_sign(message, BODY)
        _library_verify(message, BODY)
        assert protocol.parse_signature(message.headers).fast
        assert _fast_verify(message, BODY).key_id == KEY_ID
    get = _request("GET", "https://clue.example:8443/v1/reports?limit=100&after=r_1", b"")
    _fast_sign(get, b"")
    assert '"content-type"' not in get.headers["Signature-Input"]
    _library_verify(get, b"")
    _fast_verify(get, b"")


def test_library_signatures_verify_on_the_fast_path() -> None:
    for headers in ({}, {"Idempotency-Key": "k1"}):
        message = _request(headers=headers)
        nonce = _library_sign(message, BODY)
        parsed = protocol.parse_signature(message.headers)
        assert parsed.fast, message.headers["Signature-Input"]
        assert _fast_verify(message, BODY).nonce == nonce


def test_other_serialisations_take_the_library_and_still_verify() -> None:
    # No "alg" parameter, or an "expires": valid RFC 9421 that CLUE itself never sends.
    for options in ({"include_alg": False},
                    {"expires": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)}):
        message = _request()
        _library_sign(message, BODY, **options)
        assert not protocol.parse_signature(message.headers).fast
        _fast_verify(message, BODY)


def _tamper_cases() -> dict[str, Callable[[protocol.Message], bytes]]:
    def header(name: str, value: str | None) -> Callable[[protocol.Message], bytes]:
        def change(message: protocol.Message) -> bytes:
            for key in [k for k in message.headers if k.lower() == name.lower()]:
                del message.headers[key]
            if value is not None:
                message.headers[name] = value
            return BODY
        return change

    def attribute(name: str, value: str) -> Callable[[protocol.Message], bytes]:
        def change(message: protocol.Message) -> bytes:
            setattr(message, name, value)
            return BODY
        return change

    def params(pattern: str, replacement: str) -> Callable[[protocol.Message], bytes]:
        def change(message: protocol.Message) -> bytes:
            message.headers["Signature-Input"] = re.sub(pattern, replacement,
                                                        message.headers["Signature-Input"])
            return BODY
        return change

    def flip_signature(message: protocol.Message) -> bytes:
        raw = bytearray(base64.b64decode(message.headers["Signature"][6:-1]))
        raw[10] ^= 1
        message.headers["Signature"] = f"clue=:{base64.b64encode(bytes(raw)).decode()}:"
        return BODY

    def other_key(message: protocol.Message) -> bytes:
        protocol.sign_request(message, BODY, key_id=KEY_ID, private_key=OTHER,
                              nonce="x" * 24)
        return BODY

    def swap_body(_message: protocol.Message) -> bytes:
        return BODY.replace(b"AAAA", b"AAAB")

    def swap_body_and_digest(message: protocol.Message) -> bytes:
        body = BODY.replace(b"AAAA", b"AAAB")
        message.headers["Content-Digest"] = protocol.content_digest(body)
        return body

    return {
        "method": attribute("method", "PUT"),
        "path": attribute("url", URL.replace("lookups", "reports")),
        "query added": attribute("url", URL + "?x=1"),
        "host": attribute("url", URL.replace("clue.example", "evil.example")),
        "scheme": attribute("url", URL.replace("https", "http")),
        "body": swap_body,
        "body and digest": swap_body_and_digest,
        "content-type changed": header("Content-Type", "text/plain"),
        "idempotency-key added": header("Idempotency-Key", "someone-elses-key"),
        "created": params(r"created=(\d+)", lambda m: f"created={int(m[1]) - 1}"),
        "nonce": params(r'nonce="[^"]+"', 'nonce="' + "z" * 24 + '"'),
        "component dropped": params(r' "content-type"', ""),
        "components reordered": params(r'"@method" "@target-uri"', '"@target-uri" "@method"'),
        "label": params(r"^clue=", "other="),
        "signature bit": flip_signature,
        "another key": other_key,
    }


@pytest.mark.parametrize("case", sorted(_tamper_cases()))
@pytest.mark.parametrize("signed_by", ["fast", "library"])
def test_every_tampered_variant_is_refused_by_both(case: str, signed_by: str) -> None:
    message = _request()
    (_fast_sign if signed_by == "fast" else _library_sign)(message, BODY)
    body = _tamper_cases()[case](message)
    with pytest.raises(protocol.SignatureError):
        _fast_verify(message, body)
    with pytest.raises((InvalidSignature, HTTPMessageSignaturesException)):
        _library_verify(message, body)


def test_an_uncovered_idempotency_key_is_refused() -> None:
    message = _request()
    _fast_sign(message, BODY)
    message.headers["Idempotency-Key"] = "k1"  # attached after signing
    with pytest.raises(protocol.SignatureError, match="idempotency-key"):
        _fast_verify(message, BODY)


SERVER = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))


def test_responses_cross_check_both_ways() -> None:
    request = _request()
    nonce = _fast_sign(request, BODY)
    answer = b'{"results":[]}\n'
    # Fast signer -> library verifier.
    headers: dict[str, str] = {"Content-Type": "application/json"}
    protocol.sign_response(200, headers, answer, request.as_request(), key_id=SERVER_ID,
                           private_key=SERVER, nonce=nonce)
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519,
                                   key_resolver=MappingKeyResolver(
                                       public_keys={SERVER_ID: SERVER.public_key()},
                                       private_keys={}))
    response = protocol._Response(200, headers, request.as_request())
    verifier.verify(response, max_age=None, body=answer,
                    require_components=protocol.RESPONSE_COMPONENTS)
    protocol.verify_response(200, headers, answer, request.as_request(),
                             public_key=SERVER.public_key(), key_id=SERVER_ID, nonce=nonce)
    assert protocol.parse_signature(headers).fast
    # Library signer -> fast verifier.
    library_headers: dict[str, str] = {"Content-Type": "application/json"}
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519,
                               key_resolver=MappingKeyResolver(public_keys={},
                                                               private_keys={SERVER_ID: SERVER}))
    signer.sign(protocol._Response(200, library_headers, request.as_request()),
                key_id=SERVER_ID, created=dt.datetime.now(dt.UTC), nonce=nonce, label="clue",
                covered_component_ids=protocol.RESPONSE_COMPONENTS[:-1], body=answer)
    assert protocol.parse_signature(library_headers).fast
    protocol.verify_response(200, library_headers, answer, request.as_request(),
                             public_key=SERVER.public_key(), key_id=SERVER_ID, nonce=nonce)
    # Tampered: status, body, request URI, nonce.
    for status, body, url, expected in ((201, answer, URL, nonce), (200, b"{}", URL, nonce),
                                        (200, answer, URL + "?x", nonce),
                                        (200, answer, URL, "y" * 24)):
        other = _request(url=url).as_request()
        with pytest.raises(protocol.SignatureError):
            protocol.verify_response(status, dict(headers), body, other,
                                     public_key=SERVER.public_key(), key_id=SERVER_ID,
                                     nonce=expected)
        if expected != nonce:
            continue  # the library leaves the nonce to its caller
        with pytest.raises((InvalidSignature, HTTPMessageSignaturesException)):
            verifier.verify(protocol._Response(status, dict(headers), other), max_age=None,
                            body=body, require_components=protocol.RESPONSE_COMPONENTS)


def test_a_response_to_a_malformed_request_is_still_signed() -> None:
    for url in ("http://clue_server/v1/ping?a|b", "http://h/v1/\u00e9", "", "http://[::1/v1"):
        headers: dict[str, str] = {}
        bad = protocol.Message(method="GET", url=url).as_request()
        protocol.sign_response(400, headers, b"{}", bad, key_id=SERVER_ID, private_key=SERVER,
                               nonce=None)
        assert headers["Signature"].startswith("clue=:")


_PATH = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~%2F", min_size=0, max_size=20)


@settings(max_examples=150, deadline=None)
@given(path=_PATH, query=st.none() | _PATH, body=st.binary(max_size=300),
       key=st.none() | st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126),
                               min_size=1, max_size=40),
       fast_signs=st.booleans())
def test_fast_and_library_agree_on_arbitrary_requests(path: str, query: str | None,
                                                      body: bytes, key: str | None,
                                                      fast_signs: bool) -> None:
    url = f"https://clue.example:8443/v1/{path}" + (f"?{query}" if query is not None else "")
    headers = {"Idempotency-Key": key} if key else {}
    message = _request("POST", url, body, headers)
    try:
        (_fast_sign if fast_signs else _library_sign)(message, body)
    except (ValueError, HTTPMessageSignaturesException):
        return  # a URL neither side will sign (e.g. a stray '%'): nothing to compare
    _library_verify(message, body)
    _fast_verify(message, body)
