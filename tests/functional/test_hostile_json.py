"""Issue 10, items 6 and 7: request bodies are strict UTF-8 JSON, and hostile values get a
clear 4xx, never a 500, with nothing stored.

Every request here is correctly signed, so what is tested is what happens behind the
signature check. Each test runs on SQLite and on PostgreSQL (the ``app`` fixture).
"""

from __future__ import annotations

import json
import os
import timeit
from collections.abc import Callable
from typing import Any

import pytest
from flask import Request
from sqlalchemy import func, select
from werkzeug.test import EnvironBuilder

import keys
from clue_client import keyshare
from clue_client.protocol import b64url
from clue_client.tokens import encode_token
from clue_server import db, errors
from clue_server.disputes import services as disputes
from clue_server.models import Base
from clue_server.validation import json_body
from tests.helpers import Creds, signed

REASON = "The customer says the number was issued to them in March."


def _token() -> str:
    return encode_token(os.urandom(32))


def _lookup() -> dict[str, Any]:
    return {"items": [{"type": "phone", "key_version": 1, "token": _token()}]}


def _report() -> dict[str, Any]:
    return {"reports": [{"type": "phone", "key_version": 1, "token": _token(),
                         "category": "card_theft"}]}


def _dispute() -> dict[str, Any]:
    return {"type": "phone", "key_version": 1, "token": _token(), "reason": REASON}


def _key() -> dict[str, Any]:
    return {"public_key": b64url(os.urandom(32))}


#: Every endpoint that reads a JSON body, with a body it would accept.
ENDPOINTS: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
    ("POST", "/v1/lookups", _lookup),
    ("POST", "/v1/reports", _report),
    ("POST", "/v1/disputes", _dispute),
    ("POST", "/v1/disputes/d_0000000000000000/answer",
     lambda: {"answer": "uphold", "reason": REASON}),
    ("POST", "/v1/network-keys/1/envelopes",
     lambda: {"envelopes": [{"recipient": "m_000000000000", "envelope": "AAAA",
                             "signature": "A" * 86}]}),
    ("PUT", "/v1/members/me/hpke-key", _key),
    ("POST", "/v1/members/me/keys", _key),
]


def _rows(app: Any) -> dict[str, int]:
    """How many rows each table holds (the replay-nonce table aside)."""
    with db.session_scope(app) as session:
        return {table.name: int(session.scalar(select(func.count()).select_from(table)) or 0)
                for table in Base.metadata.sorted_tables if table.name != "seen_nonces"}


def _invalid_json(response: Any, says: str) -> dict[str, Any]:
    assert response.status_code == 400, response.get_data()[:300]
    assert response.mimetype == "application/problem+json"
    response.get_data().decode("utf-8")  # the problem itself is valid UTF-8
    problem = response.get_json()
    assert problem["type"] == "urn:clue:problem:invalid-json"
    assert says in problem["detail"], problem["detail"]
    return problem


@pytest.fixture
def member(make_member: Callable[..., Creds]) -> Creds:
    return make_member()


# -- item 6: UTF-8 only ------------------------------------------------------------------


ENCODINGS = [
    ("UTF-8 with a byte order mark", "utf-8-sig", "byte order mark"),
    ("UTF-16 with a byte order mark", "utf-16", "UTF-16 or UTF-32"),
    ("UTF-16LE", "utf-16-le", "UTF-16 or UTF-32"),
    ("UTF-16BE", "utf-16-be", "UTF-16 or UTF-32"),
    ("UTF-32 with a byte order mark", "utf-32", "UTF-16 or UTF-32"),
    ("UTF-32LE", "utf-32-le", "UTF-16 or UTF-32"),
    ("UTF-32BE", "utf-32-be", "UTF-16 or UTF-32"),
    ("Latin-1", "latin-1", "not valid UTF-8"),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS,
                         ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_a_body_in_anything_but_utf8_is_refused(app, http, member, method, path, body):
    before = _rows(app)
    for name, encoding, says in ENCODINGS:
        # A non-ASCII value so that Latin-1 differs from UTF-8.
        text = json.dumps({**body(), "note": "é"}, ensure_ascii=False)
        response = signed(http, member, method, path, raw=text.encode(encoding))
        assert response.status_code == 400, name
        _invalid_json(response, says)
    # CESU-8 / "UTF-8" with an encoded surrogate: Python's strict codec refuses it.
    raw = b'{"items": [], "x": "\xed\xa0\x80"}'
    _invalid_json(signed(http, member, method, path, raw=raw), "not valid UTF-8")
    assert _rows(app) == before


# -- item 6: no key twice ------------------------------------------------------------------


def test_a_key_repeated_in_one_object_is_refused_and_nothing_stored(app, http, member):
    before = _rows(app)
    one, two = _token(), _token()
    cases = [
        ("/v1/lookups", '{"items": [], "items": [{"type": "phone", "key_version": 1, '
                        f'"token": "{one}"}}]}}'),
        ("/v1/lookups", '{"items": [{"type": "phone", "key_version": 1, '
                        f'"token": "{one}", "token": "{two}"}}]}}'),
        ("/v1/reports", '{"reports": [{"type": "phone", "key_version": 1, "token": '
                        f'"{one}", "category": "other", "category": "card_theft"}}]}}'),
        ("/v1/disputes", f'{{"type": "phone", "key_version": 1, "token": "{one}", '
                         '"reason": "harmless", "reason": "x"}'),
    ]
    for path, raw in cases:
        problem = _invalid_json(signed(http, member, "POST", path, raw=raw.encode()),
                                "repeats the key")
        assert problem["detail"].split("'")[1] in {"items", "token", "category", "reason"}
    assert _rows(app) == before
    # The same key in two different objects is of course fine.
    body = {"items": [{"type": "phone", "key_version": 1, "token": t} for t in (one, two)]}
    assert signed(http, member, "POST", "/v1/lookups", body).status_code == 200


# -- item 7: hostile values -----------------------------------------------------------------


@pytest.mark.parametrize(("path", "template"), [
    ("/v1/lookups", '{{"items": [{{"type": "phone", "key_version": {n}, "token": "{t}"}}]}}'),
    ("/v1/reports", '{{"reports": [{{"type": "phone", "key_version": {n}, "token": "{t}", '
                    '"category": "other"}}]}}'),
    ("/v1/disputes", '{{"type": "phone", "key_version": {n}, "token": "{t}", '
                     '"reason": "harmless"}}'),
    ("/v1/reports", '{{"reports": [{{"type": "phone", "key_version": 1, "token": "{t}", '
                    '"category": "other", "expires_in_days": {n}}}]}}'),
], ids=["lookup key_version", "report key_version", "dispute key_version",
        "report expires_in_days"])
def test_an_integer_of_5000_digits_is_400_and_of_4000_digits_is_out_of_range(
        app, http, member, path, template):
    before = _rows(app)
    huge = template.format(n="9" * 5000, t=_token()).encode()
    _invalid_json(signed(http, member, "POST", path, raw=huge), "more digits")
    large = signed(http, member, "POST", path, raw=template.format(n="9" * 4000,
                                                                   t=_token()).encode())
    assert large.status_code == 422, large.get_data()[:300]
    assert "9999999999" not in large.get_data(as_text=True)  # not echoed
    assert _rows(app) == before


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS,
                         ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_a_lone_surrogate_anywhere_is_400(app, http, member, method, path, body):
    before = _rows(app)
    good = json.dumps(body())
    # As a field name, at the top and inside an item, and as a value.
    for raw in (good[:-1] + ', "\\ud800": 1}', good[:-1] + ', "x\\udfffy": 1}',
                good.replace('"', '"\\udc00', 1), good[:-1] + ', "v": "\\ud83d"}'):
        _invalid_json(signed(http, member, method, path, raw=raw.encode()), "lone UTF-16")
    assert _rows(app) == before


def test_surrogates_in_a_dispute_reason(app, http, member, make_member, make_client):
    reporter, _ = make_client(make_member("Reporter Pay"))
    reporter.register("phone", "090-1234-5678", "card_theft")
    before = _rows(app)
    for reason in ('"\\ud800 was given to them"', '"\\udfff"', '"ok \\udbff\\u0041"'):
        raw = f'{{"type": "phone", "key_version": 1, "token": "{_token()}", "reason": {reason}}}'
        _invalid_json(signed(http, member, "POST", "/v1/disputes", raw=raw.encode()),
                      "lone UTF-16")
    assert _rows(app) == before
    # The service refuses one too, whatever called it (defence in depth: 422).
    with pytest.raises(errors.ValidationFailed, match="no lone surrogates"):
        disputes.parse_open_body({**_dispute(), "reason": "bad \ud800"})
    # A valid pair written as escapes (an emoji) is a reason like any other, and so is a
    # backslash followed by "ud800" (an escaped backslash, not an escape).
    filer, _ = make_client(member)
    assert filer.open_dispute("phone", "090-1234-5678", "They say \U0001f600").reports == 1
    raw = (f'{{"type": "phone", "key_version": 1, "token": "{_token()}", '
           '"reason": "literal \\\\ud800 and \\ud83d\\ude00"}')
    assert signed(http, member, "POST", "/v1/disputes", raw=raw.encode()).status_code == 404


def test_a_nul_in_an_envelope_recipient_is_422_and_nothing_stored(app, http, member):
    before = _rows(app)
    key = keys.new_symmetric_key("network", 1)
    hpke = keys.generate_hpke_key()
    for recipient in ("m_\x00", "\x00" * 14, "m_000000000000\x00", "m_" + "9" * 200, "é"):
        envelope, signature = keyshare.seal(key, recipient, hpke.public_key(),
                                            member.signing_key)
        body = {"envelopes": [{"recipient": recipient, "envelope": b64url(envelope),
                               "signature": b64url(signature)}]}
        response = signed(http, member, "POST", "/v1/network-keys/1/envelopes", body)
        assert response.status_code == 422, (recipient, response.get_data()[:300])
        assert response.get_json()["field"] == "recipient"
    assert _rows(app) == before


def test_a_problem_whose_detail_holds_a_lone_surrogate_is_still_utf8():
    response = errors.problem_response(errors.BadRequest("unknown field \ud800"))
    body = response.get_data().decode("utf-8")
    assert json.loads(body)["detail"] == "unknown field ?"


# -- item 6: and it stays cheap ------------------------------------------------------------


def test_strict_json_costs_microseconds():
    """The strict reading is on the hot path of every look-up: a 100-item body must cost
    microseconds more than plain ``json.loads``, not milliseconds."""
    body = json.dumps({"items": [{"type": "email", "key_version": 1, "token": _token(),
                                  "folded_token": _token()} for _ in range(100)]}).encode()
    request = Request(EnvironBuilder(method="POST", data=body,
                                     content_type="application/json").get_environ())
    request.get_data(cache=True)
    assert json_body(request) == json.loads(body)
    # Interleaved and the best of many runs, so that a busy machine slows both alike;
    # about 1.6 times json.loads here (+34 us), never milliseconds more.
    plain, strict = float("inf"), float("inf")
    for _ in range(15):
        plain = min(plain, timeit.timeit(lambda: json.loads(body), number=20) / 20)
        strict = min(strict, timeit.timeit(lambda: json_body(request), number=20) / 20)
    assert strict < 4 * plain, f"{strict / plain:.1f} times json.loads"
    assert strict - plain < 0.005, f"{(strict - plain) * 1e6:.0f} us more than json.loads"
