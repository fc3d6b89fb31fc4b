"""Admitting, suspending and listing members (shared by the CLI and, later, the console)."""

from __future__ import annotations

import secrets
import unicodedata

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select
from sqlalchemy.orm import Session

import keys
from clue_server.audit import services as audit
from clue_server.members.models import Member, MemberKey


class MemberError(Exception):
    """A member operation was refused; the message says why."""


def add_member(session: Session, name: str, public_key: Ed25519PublicKey, *,
               hpke_public_key: X25519PublicKey | None = None,
               actor: str = "council") -> Member:
    name = name.strip()
    if not name or len(name) > 200:
        raise MemberError("a member name must be 1 to 200 characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        # A NUL would also make PostgreSQL refuse the query outright.
        raise MemberError("a member name must not contain control characters")
    if session.scalar(select(Member).where(Member.name == name)) is not None:
        raise MemberError(f"a member named {name!r} already exists")
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    if session.scalar(select(MemberKey).where(MemberKey.public_key == raw)) is not None:
        raise MemberError("this public key already belongs to a member")
    member = Member(id="m_" + secrets.token_hex(6), name=name, status="active",
                    hpke_public_key=hpke_public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
                    if hpke_public_key else None)
    member.keys.append(MemberKey(id=keys.key_id(public_key), public_key=raw, status="active"))
    session.add(member)
    session.flush()
    audit.record(session, actor=actor, action="member.add", subject=member.id, name=name,
                 key_id=member.keys[0].id)
    return member


def find_member(session: Session, ref: str) -> Member:
    member = session.get(Member, ref) or session.scalar(select(Member).where(Member.name == ref))
    if member is None:
        raise MemberError(f"no member with id or name {ref!r}")
    return member


def set_status(session: Session, ref: str, status: str, *, actor: str = "council") -> Member:
    member = find_member(session, ref)
    if member.status == status:
        raise MemberError(f"member {member.id} is already {status}")
    member.status = status
    action = "member.suspend" if status == "suspended" else "member.resume"
    audit.record(session, actor=actor, action=action, subject=member.id)
    return member


def list_members(session: Session) -> list[Member]:
    return list(session.scalars(select(Member).order_by(Member.created_at)))
