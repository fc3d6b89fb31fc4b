"""Issue 2, must hold 8: malformed, oversized and hostile input gets a precise
problem+json error, is not stored, and does not take the server down.

Every hostile request here is correctly signed, so what is tested is the input
validation behind the signature check, not the signature check itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from clue_client import protocol
from clue_client.tokens import encode_token
from clue_server import db
from clue_server.audit.models import AuditEvent
from clue_server.auth.models import IdempotencyRecord
from clue_server.errors import PROBLEM_CONTENT_TYPE
from clue_server.keystore import ServerKeys, load_server_keys
from clue_server.reports.models import Report
from tests.helpers import BASE_URL, Creds, signed

MIB = 1024 * 1024
BIG = 900_000  # a field value that fits in a 1 MiB body


def token() -> str:
    return encode_token(os.urandom(32))


def good_report(**fields: Any) -> dict[str, Any]:
    return {"type": "phone", "category": "card_theft", "key_version": 1, "token": token(),
            **fields}


def good_lookup(**fields: Any) -> dict[str, Any]:
    return {"type": "phone", "key_version": 1, "token": token(), **fields}


@dataclass(frozen=True)
class Endpoint:
    path: str
    list_field: str
    good_item: Callable[..., dict[str, Any]]
    ok_status: int

    def body(self, *items: Any) -> dict[str, Any]:
        return {self.list_field: list(items)}


REPORTS = Endpoint("/v1/reports", "reports", good_report, 201)
LOOKUPS = Endpoint("/v1/lookups", "items", good_lookup, 200)
POSTS = [pytest.param(REPORTS, id="reports"), pytest.param(LOOKUPS, id="lookups")]


@pytest.fixture
def server(server_keys_dir: Path) -> ServerKeys:
    return load_server_keys(server_keys_dir)


@pytest.fixture
def creds(make_member: Callable[..., Creds]) -> Creds:
    return make_member()


def stored(app: Any) -> tuple[int, int, int]:
    """Rows that a write would leave behind: reports, audit events, idempotency records."""
    with db.session_scope(app) as session:
        return tuple(session.scalar(select(func.count()).select_from(model))  # type: ignore[return-value]
                     for model in (Report, AuditEvent, IdempotencyRecord))


def request(http: Any, creds: Creds, method: str, path: str, body: Any = None, *,
            raw: bytes | None = None, server: ServerKeys,
            headers: dict[str, str] | None = None) -> Any:
    """Send a correctly signed request; check its answer is signed for this request."""
    nonce = protocol.new_nonce()
    response = signed(http, creds, method, path, body, raw=raw, headers=headers, nonce=nonce)
    protocol.verify_response(response.status_code, dict(response.headers.items()),
                             response.get_data(),
                             protocol.Message(method=method, url=BASE_URL + path).as_request(),
                             public_key=server.public_key, key_id=server.signing_key_id,
                             nonce=nonce)
    return response


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.headers["Content-Type"] == PROBLEM_CONTENT_TYPE
    problem = response.get_json(force=True)
    assert problem["type"] == f"urn:clue:problem:{slug}"
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]
    # Hostile input is never echoed back whole.
    assert len(response.get_data()) < 2000, response.get_data()[:200]
    return problem


# -- item-level problems: each names the item's index and field ----------------------------


def _non_canonical_token() -> str:
    # 32 bytes leave 2 spare bits in the last character; set one of them.
    good = token()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return good[:-1] + alphabet[alphabet.index(good[-1]) + 1]


@dataclass(frozen=True)
class ItemCase:
    name: str
    change: dict[str, Any] = field(default_factory=dict)
    drop: str | None = None
    status: int = 422
    field: str = ""
    says: str = ""
    only: Endpoint | None = None  # None: both endpoints
    id_type: str | None = None


BAD = 400, "bad-request"
ITEM_CASES = [
    ItemCase("unknown field", {"colour": "red"}, status=400, field="colour",
             says="is not a known field"),
    ItemCase("huge unknown field name", {"x" * BIG: 1}, status=400, field="x" * BIG,
             says="is not a known field"),
    ItemCase("missing type", drop="type", status=400, field="type", says="is required"),
    ItemCase("missing key_version", drop="key_version", status=400, field="key_version",
             says="is required"),
    ItemCase("missing token", drop="token", status=400, field="token", says="is required"),
    ItemCase("missing category", drop="category", status=400, field="category",
             says="is required", only=REPORTS),
    ItemCase("string key_version", {"key_version": "1"}, status=400, field="key_version",
             says="must be an integer"),
    ItemCase("bool key_version", {"key_version": True}, status=400, field="key_version",
             says="must be an integer"),
    ItemCase("float key_version", {"key_version": 1.0}, status=400, field="key_version",
             says="must be an integer"),
    ItemCase("null key_version", {"key_version": None}, status=400, field="key_version",
             says="must be an integer"),
    ItemCase("zero key_version", {"key_version": 0}, field="key_version", says="between"),
    ItemCase("huge key_version", {"key_version": 10 ** 40}, field="key_version",
             says="between"),
    ItemCase("token too short", {"token": token()[:-1]}, field="token", says="got 42"),
    ItemCase("token too long", {"token": token() + "A"}, field="token", says="got 44"),
    ItemCase("token with padding", {"token": token() + "="}, field="token", says="got 44"),
    ItemCase("token padded to length", {"token": token()[:-1] + "="}, field="token",
             says="base64url alphabet"),
    ItemCase("token with +", {"token": "+" + token()[1:]}, field="token",
             says="base64url alphabet"),
    ItemCase("token with /", {"token": token()[:-2] + "/A"}, field="token",
             says="base64url alphabet"),
    ItemCase("token non-ASCII", {"token": "é" + token()[1:]}, field="token",
             says="base64url alphabet"),
    ItemCase("token full-width", {"token": "Ａ" + token()[1:]}, field="token",
             says="base64url alphabet"),
    ItemCase("token NUL", {"token": "\x00" + token()[1:]}, field="token",
             says="base64url alphabet"),
    ItemCase("token non-canonical", {"token": _non_canonical_token()}, field="token",
             says="not canonical"),
    ItemCase("token number", {"token": 12345}, status=400, field="token",
             says="must be a string"),
    ItemCase("token list", {"token": [token()]}, status=400, field="token",
             says="must be a string"),
    ItemCase("huge token", {"token": "A" * BIG}, field="token", says=f"got {BIG}"),
    ItemCase("unknown type", {"type": "fax"}, field="type", says="'fax' is not one of"),
    ItemCase("type in upper case", {"type": "PHONE"}, field="type", says="is not one of"),
    ItemCase("huge type", {"type": "p" * BIG}, field="type", says="is not one of"),
    ItemCase("type number", {"type": 7}, status=400, field="type", says="must be a string"),
    ItemCase("type nested 500 deep", {"type": json.loads("[" * 500 + "]" * 500)}, status=400,
             field="type", says="must be a string"),
    ItemCase("unknown category", {"category": "lost_wallet"}, field="category",
             says="'lost_wallet' is not one of", only=REPORTS),
    ItemCase("huge category", {"category": "c" * BIG}, field="category",
             says="is not one of", only=REPORTS),
    ItemCase("folded_token on phone", {"folded_token": token()}, field="folded_token",
             says="only allowed for email"),
    ItemCase("folded_token on ip", {"type": "ip", "folded_token": token()},
             field="folded_token", says="only allowed for email"),
    ItemCase("bad folded_token on email", {"type": "email", "folded_token": "abc"},
             field="folded_token", says="got 3"),
    ItemCase("expires_in_days over the ip maximum", {"type": "ip", "expires_in_days": 31},
             field="expires_in_days", says="between 1 and 30", only=REPORTS),
    ItemCase("expires_in_days over the phone maximum", {"expires_in_days": 366},
             field="expires_in_days", says="between 1 and 365", only=REPORTS),
    ItemCase("expires_in_days 0", {"expires_in_days": 0}, field="expires_in_days",
             says="between 1 and", only=REPORTS),
    ItemCase("expires_in_days negative", {"expires_in_days": -5}, field="expires_in_days",
             says="between 1 and", only=REPORTS),
    ItemCase("expires_in_days string", {"expires_in_days": "30"}, status=400,
             field="expires_in_days", says="must be an integer", only=REPORTS),
    ItemCase("expires_in_days on a lookup", {"expires_in_days": 1}, status=400,
             field="expires_in_days", says="is not a known field", only=LOOKUPS),
    ItemCase("category on a lookup", {"category": "phishing"}, status=400, field="category",
             says="is not a known field", only=LOOKUPS),
]


def _bad_item(endpoint: Endpoint, case: ItemCase) -> dict[str, Any]:
    item = endpoint.good_item(**case.change)
    if case.drop:
        del item[case.drop]
    return item


@pytest.mark.parametrize("endpoint", POSTS)
def test_bad_item_names_its_index_and_field_and_stores_nothing(app, http, creds, server,
                                                               endpoint, subtests):
    before = stored(app)
    for case in ITEM_CASES:
        if case.only not in (None, endpoint):
            continue
        with subtests.test(case.name):
            # The bad item sits among good ones, so the index must be the right one.
            body = endpoint.body(endpoint.good_item(), endpoint.good_item(),
                                 _bad_item(endpoint, case), endpoint.good_item())
            response = request(http, creds, "POST", endpoint.path, body, server=server)
            problem = assert_problem(response, case.status,
                                     "bad-request" if case.status == 400 else "validation")
            assert problem["index"] == 2
            if len(case.field) <= 64:
                assert problem["field"] == case.field
            else:  # a hostile name is named by its start, not reflected whole
                assert problem["field"].startswith(case.field[:64])
                assert len(problem["field"]) < 100
            assert problem["pointer"].startswith(f"/{endpoint.list_field}/2/")
            assert problem["detail"].startswith("item 2: ")
            assert case.says in problem["detail"]
            assert stored(app) == before
    # None of it took the server down.
    response = request(http, creds, "POST", endpoint.path, endpoint.body(endpoint.good_item()),
                       server=server)
    assert response.status_code == endpoint.ok_status


@pytest.mark.parametrize("endpoint", POSTS)
def test_item_that_is_not_an_object(app, http, creds, server, endpoint):
    before = stored(app)
    for item in ("phone", 1, None, [endpoint.good_item()]):
        response = request(http, creds, "POST", endpoint.path,
                           endpoint.body(endpoint.good_item(), item), server=server)
        problem = assert_problem(response, 400, "bad-request")
        assert (problem["index"], problem["field"]) == (1, "item")
        assert problem["pointer"] == f"/{endpoint.list_field}/1/item"
    assert stored(app) == before


@pytest.mark.parametrize("endpoint", POSTS)
def test_five_good_items_and_one_bad_at_index_3_store_nothing(app, http, creds, server,
                                                              endpoint):
    before = stored(app)
    items = [endpoint.good_item() for _ in range(6)]
    items[3]["type"] = "telex"
    response = request(http, creds, "POST", endpoint.path, endpoint.body(*items), server=server)
    problem = assert_problem(response, 422, "validation")
    assert (problem["index"], problem["field"]) == (3, "type")
    assert problem["pointer"] == f"/{endpoint.list_field}/3/type"
    assert problem["detail"].startswith("item 3: type 'telex' is not one of")
    assert stored(app) == before

    # The same five good items on their own go through: the bad one alone stopped them.
    del items[3]
    response = request(http, creds, "POST", endpoint.path, endpoint.body(*items), server=server)
    assert response.status_code == endpoint.ok_status
    if endpoint is REPORTS:
        assert stored(app)[0] == before[0] + 5


def test_a_batch_is_validated_whole_before_anything_is_written(app, http, creds, server):
    """A bad last item in a full batch of 1,000 still stores nothing."""
    before = stored(app)
    items = [good_report() for _ in range(999)] + [good_report(category="nope")]
    response = request(http, creds, "POST", "/v1/reports", {"reports": items}, server=server)
    problem = assert_problem(response, 422, "validation")
    assert (problem["index"], problem["field"]) == (999, "category")
    assert stored(app) == before


# -- whole-body problems -------------------------------------------------------------------


@dataclass(frozen=True)
class BodyCase:
    name: str
    raw: Callable[[Endpoint], bytes]
    status: int
    slug: str
    pointer: str | None = None  # with {list} for the endpoint's list field
    says: str = ""


def _dump(value: Any) -> bytes:
    return json.dumps(value).encode()


def _good_body(e: Endpoint) -> bytes:
    return _dump(e.body(e.good_item()))


BODY_CASES = [
    BodyCase("empty body", lambda e: b"", 400, "invalid-json", says="not valid JSON"),
    BodyCase("truncated JSON", lambda e: _good_body(e)[:-2], 400, "invalid-json",
             says="not valid JSON"),
    BodyCase("trailing garbage", lambda e: _good_body(e) + b"x", 400, "invalid-json"),
    BodyCase("single quotes", lambda e: _good_body(e).replace(b'"', b"'"), 400, "invalid-json"),
    BodyCase("NaN", lambda e: _good_body(e).replace(b'"key_version": 1', b'"key_version": NaN'),
             400, "invalid-json", says="NaN"),
    BodyCase("Infinity", lambda e: _good_body(e).replace(b'"key_version": 1',
                                                         b'"key_version": Infinity'),
             400, "invalid-json", says="Infinity"),
    BodyCase("-Infinity", lambda e: _good_body(e).replace(b'"key_version": 1',
                                                          b'"key_version": -Infinity'),
             400, "invalid-json", says="Infinity"),
    BodyCase("not UTF-8", lambda e: b'{"' + e.list_field.encode() + b'": ["\xff\xfe"]}', 400,
             "invalid-json"),
    BodyCase("deeply nested array", lambda e: b"[" * 200_000 + b"]" * 200_000, 400,
             "invalid-json", says="nested too deeply"),
    BodyCase("deeply nested in a field",
             lambda e: _dump(e.body(e.good_item()))[:-3] + b', "x": ' + b"[" * 100_000
             + b"]" * 100_000 + b"}]}", 400, "invalid-json", says="nested too deeply"),
    BodyCase("deeply nested objects", lambda e: b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
             400, "invalid-json", says="nested too deeply"),
    BodyCase("top-level array", lambda e: _dump([e.good_item()]), 400, "bad-request",
             pointer="/", says="must be a JSON object"),
    BodyCase("top-level string", lambda e: b'"hello"', 400, "bad-request", pointer="/"),
    BodyCase("top-level null", lambda e: b"null", 400, "bad-request", pointer="/"),
    BodyCase("top-level number", lambda e: b"42", 400, "bad-request", pointer="/"),
    BodyCase("unknown top-level field",
             lambda e: _dump({**e.body(e.good_item()), "member_id": "m_other"}), 400,
             "bad-request", pointer="/member_id", says="unknown field(s): member_id"),
    BodyCase("huge unknown top-level field name",
             lambda e: _dump({**e.body(e.good_item()), "z" * BIG: 1}), 400, "bad-request",
             says="unknown field(s): zzzz"),
    BodyCase("20,000 unknown top-level fields",
             lambda e: _dump({**e.body(e.good_item()), **{f"f{i}": 0 for i in range(20_000)}}),
             400, "bad-request", pointer="/f0", says="unknown field(s): f0, f1"),
    BodyCase("missing list", lambda e: b"{}", 400, "bad-request", pointer="/{list}",
             says="missing field(s)"),
    BodyCase("the other endpoint's list", lambda e: _dump(
        {("items" if e.list_field == "reports" else "reports"): [e.good_item()]}),
        400, "bad-request", says="unknown field(s)"),
    BodyCase("list is an object", lambda e: _dump({e.list_field: e.good_item()}), 400,
             "bad-request", pointer="/{list}", says="must be an array"),
    BodyCase("list is null", lambda e: _dump({e.list_field: None}), 400, "bad-request",
             pointer="/{list}", says="must be an array"),
    BodyCase("empty list", lambda e: _dump(e.body()), 422, "validation", pointer="/{list}",
             says="must not be empty"),
    BodyCase("1,001 items", lambda e: _dump(e.body(*[e.good_item() for _ in range(1001)])),
             422, "validation", pointer="/{list}", says="1001 items; at most 1000"),
    BodyCase("100,000 items", lambda e: _dump(e.body(*[{} for _ in range(100_000)])),
             422, "validation", pointer="/{list}", says="100000 items; at most 1000"),
]


@pytest.mark.parametrize("endpoint", POSTS)
def test_malformed_body_is_refused_precisely_and_stores_nothing(app, http, creds, server,
                                                                endpoint, subtests):
    before = stored(app)
    for case in BODY_CASES:
        with subtests.test(case.name):
            raw = case.raw(endpoint)
            assert len(raw) <= MIB  # so it is the content, not the size, being refused
            response = request(http, creds, "POST", endpoint.path, raw=raw, server=server)
            problem = assert_problem(response, case.status, case.slug)
            if case.pointer is not None:
                assert problem["pointer"] == case.pointer.format(list=endpoint.list_field)
            assert case.says in problem["detail"]
            assert stored(app) == before
    response = request(http, creds, "POST", endpoint.path, endpoint.body(endpoint.good_item()),
                       server=server)
    assert response.status_code == endpoint.ok_status


CONTENT_TYPES = ["text/plain", "application/x-www-form-urlencoded", "application/json-patch+json",
                 "application/xml", "multipart/form-data; boundary=x", "", None]


@pytest.mark.parametrize("endpoint", POSTS)
def test_wrong_content_type_is_415(app, http, creds, server, endpoint, subtests):
    before = stored(app)
    body = _good_body(endpoint)
    for content_type in CONTENT_TYPES:
        with subtests.test(str(content_type)):
            headers = {} if content_type is None else {"Content-Type": content_type}
            message = protocol.Message(method="POST", url=BASE_URL + endpoint.path,
                                       headers=headers)
            nonce = protocol.sign_request(message, body, key_id=creds.key_id,
                                          private_key=creds.signing_key)
            response = http.open(endpoint.path, base_url=BASE_URL, method="POST",
                                 headers=message.headers, data=body)
            problem = assert_problem(response, 415, "unsupported-media-type")
            assert "application/json" in problem["detail"]
            assert f'nonce="{nonce}"' in response.headers["Signature-Input"]
            assert stored(app) == before
    response = request(http, creds, "POST", endpoint.path, endpoint.body(endpoint.good_item()),
                       headers={"Content-Type": "application/json; charset=utf-8"},
                       server=server)
    assert response.status_code == endpoint.ok_status


# -- size ----------------------------------------------------------------------------------


def test_body_over_1_mib_is_413_on_every_endpoint(app, http, creds, server, subtests):
    before = stored(app)
    body = _dump({"reports": [good_report() for _ in range(1000)]})
    raw = body[:-2] + b" " * (MIB + 1 - len(body)) + body[-2:]
    assert len(raw) == MIB + 1
    for method, path in (("POST", "/v1/reports"), ("POST", "/v1/lookups"),
                         ("DELETE", "/v1/reports/r_1"), ("GET", "/v1/reports")):
        with subtests.test(f"{method} {path}"):
            response = request(http, creds, method, path, raw=raw, server=server)
            problem = assert_problem(response, 413, "payload-too-large")
            assert str(MIB) in problem["detail"]
            assert stored(app) == before


@pytest.mark.parametrize("endpoint", POSTS)
def test_body_of_exactly_1_mib_is_accepted(app, http, creds, server, endpoint):
    body = _good_body(endpoint)
    raw = body[:-1] + b" " * (MIB - len(body)) + body[-1:]
    assert len(raw) == MIB
    response = request(http, creds, "POST", endpoint.path, raw=raw, server=server)
    assert response.status_code == endpoint.ok_status, response.get_data(as_text=True)[:300]


# -- Idempotency-Key -----------------------------------------------------------------------


BAD_IDEMPOTENCY_KEYS = {"too long": "k" * 256, "non-ASCII": "clé-1", "empty": "",
                        "DEL": "a\x7fb", "tab": "a\tb"}


def test_bad_idempotency_key_is_400_and_stores_nothing(app, http, creds, server, subtests):
    before = stored(app)
    for name, key in BAD_IDEMPOTENCY_KEYS.items():
        with subtests.test(name):
            if key.isascii() and key.replace("\t", " ").isprintable():
                response = request(http, creds, "POST", "/v1/reports",
                                   {"reports": [good_report()]},
                                   headers={"Idempotency-Key": key}, server=server)
            else:
                # No signature can cover it (a signature base is printable ASCII): sent
                # anyway, it is refused for what it is, not as "not covered".
                def add_key(message: protocol.Message, key: str = key) -> None:
                    message.headers["Idempotency-Key"] = key
                response = signed(http, creds, "POST", "/v1/reports",
                                  {"reports": [good_report()]}, after_sign=add_key)
            problem = assert_problem(response, 400, "bad-request")
            assert "Idempotency-Key" in problem["detail"]
            assert "255" in problem["detail"]
            assert stored(app) == before
    response = request(http, creds, "POST", "/v1/reports", {"reports": [good_report()]},
                       headers={"Idempotency-Key": "k" * 255}, server=server)
    assert response.status_code == 201
    reports, _, records = stored(app)
    assert (reports, records) == (before[0] + 1, before[2] + 1)


# -- DELETE /v1/reports/<id> ---------------------------------------------------------------


HOSTILE_IDS = {"very long": "r_" + "0" * 1000, "SQL injection": "' OR '1'='1", "percent": "%",
               "non-ASCII": "r_é", "NUL": "r_\x00", "dot-dot": "..", "star": "*",
               "LIKE wildcard": "r_%"}


def test_withdraw_with_a_hostile_id_is_404_and_changes_nothing(app, http, creds, server,
                                                               subtests):
    response = request(http, creds, "POST", "/v1/reports", {"reports": [good_report()]},
                       server=server)
    assert response.status_code == 201
    before = stored(app)
    for name, report_id in HOSTILE_IDS.items():
        with subtests.test(name):
            path = "/v1/reports/" + quote(report_id, safe="")
            response = request(http, creds, "DELETE", path, server=server)
            problem = assert_problem(response, 404, "not-found")
            assert "no report" in problem["detail"]
            assert stored(app) == before
    response = request(http, creds, "DELETE", "/v1/reports/", server=server)
    assert_problem(response, 404, "not-found")


# -- GET /v1/reports -----------------------------------------------------------------------


BAD_QUERIES = [
    ("limit=abc", "limit"), ("limit=", "limit"), ("limit=0", "limit"), ("limit=-1", "limit"),
    ("limit=1001", "limit"), ("limit=1.5", "limit"), ("limit=1e3", "limit"),
    ("limit=" + "9" * 5000, "limit"),
    ("colour=red", "colour"), ("member_id=m_other", "member_id"),
    ("limit=5&offset=1", "offset"),
    ("after=" + "r" * 41, "after"), ("after=r_%00", "after"), ("after=r_%C3%A9", "after"),
]


def test_list_with_a_bad_query_is_400(http, creds, server, subtests):
    for query, says in BAD_QUERIES:
        with subtests.test(query[:40]):
            response = request(http, creds, "GET", "/v1/reports?" + query, server=server)
            problem = assert_problem(response, 400, "bad-request")
            assert says in problem["detail"]
    for query in ("limit=1", "limit=1000", "after=r_0", "limit=10&after=z"):
        response = request(http, creds, "GET", "/v1/reports?" + query, server=server)
        assert response.status_code == 200
        assert response.get_json()["reports"] == []


# -- routes --------------------------------------------------------------------------------


def test_unknown_endpoint_is_404_problem(http, creds, subtests):
    # ("/" answers an HTML pointer to the console: tests/functional/test_console_pages.py.)
    for path in ("/v1/nope", "/v1/reports/r_1/extra", "/v1", "/v2/lookups", "/nope"):
        with subtests.test(path):
            signed_answer = signed(http, creds, "GET", path)
            unsigned_answer = http.get(path, base_url=BASE_URL)
            for response in (signed_answer, unsigned_answer):
                problem = assert_problem(response, 404, "not-found")
                assert problem["detail"] == "no such endpoint"


WRONG_METHODS = [
    ("PUT", "/v1/reports", {"GET", "POST"}),
    ("PATCH", "/v1/reports", {"GET", "POST"}),
    ("GET", "/v1/lookups", {"POST"}),
    ("DELETE", "/v1/lookups", {"POST"}),
    ("POST", "/v1/ping", {"GET"}),
    ("PUT", "/v1/reports/r_1", {"DELETE"}),
    ("POST", "/v1/server-key", {"GET"}),
    ("POST", "/v1/openapi.json", {"GET"}),
]


def test_wrong_method_is_405_problem(app, http, creds, subtests):
    before = stored(app)
    for method, path, allowed in WRONG_METHODS:
        with subtests.test(f"{method} {path}"):
            response = signed(http, creds, method, path, {"reports": [good_report()]})
            assert_problem(response, 405, "method-not-allowed")
            assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}
            assert stored(app) == before


def test_openapi_document_is_served_unsigned_and_its_answer_signed(http, server):
    response = http.get("/v1/openapi.json", base_url=BASE_URL)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    protocol.verify_response(200, dict(response.headers.items()), response.get_data(),
                             protocol.Message("GET", BASE_URL + "/v1/openapi.json").as_request(),
                             public_key=server.public_key, key_id=server.signing_key_id,
                             nonce=None)


def test_server_key_is_served_unsigned_and_matches_the_key_files(http, server):
    response = http.get("/v1/server-key", base_url=BASE_URL)
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["key_id"] == server.signing_key_id
    assert answer["algorithm"] == "ed25519"
    assert bytes.fromhex(answer["public_key_raw"]) == server.public_key.public_bytes_raw()
    protocol.verify_response(200, dict(response.headers.items()), response.get_data(),
                             protocol.Message("GET", BASE_URL + "/v1/server-key").as_request(),
                             public_key=server.public_key, key_id=server.signing_key_id,
                             nonce=None)


def test_other_endpoints_are_not_public(http):
    for method, path in (("GET", "/v1/ping"), ("GET", "/v1/reports"), ("POST", "/v1/lookups"),
                         ("POST", "/v1/reports"), ("DELETE", "/v1/reports/r_1")):
        response = http.open(path, base_url=BASE_URL, method=method, json={})
        assert_problem(response, 401, "unauthenticated")
