"""The CLUE v1 wire protocol: how requests and responses are signed and checked.

Both sides use this module: the SDK signs requests and verifies responses, the
server verifies requests and signs responses. Signatures are RFC 9421 HTTP
Message Signatures with Ed25519 (through the ``http-message-signatures``
library) over a Content-Digest (RFC 9530, SHA-256) of the body.

Request signature: label ``clue``, covering ``@method``, ``@target-uri`` and
``content-digest``, with parameters ``created``, ``keyid``, ``alg`` and
``nonce``. Response signature: label ``clue``, covering ``@status``,
``content-type``, ``content-digest``, ``"@method";req`` and ``"@target-uri";req``,
with the request's nonce repeated as the response's ``nonce`` so an old
response cannot be replayed to a new request.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)
from http_message_signatures.exceptions import HTTPMessageSignaturesException

API_PREFIX = "/v1"
SIGNATURE_LABEL = "clue"
REQUEST_COMPONENTS = ("@method", "@target-uri", "content-digest")
RESPONSE_COMPONENTS = (
    "@status",
    "content-type",
    "content-digest",
    '"@method";req',
    '"@target-uri";req',
)
#: The fraud categories every member shares (DESIGN.md); the identifier types are
#: ``clue_client.canonical.ID_TYPES``.
CATEGORIES = (
    "card_theft", "bank_account_theft", "remittance_scam", "fictitious_transaction",
    "circular_transaction", "forged_identity", "account_takeover", "phishing", "sticker_swap",
    "other",
)
#: How old a request's ``created`` may be, and how far ahead of the server clock.
MAX_SIGNATURE_AGE = 300
MAX_FUTURE_SKEW = 10
MAX_CLOCK_SKEW = 300  # one tolerance both ways (replaces MAX_FUTURE_SKEW); the SDK's for answers
NONCE_BYTES = 18  # 24 base64url characters, 144 bits
MAX_NONCE_LENGTH = 64


class SignatureError(Exception):
    """A signature is missing, malformed, stale or does not verify."""


@dataclass
class Message:
    """The minimal message shape the signature library reads.

    ``requests`` objects already have it; the server wraps Flask's request and
    response in this class.
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
    def __init__(self, key_id: str, private: Ed25519PrivateKey | None = None,
                 public: Ed25519PublicKey | None = None) -> None:
        self.key_id = key_id
        self.private = private
        self.public = public

    def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
        assert self.private is not None and key_id == self.key_id
        return self.private

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


def sign_request(message: Any, body: bytes, *, key_id: str, private_key: Ed25519PrivateKey,
                 nonce: str | None = None, created: dt.datetime | None = None) -> str:
    """Sign ``message`` (anything with method, url and headers) in place; return the nonce."""
    nonce = nonce or new_nonce()
    message = message.as_request() if isinstance(message, Message) else message  # not a response
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519,
                               key_resolver=_OneKey(key_id, private=private_key))
    signer.sign(message, key_id=key_id, created=created or _now(), nonce=nonce,
                label=SIGNATURE_LABEL, covered_component_ids=REQUEST_COMPONENTS[:2], body=body)
    return nonce


@dataclass(frozen=True)
class SignedBy:
    key_id: str
    nonce: str | None
    created: int


def read_key_id(headers: Mapping[str, str]) -> str:
    """The ``keyid`` a request claims, before any verification (to find its key)."""
    params = _signature_params(headers)
    key_id = params.get("keyid")
    if not isinstance(key_id, str) or not key_id:
        raise SignatureError('the signature has no "keyid" parameter')
    return key_id


def read_nonce(headers: Mapping[str, str]) -> str | None:
    """The ``nonce`` a request claims, unverified: the server echoes it even in a refusal,
    so the client can tell "refused" from "tampered with"."""
    try:
        nonce = _signature_params(headers).get("nonce")
    except SignatureError:
        return None
    return str(nonce) if isinstance(nonce, str) else None


def verify_request(message: Any, body: bytes, *, public_key: Ed25519PublicKey,
                   key_id: str, now: dt.datetime | None = None) -> SignedBy:
    """Verify a request signature, its digest and its freshness.

    Replay detection (the nonce) is the caller's: it needs shared state.
    """
    now = now or _now()
    params = _signature_params(message.headers)
    created = params.get("created")
    if type(created) is not int:
        raise SignatureError('the signature has no integer "created" parameter')
    age = int(now.timestamp()) - created
    if age > MAX_SIGNATURE_AGE:
        raise SignatureError(f"the signature is {age} s old; at most {MAX_SIGNATURE_AGE} s allowed")
    if -age > MAX_FUTURE_SKEW:
        raise SignatureError(f"the signature was created {-age} s in the future")
    nonce = params.get("nonce")
    if not isinstance(nonce, str) or not 16 <= len(nonce) <= MAX_NONCE_LENGTH:
        raise SignatureError('the signature needs a "nonce" parameter of 16 to 64 characters')
    _verify(message, body, public_key, key_id, REQUEST_COMPONENTS)
    return SignedBy(key_id=key_id, nonce=nonce, created=created)


def sign_response(status: int, headers: MutableMapping[str, str], body: bytes, request: Any, *,
                  key_id: str, private_key: Ed25519PrivateKey, nonce: str | None) -> None:
    """Sign a response in place, binding it to the request's method, URI and nonce."""
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519,
                               key_resolver=_OneKey(key_id, private=private_key))
    signer.sign(_Response(status, headers, request), key_id=key_id, created=_now(), nonce=nonce,
                label=SIGNATURE_LABEL, covered_component_ids=RESPONSE_COMPONENTS[:2]
                + RESPONSE_COMPONENTS[3:], body=body)


def verify_response(status: int, headers: MutableMapping[str, str], body: bytes, request: Any, *,
                    public_key: Ed25519PublicKey, key_id: str, nonce: str | None) -> None:
    """Check a response is signed by the pinned server key and answers ``request``."""
    params = _signature_params(headers)
    if params.get("keyid") != key_id:
        raise SignatureError("the response is signed by an unexpected key")
    if params.get("nonce") != nonce:
        raise SignatureError("the response does not answer this request (nonce differs)")
    _verify(_Response(status, headers, request), body, public_key, key_id, RESPONSE_COMPONENTS)


def _verify(message: Any, body: bytes, public_key: Ed25519PublicKey, key_id: str,
            required: tuple[str, ...]) -> None:
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519,
                                   key_resolver=_OneKey(key_id, public=public_key))
    verifier.max_clock_skew = dt.timedelta(seconds=MAX_CLOCK_SKEW)  # library default: 5 s
    try:
        verifier.verify(message, max_age=None, expect_tag=None, require_components=required,
                        body=body)
    except (InvalidSignature, HTTPMessageSignaturesException, ValueError) as exc:
        raise SignatureError(str(exc) or "the signature does not verify") from exc


def _signature_params(headers: Mapping[str, str]) -> dict[str, Any]:
    value = _header(headers, "Signature-Input")
    if value is None or _header(headers, "Signature") is None:
        raise SignatureError("the message is not signed (no Signature-Input / Signature)")
    try:
        parsed = http_sf.parse(value.encode(), tltype="dictionary")
    except Exception as exc:  # the parser raises several types for bad input
        raise SignatureError("Signature-Input is not a valid structured field") from exc
    if not isinstance(parsed, dict) or list(parsed) != [SIGNATURE_LABEL]:
        raise SignatureError(f'expected exactly one signature labelled "{SIGNATURE_LABEL}"')
    entry: Any = parsed[SIGNATURE_LABEL]
    member, params = entry
    if not isinstance(member, list) or not isinstance(params, dict):
        raise SignatureError("Signature-Input member must be an inner list")
    return dict(params)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
