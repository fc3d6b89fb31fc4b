"""Authenticate a signed API request and sign the response."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from clue_client import protocol
from clue_server.auth.nonces import NonceStore
from clue_server.errors import MemberSuspended, ReplayedRequest, Unauthenticated
from clue_server.keystore import ServerKeys
from clue_server.members.models import Member, MemberKey


@dataclass(frozen=True)
class Caller:
    member_id: str
    key_id: str
    nonce: str


def target_uri(request: Request) -> str:
    """The request's target URI as the client addressed it (RFC 9421 ``@target-uri``)."""
    environ = request.environ
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        raw = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
        if environ.get("QUERY_STRING"):
            raw += "?" + environ["QUERY_STRING"]
    return f"{request.scheme}://{request.host}{raw}"


def request_message(request: Request) -> protocol.Message:
    return protocol.Message(method=request.method, url=target_uri(request),
                            headers=dict(request.headers.items()))


def authenticate(session: Session, request: Request, nonces: NonceStore) -> Caller:
    body = request.get_data(cache=True)
    try:
        key_id = protocol.read_key_id(request.headers)
    except protocol.SignatureError as exc:
        raise Unauthenticated(str(exc)) from exc
    # One query for the key and its member, read into plain values: the transaction
    # ends before the nonce is claimed, and ORM objects would reload after it.
    row = session.execute(
        select(MemberKey.public_key, MemberKey.status, Member.id, Member.status)
        .join(Member, Member.id == MemberKey.member_id)
        .where(MemberKey.id == key_id)).first()
    # End the read transaction before the nonce store (which may be this same
    # SQLite file, written from its own session) takes the write lock.
    session.rollback()
    if row is None or row[1] != "active":
        raise Unauthenticated(f"unknown or revoked key {key_id!r}")
    public_raw, _key_status, member_id, member_status = row
    message = request_message(request)
    try:
        signed = protocol.verify_request(message.as_request(), body, key_id=key_id,
                                         public_key=Ed25519PublicKey.from_public_bytes(
                                             public_raw))
    except protocol.SignatureError as exc:
        raise Unauthenticated(str(exc)) from exc
    if member_status != "active":
        raise MemberSuspended(f"member {member_id} is {member_status}; ask the council")
    assert signed.nonce is not None
    if not nonces.claim(key_id, signed.nonce):
        raise ReplayedRequest("this request's nonce was already used; sign each request afresh")
    return Caller(member_id=member_id, key_id=key_id, nonce=signed.nonce)


def sign_response(response: Response, request: Request, server_keys: ServerKeys,
                  nonce: str | None) -> None:
    body = response.get_data()
    if "Content-Type" not in response.headers:
        response.headers["Content-Type"] = "application/json"
    message = request_message(request).as_request()
    # The signature library iterates header names; werkzeug's Headers yields
    # pairs, so sign a plain copy and carry the new fields back.
    headers = dict(response.headers.items())
    protocol.sign_response(response.status_code, headers, body, message,
                           key_id=server_keys.signing_key_id,
                           private_key=server_keys.signing_key, nonce=nonce)
    for name in ("Content-Digest", "Signature-Input", "Signature"):
        response.headers[name] = headers[name]
