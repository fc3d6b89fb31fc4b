"""The CLUE v1 wire protocol: how requests and responses are signed and checked.

Both sides use this module: the SDK signs requests and verifies responses, the
server verifies requests and signs responses. Signatures are RFC 9421 HTTP
Message Signatures with Ed25519 over a Content-Digest (RFC 9530, SHA-256) of the body.

Request signature: label ``clue``, covering ``@method``, ``@target-uri``, then
``content-type`` when the request has one and ``idempotency-key`` when it has one
(both change what the server does), then ``content-digest``; parameters ``created``,
``keyid``, ``alg`` and ``nonce``. Response signature: label ``clue``, covering
``@status``, ``content-type``, ``"@method";req``, ``"@target-uri";req`` and
``content-digest``, with the request's nonce repeated as the response's ``nonce`` so
an old response cannot be replayed to a new request.

Two implementations of the same profile live here. Every message CLUE itself signs
has one fixed shape, and for that shape this module builds and checks the RFC 9421
signature base directly (about 30 µs instead of the library's 400 µs on the request
path). Anything else a conforming peer may send (parameters in another order, extra
parameters such as ``expires``, other digest algorithms, unusual URLs) goes through
the ``http-message-signatures`` library, which implements RFC 9421 in full. Tests
cross-check the two both ways: whatever one signs the other verifies, and every
tampered variant is refused by both (tests/unit/test_protocol_fastpath.py).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import http_sf
from cryptography.exceptions import InvalidSignature as _BadEd25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)
from http_message_signatures.exceptions import HTTPMessageSignaturesException

API_PREFIX = "/v1"
SIGNATURE_LABEL = "clue"
#: Components every request signature covers ...
REQUEST_COMPONENTS = ("@method", "@target-uri", "content-digest")
#: ... and these header fields too whenever the request carries them.
REQUEST_FIELDS_WHEN_PRESENT = ("content-type", "idempotency-key")
RESPONSE_COMPONENTS = (
    "@status",
    "content-type",
    '"@method";req',
    '"@target-uri";req',
    "content-digest",
)
#: The fraud categories every member shares (DESIGN.md); the identifier types are
#: ``clue_client.canonical.ID_TYPES``.
CATEGORIES = (
    "card_theft", "bank_account_theft", "remittance_scam", "fictitious_transaction",
    "circular_transaction", "forged_identity", "account_takeover", "phishing", "sticker_swap",
    "other",
)
#: How old a request's ``created`` may be.
MAX_SIGNATURE_AGE = 300
#: How far apart two clocks may be, either way: a request or response ``created``
#: up to this far ahead of the reader's clock is accepted.
MAX_CLOCK_SKEW = 300
NONCE_BYTES = 18  # 24 base64url characters, 144 bits
MAX_NONCE_LENGTH = 64
EMPTY_BODY_DIGEST = "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"


class SignatureError(Exception):
    """A signature is missing, malformed, stale or does not verify."""


class ClockSkewError(SignatureError):
    """A signature's ``created`` time is outside the window: one of the clocks is off.

    ``offset`` is how many seconds the signer's clock appears to be ahead of the
    checker's (negative: behind), judged from ``created``.
    """

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass
class Message:
    """The minimal message shape the signature code reads.

    ``requests`` objects already have it; the server wraps Flask's request in this class.
    """

    method: str | None = None
    url: str | None = None
    headers: MutableMapping[str, str] = field(default_factory=dict)
    status_code: int | None = None
    request: Message | None = None

    def as_request(self) -> Any:
        """A view without ``status_code`` so the library treats it as a request."""
        return _Request(self.method or "", self.url or "", self.headers)


@dataclass
class _Request:
    method: str
    url: str
    headers: MutableMapping[str, str]


@dataclass
class _Response:
    status_code: int
    headers: MutableMapping[str, str]
    request: Any


class _OneKey(HTTPSignatureKeyResolver):
    def __init__(self, key_id: str, public: Ed25519PublicKey) -> None:
        self.key_id = key_id
        self.public = public

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey | None:
        return self.public if key_id == self.key_id else None


def server_key_id(public_key: Ed25519PublicKey) -> str:
    """The ``keyid`` the server signs responses with, derived from its public key."""
    import keys

    return "server-" + keys.key_id(public_key)


def endorsement_statement(next_public_raw: bytes) -> bytes:
    """What the current server key signs to vouch for the next one (key rotation)."""
    return b"clue/v1 server-key endorsement\x00" + next_public_raw


def b64url(data: bytes) -> str:
    """Base64url without padding: how every binary field travels in the API."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    """Decode :func:`b64url` output (padding optional)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_nonce() -> str:
    return secrets.token_urlsafe(NONCE_BYTES)


def content_digest(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` value CLUE sends: SHA-256, standard base64."""
    if not body:
        return EMPTY_BODY_DIGEST
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


# -- the fixed profile, built directly --------------------------------------------------------

# RFC 3986 as the library reads it (http_message_signatures._url), restricted to what an
# HTTP client sends: scheme, host (a name or IPv4, or a bracketed IPv6 literal), port,
# path and query; no userinfo, no fragment. A URL outside this shape takes the library.
_PCHAR = r"(?:[A-Za-z0-9._~!$&'()*+,;=:@\-]|%[0-9A-Fa-f]{2})"
_TARGET = re.compile(
    r"(?P<scheme>https?)://"
    r"(?P<authority>(?:[A-Za-z0-9._~!$&'()*+,;=\-]|%[0-9A-Fa-f]{2})+(?::[0-9]*)?"
    r"|\[[0-9A-Fa-f:.]+\](?::[0-9]*)?)"
    rf"(?P<path>(?:/{_PCHAR}*)*)"
    rf"(?P<query>\?(?:{_PCHAR}|[/?])*)?")
# Structured Field strings CLUE itself produces: printable ASCII without '"' and '\'.
_SF_STRING = r'[\x20\x21\x23-\x5b\x5d-\x7e]'
_SIGNATURE_INPUT = re.compile(
    r'clue=\((?P<components>"[a-z0-9@\-]+"(?:;req)?(?: "[a-z0-9@\-]+"(?:;req)?)*)\)'
    r";created=(?P<created>[0-9]{1,15})"
    rf';keyid="(?P<keyid>{_SF_STRING}{{1,256}})"'
    r';alg="ed25519"'
    rf'(?:;nonce="(?P<nonce>{_SF_STRING}{{1,256}})")?')
_SIGNATURE = re.compile(r"clue=:(?P<sig>[A-Za-z0-9+/]{86}==):")


@dataclass(frozen=True)
class ParsedSignature:
    """What ``Signature-Input`` and ``Signature`` claim, before any verification.

    ``components`` are the covered component identifiers as serialised
    (``'"@method"'``, ``'"@target-uri";req'``); ``params`` is the serialised inner
    list the signature base ends with; ``fast`` says the headers had CLUE's own
    canonical shape (else the library verifies them).
    """

    key_id: str
    nonce: str | None
    created: Any
    components: tuple[str, ...]
    params: str
    signature: bytes
    fast: bool

    def covers(self, component: str) -> bool:
        return _quoted(component) in self.components


def _quoted(component: str) -> str:
    return component if component.startswith('"') else f'"{component}"'


def header_fields(headers: Mapping[str, str]) -> dict[str, str]:
    """Header fields by lower-case name; repeated fields joined as RFC 9421 §2.1 does."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        key, value = name.lower(), value.strip(" \t")
        found[key] = f"{found[key]}, {value}" if key in found else value
    return found


def parse_signature(headers: Mapping[str, str]) -> ParsedSignature:
    """Read the one ``clue`` signature a message carries; raise :class:`SignatureError`."""
    fields = header_fields(headers)
    signature_input, signature = fields.get("signature-input"), fields.get("signature")
    if signature_input is None or signature is None:
        raise SignatureError("the message is not signed (no Signature-Input / Signature)")
    match, sig_match = _SIGNATURE_INPUT.fullmatch(signature_input), _SIGNATURE.fullmatch(signature)
    if match is not None and sig_match is not None:
        components = tuple(match["components"].split(" "))
        if len(set(components)) == len(components):
            return ParsedSignature(
                key_id=match["keyid"], nonce=match["nonce"], created=int(match["created"]),
                components=components, params=signature_input[len("clue="):],
                signature=base64.b64decode(sig_match["sig"]), fast=True)
    return _parse_general(signature_input, signature)


def _parse_general(signature_input: str, signature: str) -> ParsedSignature:
    """Any valid RFC 9421 serialisation (the library then checks the signature itself)."""
    try:
        parsed = http_sf.parse(signature_input.encode(), tltype="dictionary")
        signatures = http_sf.parse(signature.encode(), tltype="dictionary")
    except Exception as exc:  # the parser raises several types for bad input
        raise SignatureError("Signature-Input is not a valid structured field") from exc
    if not isinstance(parsed, dict) or list(parsed) != [SIGNATURE_LABEL]:
        raise SignatureError(f'expected exactly one signature labelled "{SIGNATURE_LABEL}"')
    if not isinstance(signatures, dict) or list(signatures) != [SIGNATURE_LABEL]:
        raise SignatureError(f'expected exactly one signature labelled "{SIGNATURE_LABEL}"')
    members: Any = parsed[SIGNATURE_LABEL]
    inner, params = members
    if not isinstance(inner, list) or not isinstance(params, dict):
        raise SignatureError("Signature-Input member must be an inner list")
    entry: Any = signatures[SIGNATURE_LABEL]
    value = entry[0] if isinstance(entry, tuple) else None
    key_id = params.get("keyid")
    if not isinstance(key_id, str) or not key_id:
        raise SignatureError('the signature has no "keyid" parameter')
    components = []
    for item, item_params in inner:
        if not isinstance(item, str):
            raise SignatureError("covered components must be strings")
        flags = "".join(f";{name}" for name, flag in item_params.items() if flag is True)
        components.append(f'"{item}"{flags}')
    nonce = params.get("nonce")
    return ParsedSignature(key_id=key_id, nonce=nonce if isinstance(nonce, str) else None,
                           created=params.get("created"), components=tuple(components),
                           params=signature_input, signature=value if isinstance(value, bytes)
                           else b"", fast=False)


def _target(url: str) -> str | None:
    """``@target-uri`` for a URL of the common shape (None: let the library judge it)."""
    match = _TARGET.fullmatch(url)
    if match is None:
        return None
    return f"{match['scheme']}://{match['authority']}{match['path'] or '/'}{match['query'] or ''}"


def _field_value(value: str) -> str | None:
    """A header value as RFC 9421 puts it in the base, if it may appear there."""
    return value if value.isascii() and value.replace("\t", " ").isprintable() else None


_SHA256_DIGEST = re.compile(r"sha-256=:[A-Za-z0-9+/]{43}=:")


def _digest_matches(value: str | None, body: bytes) -> bool:
    """For CLUE's own digest form, whether it matches (raise if it does not); False for
    any other form (the library then checks it, with every algorithm RFC 9530 allows)."""
    if value is None or _SHA256_DIGEST.fullmatch(value) is None:
        return False
    if value != content_digest(body):
        raise SignatureError("Content-Digest does not match the body")
    return True


def _params(components: tuple[str, ...], created: int, key_id: str, nonce: str | None) -> str:
    text = f'({" ".join(components)});created={created};keyid="{key_id}";alg="ed25519"'
    return text if nonce is None else f'{text};nonce="{nonce}"'


def _base(lines: list[tuple[str, str]], params: str) -> bytes:
    return ("\n".join(f"{c}: {v}" for c, v in lines) + f'\n"@signature-params": {params}'
            ).encode("ascii")


def _safe_sf_string(value: str) -> bool:
    return re.fullmatch(f"{_SF_STRING}+", value) is not None


def _drop_signature_fields(headers: MutableMapping[str, str]) -> None:
    for name in {n for n in headers.keys()
                 if n.lower() in ("content-digest", "signature-input", "signature")}:
        del headers[name]


def request_components(headers: Mapping[str, str]) -> tuple[str, ...]:
    """What a request with these header fields must have its signature cover, in order."""
    fields = header_fields(headers)
    # An empty field is no field: WSGI servers drop an empty Content-Type.
    present = tuple(name for name in REQUEST_FIELDS_WHEN_PRESENT if fields.get(name))
    return (*REQUEST_COMPONENTS[:2], *present, REQUEST_COMPONENTS[2])


def sign_request(message: Any, body: bytes, *, key_id: str, private_key: Ed25519PrivateKey,
                 nonce: str | None = None, created: dt.datetime | None = None) -> str:
    """Sign ``message`` (anything with method, url and headers) in place; return the nonce.

    Sets ``Content-Digest``, ``Signature-Input`` and ``Signature``; the signature
    covers ``Content-Type`` and ``Idempotency-Key`` when the message carries them.
    """
    nonce = nonce or new_nonce()
    if not (_safe_sf_string(key_id) and _safe_sf_string(nonce)):
        raise ValueError("key id and nonce must be printable ASCII without quotes or backslashes")
    headers = message.headers
    _drop_signature_fields(headers)
    headers["Content-Digest"] = content_digest(body)
    target = _target(str(message.url))
    if target is None:
        raise ValueError(f"cannot sign a request to {message.url!r}: not an http(s) URL of "
                         "the usual shape (scheme://host[:port]/path[?query])")
    fields = header_fields(headers)
    components = tuple(_quoted(c) for c in request_components(fields))
    lines = []
    for component in components:
        if component == '"@method"':
            lines.append((component, str(message.method).upper()))
        elif component == '"@target-uri"':
            lines.append((component, target))
        else:
            value = _field_value(fields[component.strip('"')])
            if value is None:
                raise ValueError(f"header {component} holds characters a signature cannot cover")
            lines.append((component, value))
    created_at = int((created or _now()).timestamp())
    params = _params(components, created_at, key_id, nonce)
    signature = private_key.sign(_base(lines, params))
    headers["Signature-Input"] = f"clue={params}"
    headers["Signature"] = f"clue=:{base64.b64encode(signature).decode('ascii')}:"
    return nonce


@dataclass(frozen=True)
class SignedBy:
    key_id: str
    nonce: str | None
    created: int


def read_key_id(headers: Mapping[str, str]) -> str:
    """The ``keyid`` a request claims, before any verification (to find its key)."""
    return parse_signature(headers).key_id


def read_nonce(headers: Mapping[str, str]) -> str | None:
    """The ``nonce`` a request claims, unverified: the server echoes it even in a refusal,
    so the client can tell "refused" from "tampered with"."""
    try:
        return parse_signature(headers).nonce
    except SignatureError:
        return None


def check_created(created: Any, now: dt.datetime, *, max_age: int | None) -> int:
    """``created`` as an int within the clock window; raise :class:`ClockSkewError`."""
    if type(created) is not int:
        raise SignatureError('the signature has no integer "created" parameter')
    age = int(now.timestamp()) - created
    if max_age is not None and age > max_age:
        raise ClockSkewError(
            f"the signature is too old: created {age} s ago, at most {max_age} s allowed; if "
            f"it was just signed, the signer's clock is about {age} s behind", offset=-age)
    if -age > MAX_CLOCK_SKEW:
        raise ClockSkewError(
            f"the signature was created {-age} s in the future (at most {MAX_CLOCK_SKEW} s "
            f"allowed): the signer's clock is about {-age} s ahead", offset=-age)
    return created


def verify_request(message: Any, body: bytes, *, public_key: Ed25519PublicKey,
                   key_id: str, now: dt.datetime | None = None,
                   parsed: ParsedSignature | None = None) -> SignedBy:
    """Verify a request signature, its coverage, digest and freshness.

    ``message`` has ``method``, ``url`` (the target URI as the server rebuilt it) and
    ``headers``; ``parsed`` is :func:`parse_signature`'s result when the caller already
    has it. Replay detection (the nonce) is the caller's: it needs shared state.
    """
    parsed = parsed or parse_signature(message.headers)
    if parsed.key_id != key_id:
        raise SignatureError("the signature names another key")
    created = check_created(parsed.created, now or _now(), max_age=MAX_SIGNATURE_AGE)
    nonce = parsed.nonce
    if not isinstance(nonce, str) or not 16 <= len(nonce) <= MAX_NONCE_LENGTH:
        raise SignatureError('the signature needs a "nonce" parameter of 16 to 64 characters')
    required = request_components(message.headers)
    missing = [c for c in required if not parsed.covers(c)]
    if missing:
        raise SignatureError(f"the signature must cover {', '.join(missing)}")
    if not (parsed.fast and _verify_request_fast(message, body, parsed, public_key)):
        request = message.as_request() if isinstance(message, Message) else message
        _verify_with_library(request, body, public_key, key_id, required)
    return SignedBy(key_id=key_id, nonce=nonce, created=created)


def _verify_request_fast(message: Any, body: bytes, parsed: ParsedSignature,
                         public_key: Ed25519PublicKey) -> bool:
    """Check the fixed profile directly; False when the library must judge the message.

    Raises :class:`SignatureError` for a message of the fixed shape that does not verify.
    """
    fields = header_fields(message.headers)
    target = _target(str(message.url))
    method = str(message.method)
    if not _digest_matches(fields.get("content-digest"), body) or target is None \
            or method != method.upper():
        return False
    lines = []
    for component in parsed.components:
        if component == '"@method"':
            lines.append((component, method))
        elif component == '"@target-uri"':
            lines.append((component, target))
        elif component.startswith('"@') or component.endswith(";req"):
            return False  # another derived component: the library knows them all
        else:
            raw = fields.get(component.strip('"'))
            value = None if raw is None else _field_value(raw)
            if value is None:
                return False
            lines.append((component, value))
    try:
        public_key.verify(parsed.signature, _base(lines, parsed.params))
    except _BadEd25519:
        raise SignatureError("the signature does not verify") from None
    return True


def sign_response(status: int, headers: MutableMapping[str, str], body: bytes, request: Any, *,
                  key_id: str, private_key: Ed25519PrivateKey, nonce: str | None) -> None:
    """Sign a response in place, binding it to the request's method, URI and nonce.

    Never fails on what the client sent: a request target or method that cannot
    appear in a signature base is written into it percent-encoded, so even the answer
    to a malformed request is signed (the client that sent it cannot match it, and
    nobody else can use it).
    """
    _drop_signature_fields(headers)
    headers["Content-Digest"] = content_digest(body)
    fields = header_fields(headers)
    if nonce is not None and not _safe_sf_string(nonce):
        nonce = None
    target = _target(str(request.url)) or _printable(str(request.url))
    lines = [('"@status"', str(status)),
             ('"content-type"', _field_value(fields.get("content-type", "")) or ""),
             ('"@method";req', _printable(str(request.method))),
             ('"@target-uri";req', target),
             ('"content-digest"', headers["Content-Digest"])]
    params = _params(tuple(c for c, _ in lines), int(_now().timestamp()), key_id, nonce)
    signature = private_key.sign(_base(lines, params))
    headers["Signature-Input"] = f"clue={params}"
    headers["Signature"] = f"clue=:{base64.b64encode(signature).decode('ascii')}:"


def _printable(text: str) -> str:
    """``text`` with anything outside printable ASCII percent-encoded (and never empty)."""
    out = "".join(c if " " < c < "\x7f" else "%" + "%".join(
        f"{b:02X}" for b in c.encode("utf-8", "surrogatepass")) for c in text)
    return out or "-"


def verify_response(status: int, headers: MutableMapping[str, str], body: bytes, request: Any, *,
                    public_key: Ed25519PublicKey, key_id: str, nonce: str | None,
                    now: dt.datetime | None = None) -> None:
    """Check a response is signed by the pinned server key and answers ``request``."""
    parsed = parse_signature(headers)
    if parsed.key_id != key_id:
        raise SignatureError("the response is signed by an unexpected key")
    if parsed.nonce != nonce:
        raise SignatureError("the response does not answer this request (nonce differs)")
    check_created(parsed.created, now or _now(), max_age=None)
    missing = [c for c in RESPONSE_COMPONENTS if not parsed.covers(c)]
    if missing:
        raise SignatureError(f"the response signature must cover {', '.join(missing)}")
    if parsed.fast and _verify_response_fast(status, headers, body, request, parsed, public_key):
        return
    _verify_with_library(_Response(status, headers, request), body, public_key, key_id,
                         RESPONSE_COMPONENTS)


def _verify_response_fast(status: int, headers: Mapping[str, str], body: bytes, request: Any,
                          parsed: ParsedSignature, public_key: Ed25519PublicKey) -> bool:
    fields = header_fields(headers)
    target = _target(str(request.url))
    if not _digest_matches(fields.get("content-digest"), body) or target is None:
        return False
    values = {'"@status"': str(status), '"@method";req': str(request.method),
              '"@target-uri";req': target}
    lines = []
    for component in parsed.components:
        if component in values:
            lines.append((component, values[component]))
        elif component.startswith('"@') or component.endswith(";req"):
            return False
        else:
            raw = fields.get(component.strip('"'))
            value = None if raw is None else _field_value(raw)
            if value is None:
                return False
            lines.append((component, value))
    try:
        public_key.verify(parsed.signature, _base(lines, parsed.params))
    except _BadEd25519:
        raise SignatureError("the response signature does not verify") from None
    return True


def _verify_with_library(message: Any, body: bytes, public_key: Ed25519PublicKey, key_id: str,
                         required: tuple[str, ...]) -> None:
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519,
                                   key_resolver=_OneKey(key_id, public_key))
    # Our own window (check_created) was applied already; the library's must not be narrower.
    verifier.max_clock_skew = dt.timedelta(seconds=MAX_CLOCK_SKEW + 1)
    try:
        verifier.verify(message, max_age=None, expect_tag=None, require_components=required,
                        body=body)
    except (InvalidSignature, HTTPMessageSignaturesException, ValueError,
            binascii.Error) as exc:
        raise SignatureError(str(exc) or "the signature does not verify") from exc


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
