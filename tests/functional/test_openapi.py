"""The OpenAPI 3.1 document of API v1 (must-hold 9).

It is valid, it is what ``/v1/openapi.json`` serves and what ``docs/`` keeps, it names
every route of the app and nothing else, its enums and limits are the server's, and the
real traffic of the SDK and of hand-signed hostile requests conforms to it: every
request the server accepts validates against the document, every body the server
rejects the document rejects too, and every answer (successes and problem+json errors)
matches the documented schema and headers.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

import keys
from clue_client import ReportInput, keyshare, protocol
from clue_client.errors import NotFoundError
from clue_client.protocol import b64url
from clue_server import api
from clue_server.config import CATEGORIES, ID_TYPES, Settings
from clue_server.errors import ALL_ERRORS, PROBLEM_TYPE_PREFIX
from clue_server.idempotency import MAX_KEY_LENGTH
from clue_server.reports.services import MAX_KEY_VERSION
from clue_server.validation import TOKEN_LENGTH
from tests.functional.test_disputes import exercise_disputes
from tests.helpers import BASE_URL, Creds

ROOT = Path(__file__).resolve().parents[2]
DOCS_COPY = ROOT / "docs" / "openapi.json"
PACKAGED = ROOT / "clue_server" / "openapi.json"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
SIGNATURE_FIELDS = ("Content-Digest", "Signature-Input", "Signature")

TOKEN_A = "UNhY4JhezH9gQYqvDMWrWH9CwlcKiECVqejMrND2VFw"  # a canonical 43-char token
TOKEN_B = "A" * 43


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads(DOCS_COPY.read_text("utf-8"))


# -- reading the document ----------------------------------------------------------


def deref(document: Mapping[str, Any], node: Any) -> Any:
    """Follow local ``$ref``s (``#/components/...``) until a concrete object."""
    while isinstance(node, Mapping) and set(node) == {"$ref"}:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def schema_errors(document: Mapping[str, Any], schema: Mapping[str, Any],
                  instance: Any) -> list[str]:
    """Validate ``instance`` against a schema of the document, ``$ref``s resolved in it."""
    rooted = {**schema, "components": document["components"]}
    validator = OAS31Validator(rooted, format_checker=oas31_format_checker)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validator.iter_errors(instance)]


def documented_operations(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items()
            for method in item if method in HTTP_METHODS}


def app_operations(app: Any) -> dict[tuple[str, str], str]:
    """Every (OpenAPI path, method) the app routes under /v1 and /v2, to its endpoint."""
    found = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/v1/", "/v2/")):
            continue
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found[(path, method.lower())] = rule.endpoint
    return found


def find_operation(document: Mapping[str, Any], method: str, path: str
                   ) -> tuple[str, dict[str, str], dict[str, Any]] | None:
    for template, item in document["paths"].items():
        names = re.findall(r"\{([^{}]+)\}", template)
        pattern = re.escape(template)
        for name in names:
            pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>[^/]+)")
        match = re.fullmatch(pattern, path)
        if match and method.lower() in item:
            return template, match.groupdict(), item[method.lower()]
    return None


# -- capturing real exchanges ----------------------------------------------------


@dataclass
class Exchange:
    method: str
    path: str
    query: dict[str, list[str]]
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes

    @property
    def response_type(self) -> str:
        return _header(self.response_headers, "Content-Type").split(";")[0].strip()

    @property
    def request_type(self) -> str:
        return _header(self.request_headers, "Content-Type").split(";")[0].strip()

    def json(self) -> Any:
        return json.loads(self.response_body)

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


def _header(headers: Mapping[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), "")


def _has_header(headers: Mapping[str, str], name: str) -> bool:
    return any(k.lower() == name.lower() for k in headers)


def recorder(exchanges: list[Exchange]) -> Callable[[Any], None]:
    """A ``WSGIAdapter.tamper`` hook that records what the SDK sent and got, unchanged."""

    def record(response: Any) -> None:
        request = response.request
        url = urlsplit(request.url)
        body = request.body or b""
        exchanges.append(Exchange(
            method=request.method, path=url.path, query=parse_qs(url.query),
            request_headers=dict(request.headers),
            request_body=body.encode() if isinstance(body, str) else body,
            status=response.status_code, response_headers=dict(response.headers),
            response_body=response.content))

    return record


def send(http: Any, exchanges: list[Exchange], method: str, path: str, *,
         creds: Creds | None = None, body: Any = None, raw: bytes | None = None,
         headers: dict[str, str] | None = None) -> Exchange:
    """One request through Flask's test client, RFC 9421-signed when ``creds`` is given."""
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    all_headers = dict(headers or {})
    if body is not None:
        all_headers.setdefault("Content-Type", "application/json")
    if creds is not None:
        message = protocol.Message(method=method, url=BASE_URL + path, headers=all_headers)
        protocol.sign_request(message.as_request(), data, key_id=creds.key_id,
                              private_key=creds.signing_key)
    answer = http.open(path, base_url=BASE_URL, method=method, headers=all_headers, data=data)
    url = urlsplit(path)
    exchange = Exchange(method=method, path=url.path, query=parse_qs(url.query),
                        request_headers=all_headers, request_body=data,
                        status=answer.status_code, response_headers=dict(answer.headers.items()),
                        response_body=answer.get_data())
    exchanges.append(exchange)
    return exchange


def exercise_private_lookups(http: Any, exchanges: list[Exchange], creds: Creds) -> None:
    """Protocol v2: configuration, an evaluation, a bucket, the replica, and refusals."""
    config = send(http, exchanges, "GET", "/v2/config", creds=creds).json()
    blinded = keys.oprf_blind(bytes(32)).blinded_element
    evaluated = send(http, exchanges, "POST", "/v2/evaluations", creds=creds, body={
        "oprf_version": 1, "items": [{"type": "phone", "blinded": b64url(blinded)}]})
    assert evaluated.status == 200
    buckets = send(http, exchanges, "POST", "/v2/buckets", creds=creds, body={
        "oprf_version": 1, "prefix_bits": config["prefix_bits"], "prefixes": [0, 1]})
    assert buckets.status == 200
    assert send(http, exchanges, "POST", "/v2/buckets", creds=creds, body={
        "oprf_version": 1, "prefix_bits": 3, "prefixes": [0]}).status == 409
    assert send(http, exchanges, "GET", "/v2/replica?oprf_version=1&after=0&limit=10",
                creds=creds).status == 200
    assert send(http, exchanges, "GET", "/v2/replica?oprf_version=9",
                creds=creds).status == 422
    day = dt.datetime.now(dt.UTC).date().isoformat()
    assert send(http, exchanges, "POST", "/v2/usage", creds=creds,
                body={"day": day, "matched": {"phone": 1}}).status == 200


def check_exchange(document: Mapping[str, Any], exchange: Exchange) -> tuple[str, str] | None:
    """Assert one real exchange conforms to the document; return its (path, method)."""
    found = find_operation(document, exchange.method, exchange.path)
    if found is None:
        # Not a documented operation: must be the documented default problem answer.
        assert exchange.status in (404, 405), exchange
        check_response(document, exchange, deref(document, {"$ref":
                                                            "#/components/responses/Default"}))
        return None
    template, path_params, operation = found
    if 200 <= exchange.status < 300:
        check_request(document, exchange, operation, path_params)
    responses = operation["responses"]
    spec = responses.get(str(exchange.status), responses.get("default"))
    assert spec is not None, f"{exchange}: status not documented"
    check_response(document, exchange, deref(document, spec))
    return template, exchange.method.lower()


def check_request(document: Mapping[str, Any], exchange: Exchange,
                  operation: Mapping[str, Any], path_params: dict[str, str]) -> None:
    params = [deref(document, p) for p in operation.get("parameters", [])]
    documented_query = {p["name"] for p in params if p["in"] == "query"}
    assert set(exchange.query) <= documented_query, f"{exchange}: undocumented query"
    for param in params:
        schema = param["schema"]
        if param["in"] == "path":
            values = [path_params[param["name"]]]
        elif param["in"] == "query":
            values = exchange.query.get(param["name"], [])
        else:
            value = _header(exchange.request_headers, param["name"])
            values = [value] if _has_header(exchange.request_headers, param["name"]) else []
        if param.get("required"):
            assert values, f"{exchange}: required {param['in']} {param['name']} missing"
        for value in values:
            typed: Any = int(value) if schema.get("type") == "integer" else value
            assert not schema_errors(document, schema, typed), (exchange, param["name"])
    body_spec = deref(document, operation.get("requestBody"))
    if body_spec is None:
        assert exchange.request_body == b"", f"{exchange}: body on a body-less operation"
        return
    content = body_spec["content"].get(exchange.request_type)
    assert content is not None, f"{exchange}: request type {exchange.request_type}"
    errors = schema_errors(document, content["schema"], json.loads(exchange.request_body))
    assert not errors, f"{exchange}: accepted request body does not conform: {errors}"


def check_response(document: Mapping[str, Any], exchange: Exchange,
                   spec: Mapping[str, Any]) -> None:
    content = spec["content"].get(exchange.response_type)
    assert content is not None, f"{exchange}: undocumented type {exchange.response_type}"
    if content["schema"].get("contentMediaType"):  # binary (the replica delta)
        assert exchange.response_body, exchange
    else:
        errors = schema_errors(document, content["schema"], exchange.json())
        assert not errors, f"{exchange}: response body does not conform: {errors}"
    for name, header in spec.get("headers", {}).items():
        header = deref(document, header)
        present = _has_header(exchange.response_headers, name)
        if header.get("required"):
            assert present, f"{exchange}: response header {name} missing"
        if present:
            value = _header(exchange.response_headers, name)
            assert not schema_errors(document, header["schema"], value), (exchange, name)
    undocumented = {"Idempotent-Replayed"} - set(spec.get("headers", {}))
    for name in undocumented:
        assert not _has_header(exchange.response_headers, name), (exchange, name)


# -- (a) valid, served, the same as docs/ ------------------------------------------


def test_served_document_is_valid_openapi_31_and_the_copy_in_docs(http: Any) -> None:
    response = http.get("/v1/openapi.json")  # no signature needed
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert all(name in response.headers for name in SIGNATURE_FIELDS)  # answer still signed
    served = response.get_data()
    assert served == DOCS_COPY.read_bytes() == PACKAGED.read_bytes()
    parsed = json.loads(served)
    validate(parsed, cls=OpenAPIV31SpecValidator)
    assert parsed["openapi"] == "3.1.0"
    assert parsed["info"]["title"] == "CLUE API" and parsed["info"]["version"] == "2"


def test_every_example_in_the_document_validates(document: dict[str, Any]) -> None:
    checked = 0
    for name, spec in document["components"]["responses"].items():
        for media in spec["content"].values():
            if "example" in media:
                assert not schema_errors(document, media["schema"], media["example"]), name
                checked += 1
    for name, schema in document["components"]["schemas"].items():
        for example in schema.get("examples", []):
            assert not schema_errors(document, schema, example), name
            checked += 1
    assert checked >= 10


# -- (b) routes: both directions ---------------------------------------------------


def test_every_route_is_documented_and_every_documented_operation_is_routed(
        app: Any, document: dict[str, Any]) -> None:
    routed = app_operations(app)
    documented = documented_operations(document)
    assert routed, "no /v1 routes found"
    assert set(routed) - documented == set(), "routes missing from the document"
    assert documented - set(routed) == set(), "documented operations the app does not route"

    urls = app.url_map.bind("clue.test")
    for path, method in documented:
        sample = re.sub(r"\{[^{}]+\}", "1", path)
        endpoint, _ = urls.match(sample, method=method.upper())
        assert endpoint == routed[(path, method)]
        names = set(re.findall(r"\{([^{}]+)\}", path))
        operation = document["paths"][path][method]
        declared = {deref(document, p)["name"] for p in operation.get("parameters", [])
                    if deref(document, p)["in"] == "path"}
        assert declared == names, (path, method)


def test_public_endpoints_are_the_only_unsigned_operations(
        app: Any, document: dict[str, Any]) -> None:
    assert document["security"] == [{"httpSignature": []}]
    scheme = document["components"]["securitySchemes"]["httpSignature"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Signature")
    for (path, method), endpoint in app_operations(app).items():
        security = document["paths"][path][method].get("security", document["security"])
        assert (security == []) == (endpoint in api.PUBLIC_ENDPOINTS), (path, method)


def test_enums_and_limits_are_the_servers(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["IdType"]["enum"] == list(ID_TYPES)
    assert schemas["Category"]["enum"] == list(CATEGORIES)
    assert schemas["Token"]["minLength"] == schemas["Token"]["maxLength"] == TOKEN_LENGTH
    assert schemas["KeyVersion"]["maximum"] == MAX_KEY_VERSION
    batch = Settings().max_batch_items
    assert schemas["RegisterRequest"]["properties"]["reports"]["maxItems"] == batch
    assert schemas["LookupRequest"]["properties"]["items"]["maxItems"] == batch
    assert schemas["SearchRequest"]["properties"]["items"]["maxItems"] == batch
    key = document["components"]["parameters"]["IdempotencyKey"]
    assert key["schema"]["maxLength"] == MAX_KEY_LENGTH
    problem_types = set(schemas["Problem"]["properties"]["type"]["enum"])
    assert problem_types == {PROBLEM_TYPE_PREFIX + cls.slug for cls in ALL_ERRORS} | {
        "about:blank"}
    assert str(Settings().max_body_bytes) in document["components"]["responses"][
        "PayloadTooLarge"]["content"]["application/problem+json"]["example"]["detail"]


# -- (c) real traffic conforms -----------------------------------------------------


def test_real_traffic_conforms_to_the_document(app: Any, http: Any, make_member: Any,
                                               make_client: Any,
                                               document: dict[str, Any]) -> None:
    exchanges: list[Exchange] = []
    reporter, other = make_member("Reporter Pay"), make_member("Lookup Bank")
    client_a, adapter_a = make_client(reporter)
    client_b, adapter_b = make_client(other)
    adapter_a.tamper = adapter_b.tamper = recorder(exchanges)

    assert client_a.ping()["member_id"] == reporter.member_id
    batch = [ReportInput("phone", "090-1234-5678", "card_theft"),
             ReportInput("email", "Fraud.Ster+shop@gmail.com", "phishing", expires_in_days=30)]
    created = client_a.register_many(batch, idempotency_key="batch-1")  # 201
    assert all(r.created for r in created)
    client_a.register_many(batch, idempotency_key="batch-1")  # the stored 201, replayed
    assert _header(exchanges[-1].response_headers, "Idempotent-Replayed") == "true"
    assert not any(r.created for r in client_a.register_many(batch))  # no key: 200
    assert exchanges[-1].status == 200

    found = client_b.lookup(phone="+81 90 1234 5678", email="fraudster@gmail.com",
                            ip="1.1.1.1")
    assert (found["phone"].match, found["email"].match, found["ip"].matched) == (
        "exact", "folded", False)
    assert found["phone"].reporters == 1 and not found["phone"].reported_by_me

    listed = list(client_a.reports(page_size=1))  # two pages, then the last
    (exact, _), = client_a.find_reports([("phone", "+81 90 1234 5678")])
    assert [r.id for r in exact] == [created[0].id]
    assert client_a.limits()["max_batch_items"] == Settings().max_batch_items
    assert [r.id for r in listed] == [r.id for r in created]
    client_a.withdraw(created[0].id)
    with pytest.raises(NotFoundError):
        client_b.withdraw(created[1].id)  # another member's report: 404 problem

    # Hand-made requests: the public endpoints, and errors of every documented kind.
    assert send(http, exchanges, "GET", "/v1/server-key").status == 200
    assert send(http, exchanges, "GET", "/v1/openapi.json").status == 200
    assert send(http, exchanges, "GET", "/v1/ping").status == 401
    assert send(http, exchanges, "GET", "/v1/reports?limit=0", creds=reporter).status == 400
    assert send(http, exchanges, "GET", "/v1/reports?after=r_0&limit=5",
                creds=reporter).status == 200
    bad_item = send(http, exchanges, "POST", "/v1/reports", creds=reporter, body={
        "reports": [{"type": "phone", "category": "card_theft", "key_version": 1,
                     "token": TOKEN_A}, {"type": "phone", "key_version": 1, "token": TOKEN_A}]})
    assert bad_item.status == 400
    assert {k: bad_item.json()[k] for k in ("pointer", "index", "field", "reason")} == {
        "pointer": "/reports/1/category", "index": 1, "field": "category",
        "reason": "is required"}
    assert send(http, exchanges, "POST", "/v1/lookups", creds=reporter, raw=b"a,b",
                headers={"Content-Type": "text/csv"}).status == 415
    assert send(http, exchanges, "POST", "/v1/lookups", creds=reporter,
                raw=b"x" * (Settings().max_body_bytes + 1),
                headers={"Content-Type": "application/json"}).status == 413
    exercise_member_keys_and_network_keys(http, exchanges, reporter, other)
    exercise_disputes(client_b, client_a, "email", "Fraud.Ster+shop@gmail.com")
    exercise_private_lookups(http, exchanges, other)
    assert send(http, exchanges, "PUT", "/v1/lookups", creds=reporter).status == 405
    assert send(http, exchanges, "GET", "/v1/no-such-thing").status == 404

    exercised = {check_exchange(document, exchange) for exchange in exchanges}
    assert exercised - {None} == documented_operations(document)  # every operation, for real
    statuses = {e.status for e in exchanges}
    assert {200, 201, 400, 401, 404, 405, 413, 415} <= statuses
    problems = [e for e in exchanges if e.status >= 400]
    assert all(e.response_type == "application/problem+json" for e in problems)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def exercise_member_keys_and_network_keys(http: Any, exchanges: list[Exchange],
                                          custodian: Creds, recipient: Creds) -> None:
    """Member self-service and the network-key relay, hand-signed."""
    hpke = X25519PrivateKey.generate().public_key()
    assert send(http, exchanges, "PUT", "/v1/members/me/hpke-key", creds=recipient,
                body={"public_key": _b64url(hpke.public_bytes_raw())}).status == 200
    assert send(http, exchanges, "GET", "/v1/members/me", creds=custodian).status == 200
    directory = send(http, exchanges, "GET", "/v1/network-keys", creds=custodian)
    assert [r["member_id"] for r in directory.json()["recipients"]] == [recipient.member_id]
    network_key = keys.new_symmetric_key("network", 2)
    envelope, signature = keyshare.seal(network_key, recipient.member_id, hpke,
                                        custodian.signing_key)
    assert send(http, exchanges, "POST", "/v1/network-keys/2/envelopes", creds=custodian,
                body={"envelopes": [{"recipient": recipient.member_id,
                                     "envelope": _b64url(envelope),
                                     "signature": _b64url(signature)}]}).status == 200
    mine = send(http, exchanges, "GET", "/v1/network-keys/envelopes", creds=recipient)
    assert [e["version"] for e in mine.json()["envelopes"]] == [2]
    assert send(http, exchanges, "POST", "/v1/network-keys/2/envelopes", creds=custodian,
                body={"envelopes": [{"recipient": recipient.member_id,
                                     "envelope": _b64url(envelope),
                                     "signature": _b64url(b"\0" * 64)}]}).status == 422
    new_key = keys.generate_signing_key().public_key()
    added = send(http, exchanges, "POST", "/v1/members/me/keys", creds=custodian,
                 body={"public_key": _b64url(new_key.public_bytes_raw())})
    assert added.status == 200
    new_id = keys.key_id(new_key)
    assert send(http, exchanges, "DELETE", f"/v1/members/me/keys/{new_id}",
                creds=custodian).status == 200
    assert send(http, exchanges, "DELETE", "/v1/members/me/keys/k-0000000000000000",
                creds=custodian).status == 404
    assert send(http, exchanges, "DELETE", f"/v1/members/me/keys/{custodian.key_id}",
                creds=custodian).status == 422  # the last active key


# -- the document rejects what the server rejects -----------------------------------


def _report(**fields: Any) -> dict[str, Any]:
    item = {"type": "phone", "category": "card_theft", "key_version": 1, "token": TOKEN_A}
    return {k: v for k, v in {**item, **fields}.items() if v is not ...}


def _item(**fields: Any) -> dict[str, Any]:
    item = {"type": "phone", "key_version": 1, "token": TOKEN_A}
    return {k: v for k, v in {**item, **fields}.items() if v is not ...}


BAD_ITEMS: list[tuple[str, dict[str, Any]]] = [
    ("unknown field", {"colour": "red"}),
    ("missing token", {"token": ...}),
    ("missing type", {"type": ...}),
    ("unknown type", {"type": "fax"}),
    ("type not a string", {"type": 7}),
    ("token too short", {"token": TOKEN_A[:42]}),
    ("token too long", {"token": TOKEN_A + "A"}),
    ("token padded", {"token": TOKEN_A[:42] + "="}),
    ("token standard base64", {"token": "+" + TOKEN_A[1:]}),
    ("token not canonical", {"token": "A" * 42 + "B"}),
    ("token not a string", {"token": 12}),
    ("key_version zero", {"key_version": 0}),
    ("key_version too large", {"key_version": MAX_KEY_VERSION + 1}),
    ("key_version as string", {"key_version": "1"}),
    ("key_version boolean", {"key_version": True}),
    ("folded_token on phone", {"folded_token": TOKEN_B}),
    ("folded_token malformed", {"type": "email", "folded_token": "short"}),
]
BAD_REPORTS = [*BAD_ITEMS, ("unknown category", {"category": "arson"}),
               ("missing category", {"category": ...}),
               ("expires_in_days zero", {"expires_in_days": 0}),
               ("expires_in_days not an integer", {"expires_in_days": "30"})]


def bad_bodies() -> Iterator[tuple[str, str, Any]]:
    """(name, path, body) of requests the server must refuse with 400 or 422."""
    for name, fields in BAD_REPORTS:
        yield f"reports: {name}", "/v1/reports", {"reports": [_report(), _report(**fields)]}
    for name, fields in BAD_ITEMS:
        yield f"lookups: {name}", "/v1/lookups", {"items": [_item(), _item(**fields)]}
        yield f"search: {name}", "/v1/reports/search", {"items": [_item(), _item(**fields)]}
    for path, key, good in (("/v1/reports", "reports", _report()),
                            ("/v1/lookups", "items", _item()),
                            ("/v1/reports/search", "items", _item())):
        yield f"{key}: empty", path, {key: []}
        yield f"{key}: 1001 items", path, {key: [good] * 1001}
        yield f"{key}: not an array", path, {key: good}
        yield f"{key}: item not an object", path, {key: [good, "x"]}
        yield f"{key}: unknown root field", path, {key: [good], "extra": 1}
        yield f"{key}: missing", path, {}
        yield f"{key}: root is an array", path, [good]


def test_document_rejects_what_the_server_rejects(http: Any, make_member: Any,
                                                  document: dict[str, Any]) -> None:
    creds = make_member()
    exchanges: list[Exchange] = []
    disagreements = []
    for name, path, body in bad_bodies():
        answer = send(http, exchanges, "POST", path, creds=creds, body=body)
        assert answer.status in (400, 422), (name, answer.response_body)
        check_exchange(document, answer)  # a conforming problem+json
        operation = document["paths"][path]["post"]
        schema = deref(document, operation["requestBody"])["content"]["application/json"][
            "schema"]
        if not schema_errors(document, schema, body):
            disagreements.append(f"{name}: the document accepts it")
        problem = answer.json()
        if "index" in problem:  # both must fault the item the server named
            key = "reports" if path == "/v1/reports" else "items"
            items_schema = deref(document, schema)["properties"][key]["items"]
            if not schema_errors(document, items_schema, body[key][problem["index"]]):
                disagreements.append(f"{name}: the document accepts item {problem['index']}")
    assert len(exchanges) == len(BAD_REPORTS) + 2 * len(BAD_ITEMS) + 21
    assert not disagreements, disagreements


def test_document_accepts_what_the_server_accepts(http: Any, make_member: Any,
                                                  document: dict[str, Any]) -> None:
    exchanges: list[Exchange] = []
    creds = make_member()
    bodies = [
        ("/v1/reports", {"reports": [_report(), _report(type="email", folded_token=TOKEN_B,
                                                        category="other",
                                                        expires_in_days=1, key_version=9)]}),
        ("/v1/reports", {"reports": [_report(type=t, token=TOKEN_B) for t in ID_TYPES]}),
        ("/v1/reports", {"reports": [_report(category=c) for c in CATEGORIES]}),
        ("/v1/lookups", {"items": [_item(type=t) for t in ID_TYPES]}),
        ("/v1/lookups", {"items": [_item(type="email", folded_token=TOKEN_B)] * 1000}),
    ]
    for path, body in bodies:
        answer = send(http, exchanges, "POST", path, creds=creds, body=body)
        assert answer.status in (200, 201), answer.response_body
        check_exchange(document, answer)
