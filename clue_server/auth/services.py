"""Authenticate a signed API request and sign the response.

The request path is: read the body (bounded however it is framed), parse the one
signature, find the signing key in a cache that is at most a second old, verify,
check the member, claim the nonce. Each step is one call with a known cost.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import Request, Response
from sqlalchemy import Engine, bindparam, select

from clue_client import protocol
from clue_server.auth.nonces import NonceStore
from clue_server.errors import MemberSuspended, PayloadTooLarge, Unauthenticated
from clue_server.idempotency import idempotency_key
from clue_server.keystore import ServerKeys
from clue_server.members.models import Member, MemberKey

#: How long a member key (and its member's status) is trusted from memory: a
#: revocation or suspension takes effect in every worker within this time.
KEY_CACHE_SECONDS = 1.0
#: Keys remembered per worker (unknown key ids are remembered too, so a flood of
#: made-up ids costs one query each per second at most, and memory stays bounded).
KEY_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Caller:
    member_id: str
    key_id: str
    nonce: str
    created: int


@dataclass(frozen=True)
class KeyEntry:
    public_key: Ed25519PublicKey | None
    key_active: bool
    member_id: str | None
    member_status: str | None
    fetched_at: float


class KeyCache:
    """Member signing keys by key id, read from the database at most once a second each.

    ``invalidate`` drops an entry at once (the worker that revokes a key or suspends a
    member calls it); other workers see the change when their entry turns a second old.
    """

    def __init__(self, engine: Engine, *, ttl: float = KEY_CACHE_SECONDS,
                 size: int = KEY_CACHE_SIZE) -> None:
        self.engine = engine
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[str, KeyEntry] = OrderedDict()
        self._lock = threading.Lock()
        self._query = (select(MemberKey.public_key, MemberKey.status, Member.id, Member.status)
                       .join(Member, Member.id == MemberKey.member_id)
                       .where(MemberKey.id == bindparam("key_id")))

    def get(self, key_id: str) -> KeyEntry:
        now = time.monotonic()
        entry = self._entries.get(key_id)
        if entry is not None and now - entry.fetched_at < self.ttl:
            return entry
        entry = self._fetch(key_id, now)
        with self._lock:
            self._entries[key_id] = entry
            self._entries.move_to_end(key_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return entry

    def invalidate(self, key_id: str | None = None) -> None:
        with self._lock:
            if key_id is None:
                self._entries.clear()
            else:
                self._entries.pop(key_id, None)

    def _fetch(self, key_id: str, now: float) -> KeyEntry:
        with self.engine.connect() as conn:
            row = conn.execute(self._query, {"key_id": key_id}).first()
        if row is None:
            return KeyEntry(None, False, None, None, now)
        public_raw, key_status, member_id, member_status = row
        return KeyEntry(Ed25519PublicKey.from_public_bytes(public_raw), key_status == "active",
                        member_id, member_status, now)


def target_uri(request: Request) -> str:
    """The request's target URI as the client addressed it (RFC 9421 ``@target-uri``).

    An absolute-form request target (``GET http://host/v1/ping HTTP/1.1``) is the
    target URI itself; the usual origin form is joined to the scheme and ``Host``.
    """
    environ = request.environ
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        raw = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
        if environ.get("QUERY_STRING"):
            raw += "?" + environ["QUERY_STRING"]
    if raw.startswith(("http://", "https://")):
        return str(raw)
    # The Host header as sent: werkzeug's ``request.host`` drops one it thinks invalid
    # (``clue_server``, as container names go), and the client signed what it sent.
    host = environ.get("HTTP_HOST") or request.host
    return f"{request.scheme}://{host}{raw}"


def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 past ``limit`` however it is framed.

    werkzeug cuts a chunked body at the limit without a word; here the stream is read
    one byte past the limit so an oversized body is told from one that fits.
    """
    cached: bytes | None = getattr(request, "_cached_data", None)
    if cached is not None:
        return cached
    environ = request.environ
    raw_length = environ.get("CONTENT_LENGTH")
    if not raw_length and "HTTP_TRANSFER_ENCODING" not in environ \
            and not environ.get("wsgi.input_terminated"):
        return b""  # no body (a GET): nothing to read
    length = request.content_length
    if length is not None:
        if length > limit:
            raise PayloadTooLarge(f"the body exceeds {limit} bytes")
        return request.get_data(cache=True)
    if environ.get("wsgi.input_terminated") or "chunked" in environ.get(
            "HTTP_TRANSFER_ENCODING", "").lower():
        stream, parts, size = environ["wsgi.input"], [], 0
        while size <= limit:  # a read may return less than asked (one chunk at a time)
            part = stream.read(limit + 1 - size)
            if not part:
                break
            parts.append(part)
            size += len(part)
        if size > limit:
            raise PayloadTooLarge(f"the body exceeds {limit} bytes")
        data = b"".join(parts)
        request._cached_data = data  # type: ignore[attr-defined]  # werkzeug's own cache
        return data
    return request.get_data(cache=True)


def authenticate(request: Request, keys: KeyCache, nonces: NonceStore, *,
                 max_body: int, claim_nonce: bool = True,
                 public_hosts: frozenset[str] = frozenset()) -> Caller:
    """The verified caller of a signed request. The nonce is claimed here unless
    ``claim_nonce`` is False: a look-up claims it together with its count (the caller then
    owes the claim, even when the request fails; see ``api``)."""
    body = read_body(request, max_body)
    fields = protocol.header_fields(request.headers)
    try:
        parsed = protocol.parse_signature(fields)
    except protocol.SignatureError as exc:
        raise Unauthenticated(str(exc)) from exc
    # A malformed Idempotency-Key cannot be covered by any signature (RFC 9421 bases are
    # printable ASCII): say what is wrong with it rather than "not covered".
    idempotency_key(request)
    key_id = parsed.key_id
    entry = keys.get(key_id) if len(key_id) <= 64 else None
    if entry is None or entry.public_key is None or not entry.key_active:
        raise Unauthenticated(
            f"unknown or revoked key {key_id[:64]!r}: a new member's key works once the "
            "council has admitted it (send them your public key file and its fingerprint)")
    target = target_uri(request)
    if public_hosts:
        authority = target.split("://", 1)[-1].split("/", 1)[0].lower()
        if authority not in public_hosts:
            raise Unauthenticated(
                f"this request was signed for {authority[:100]!r}, not for this server "
                f"({', '.join(sorted(public_hosts))}); check the server URL in your config")
    message = protocol.Message(method=request.method, url=target, headers=fields)
    try:
        signed = protocol.verify_request(message, body, key_id=key_id,
                                         public_key=entry.public_key, parsed=parsed)
    except protocol.ClockSkewError as exc:
        raise Unauthenticated(str(exc), clock_offset_seconds=exc.offset) from exc
    except protocol.SignatureError as exc:
        raise Unauthenticated(str(exc)) from exc
    if entry.member_status != "active":
        raise MemberSuspended(f"member {entry.member_id} is {entry.member_status}; "
                              "ask the council")
    assert signed.nonce is not None and entry.member_id is not None
    if claim_nonce:
        nonces.claim(key_id, signed.nonce, signed.created)
    return Caller(member_id=entry.member_id, key_id=key_id, nonce=signed.nonce,
                  created=signed.created)


def sign_response(response: Response, request: Request, server_keys: ServerKeys,
                  nonce: str | None) -> None:
    """Sign ``response`` in place; never fails, whatever the request looked like."""
    body = response.get_data()
    if "Content-Type" not in response.headers:
        response.headers["Content-Type"] = "application/json"
    try:
        url = target_uri(request)
    except Exception:  # a Host werkzeug cannot read: still sign, with what is there
        url = str(request.environ.get("RAW_URI", ""))
    answered: Any = protocol.Message(method=request.method, url=url)
    protocol.sign_response(response.status_code, response.headers, body, answered,
                           key_id=server_keys.signing_key_id,
                           private_key=server_keys.signing_key, nonce=nonce)
