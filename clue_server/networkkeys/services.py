"""Network-key versions and their envelopes; member key self-service.

The server relays sealed envelopes between members and never sees a network
key in the clear. A version belongs to its custodian, the member whose upload
created it: nobody else may upload envelopes for it. The server checks each
envelope's custodian signature on upload only to refuse garbage early;
recipients check it again themselves, and that the signer is the custodian.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NoReturn

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

import keys
from clue_client import keyshare
from clue_server.audit import services as audit
from clue_server.db import iso_utc, utcnow
from clue_server.errors import BadRequest, NotCustodian, NotFound, ValidationFailed
from clue_server.members.models import Member, MemberKey
from clue_server.networkkeys.models import NetworkKeyEnvelope, NetworkKeyVersion
from clue_server.reports.models import Report
from clue_server.validation import (
    b64url,
    expect_list,
    expect_object,
    item_error,
    plausible_id,
    strict_b64url,
)

MAX_ENVELOPE_BYTES = 1024


class NetworkKeyError(Exception):
    """A council operation on network keys was refused."""


def _unb64url(value: Any, what: str, *, length: int | None = None, maximum: int = 4096) -> bytes:
    if not isinstance(value, str) or len(value) > maximum * 2:
        raise BadRequest(f"{what} must be a base64url string")
    data = strict_b64url(value)
    if data is None:
        raise ValidationFailed(f"{what} is not canonical base64url (no padding)")
    if length is not None and len(data) != length:
        raise ValidationFailed(f"{what} must be {length} bytes, got {len(data)}")
    if len(data) > maximum:
        raise ValidationFailed(f"{what} is longer than {maximum} bytes")
    return data


def retired_versions(session: Session) -> set[int]:
    return set(session.scalars(select(NetworkKeyVersion.version)
                               .where(NetworkKeyVersion.status == "retired")))


# -- member self-service ------------------------------------------------------------------

def member_profile(session: Session, member_id: str) -> dict[str, Any]:
    member = session.get(Member, member_id)
    assert member is not None
    return {
        "member_id": member.id, "name": member.name, "status": member.status,
        "signing_keys": [{"key_id": k.id, "status": k.status,
                          "public_key": b64url(k.public_key)} for k in member.keys],
        "hpke_public_key": b64url(member.hpke_public_key) if member.hpke_public_key else None,
    }


def set_hpke_key(session: Session, member_id: str, body: Any) -> dict[str, Any]:
    root = expect_object(body, "", required={"public_key"})
    raw = _unb64url(root["public_key"], "public_key", length=32)
    member = session.get(Member, member_id)
    assert member is not None
    member.hpke_public_key = raw
    audit.record(session, actor=member_id, action="member.hpke_key", subject=member_id,
                 fingerprint=keys.fingerprint(_x25519(raw)))
    return member_profile(session, member_id)


def add_signing_key(session: Session, member_id: str, body: Any, *,
                    actor: str | None = None) -> dict[str, Any]:
    """Register another signing key for the member: by the member itself (signed with a
    key it holds) or by the council (``actor="council"``: the credential reset of a
    member that lost its key, or whose key was stolen: add the new one, then revoke)."""
    root = expect_object(body, "", required={"public_key"})
    raw = _unb64url(root["public_key"], "public_key", length=32)
    public = Ed25519PublicKey.from_public_bytes(raw)
    if session.scalar(select(MemberKey).where(MemberKey.public_key == raw)) is not None:
        raise ValidationFailed("this public key is already registered")
    key = MemberKey(id=keys.key_id(public), member_id=member_id, public_key=raw, status="active")
    session.add(key)
    audit.record(session, actor=actor or member_id, action="member.key_add", subject=key.id,
                 member=member_id)
    session.flush()
    return member_profile(session, member_id)


def revoke_signing_key(session: Session, member_id: str, key_id: str, *,
                       actor: str | None = None) -> None:
    key = session.get(MemberKey, key_id) if plausible_id(key_id, 64) else None
    if key is None or key.member_id != member_id:
        raise NotFound(f"no signing key {key_id[:64]!r} of this member")
    if key.status == "revoked":
        raise ValidationFailed(f"key {key_id} is already revoked")
    active = session.scalar(select(func.count()).select_from(MemberKey).where(
        MemberKey.member_id == member_id, MemberKey.status == "active"))
    if active == 1:
        raise ValidationFailed("refusing to revoke the member's last active signing key; "
                               "add the new key first")
    key.status = "revoked"
    audit.record(session, actor=actor or member_id, action="member.key_revoke", subject=key_id)


# -- distribution -----------------------------------------------------------------------------

def directory(session: Session) -> dict[str, Any]:
    """Versions and the active members a custodian can seal to (with their HPKE keys)."""
    versions = session.scalars(select(NetworkKeyVersion).order_by(NetworkKeyVersion.version))
    members = session.scalars(select(Member).where(Member.status == "active")
                              .order_by(Member.created_at))
    return {
        "versions": [{"version": v.version, "status": v.status} for v in versions],
        "recipients": [{"member_id": m.id, "name": m.name,
                        "hpke_public_key": b64url(m.hpke_public_key),
                        "fingerprint": keys.fingerprint(_x25519(m.hpke_public_key))}
                       for m in members if m.hpke_public_key],
    }


def upload_envelopes(session: Session, member_id: str, key_id: str, version: int,
                     body: Any) -> dict[str, Any]:
    """Store envelopes of ``version``, which the caller's upload creates or already holds.

    The first upload of a version makes the caller its custodian; an upload by any
    other member is refused with 409 ``not-custodian`` and audited
    (``network_key.share_refused``): the caller's view commits that audit row before
    the problem is sent. The custodian may upload again (a new member, a new HPKE
    key), replacing its own envelope for a recipient.
    """
    if not 1 <= version <= 1_000_000:
        raise ValidationFailed("version must be between 1 and 1000000")
    root = expect_object(body, "", required={"envelopes"})
    items = expect_list(root["envelopes"], "/envelopes", max_items=1000)
    known = session.get(NetworkKeyVersion, version)
    if known is not None and known.status == "retired":
        raise ValidationFailed(f"network key version {version} is retired")
    if known is not None and known.custodian_id not in (None, member_id):
        _refuse_non_custodian(session, member_id, version, known.custodian_id, len(items))
    sender = session.get(MemberKey, key_id)
    assert sender is not None
    sender_public = Ed25519PublicKey.from_public_bytes(sender.public_key)
    parsed = []
    for index, raw in enumerate(items):
        if not isinstance(raw, dict) or set(raw) != {"recipient", "envelope", "signature"}:
            raise item_error("/envelopes", index, "item",
                             "must be an object with recipient, envelope, signature",
                             structural=True)
        recipient = raw["recipient"]
        # plausible_id first: PostgreSQL refuses a NUL in text (a 500 otherwise).
        if (not isinstance(recipient, str) or not plausible_id(recipient, 32)
                or session.get(Member, recipient) is None):
            raise item_error("/envelopes", index, "recipient", "is not a member")
        envelope = _unb64url(raw["envelope"], f"envelopes[{index}].envelope",
                             maximum=MAX_ENVELOPE_BYTES)
        signature = _unb64url(raw["signature"], f"envelopes[{index}].signature", length=64)
        try:
            keyshare.verify(version, recipient, envelope, signature, sender_public)
        except keyshare.ShareError:
            raise item_error("/envelopes", index, "signature",
                             "does not verify with the signing key of this request") from None
        parsed.append((recipient, envelope, signature))
    custodian = _claim_version(session, version, member_id)
    if custodian != member_id:  # another member created it while we were checking
        _refuse_non_custodian(session, member_id, version, custodian, len(items))
    for recipient, envelope, signature in parsed:
        session.execute(delete(NetworkKeyEnvelope).where(
            NetworkKeyEnvelope.version == version, NetworkKeyEnvelope.recipient_id == recipient))
        session.add(NetworkKeyEnvelope(version=version, recipient_id=recipient,
                                       sender_key_id=key_id, envelope=envelope,
                                       signature=signature))
    audit.record(session, actor=member_id, action="network_key.share", subject=f"v{version}",
                 recipients=[r for r, _, _ in parsed])
    return {"version": version, "stored": len(parsed)}


def _claim_version(session: Session, version: int, member_id: str) -> str | None:
    """Create ``version`` with the caller as custodian unless it exists; return its custodian.

    ``INSERT .. ON CONFLICT DO NOTHING``, so two members creating the same new version at
    once both get an answer: the one that loses sees the winner as custodian.
    """
    table = NetworkKeyVersion.__table__
    dialect = session.get_bind().dialect.name
    insert: Any = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(table).values(version=version, status="active",
                                         custodian_id=member_id, created_at=utcnow())
                    .on_conflict_do_nothing(index_elements=[table.c.version]))
    # A version known before custodians were recorded, with no envelope left to name
    # one, is bound by its first upload since.
    session.execute(update(NetworkKeyVersion)
                    .where(NetworkKeyVersion.version == version,
                           NetworkKeyVersion.custodian_id.is_(None))
                    .values(custodian_id=member_id)
                    .execution_options(synchronize_session=False))
    return session.scalar(select(NetworkKeyVersion.custodian_id)
                          .where(NetworkKeyVersion.version == version)
                          .execution_options(populate_existing=True))


def _refuse_non_custodian(session: Session, member_id: str, version: int,
                          custodian_id: str | None, envelopes: int) -> NoReturn:
    audit.record(session, actor=member_id, action="network_key.share_refused",
                 subject=f"v{version}", custodian=custodian_id, envelopes=envelopes)
    raise NotCustodian(
        f"network key v{version} belongs to its custodian {custodian_id}, the member that "
        "first shared it; only that member may upload envelopes for it. To share a key of "
        "your own, create the next version (`clue keys network rotate`)",
        version=version, custodian_member_id=custodian_id)


def my_envelopes(session: Session, member_id: str) -> dict[str, Any]:
    """The caller's envelopes of versions not retired, each naming the version's
    custodian: the recipient accepts an envelope only when that member signed it."""
    rows = session.execute(
        select(NetworkKeyEnvelope, MemberKey, NetworkKeyVersion.custodian_id)
        .join(MemberKey, MemberKey.id == NetworkKeyEnvelope.sender_key_id)
        .join(NetworkKeyVersion, NetworkKeyVersion.version == NetworkKeyEnvelope.version)
        .where(NetworkKeyEnvelope.recipient_id == member_id,
               NetworkKeyVersion.status == "active")
        .order_by(NetworkKeyEnvelope.version))
    return {"envelopes": [
        {"version": env.version, "custodian_member_id": custodian,
         "sender_key_id": sender.id, "sender_member_id": sender.member_id,
         "sender_public_key": b64url(sender.public_key), "envelope": b64url(env.envelope),
         "signature": b64url(env.signature), "created_at": iso_utc(env.created_at)}
        for env, sender, custodian in rows]}


# -- council ----------------------------------------------------------------------------------

def list_versions(session: Session) -> list[dict[str, Any]]:
    counts = {version: n for version, n in session.execute(
        select(Report.key_version, func.count()).group_by(Report.key_version))}
    rows = []
    for v in session.scalars(select(NetworkKeyVersion).order_by(NetworkKeyVersion.version)):
        shared = session.scalar(select(func.count()).select_from(NetworkKeyEnvelope)
                                .where(NetworkKeyEnvelope.version == v.version))
        rows.append({"version": v.version, "status": v.status, "custodian": v.custodian_id,
                     "envelopes": shared, "reports": counts.pop(v.version, 0)})
    rows.extend({"version": version, "status": "unregistered", "custodian": None,
                 "envelopes": 0, "reports": n} for version, n in sorted(counts.items()))
    return rows


def retire_version(session: Session, version: int, *, now: dt.datetime,
                   actor: str = "council") -> int:
    """Refuse tokens of ``version`` from now on and delete the reports made with it."""
    row = session.get(NetworkKeyVersion, version)
    if row is None:
        row = NetworkKeyVersion(version=version, status="active")
        session.add(row)
    if row.status == "retired":
        raise NetworkKeyError(f"network key version {version} is already retired")
    newer = session.scalar(select(func.count()).select_from(Report)
                           .where(Report.key_version > version))
    if not newer:
        raise NetworkKeyError(f"no report uses a version newer than {version}; re-register "
                              "under the new version before retiring this one")
    row.status, row.retired_at = "retired", now
    deleted = session.execute(delete(Report).where(Report.key_version == version))
    session.execute(delete(NetworkKeyEnvelope).where(NetworkKeyEnvelope.version == version))
    count = int(deleted.rowcount or 0)  # type: ignore[attr-defined]
    audit.record(session, actor=actor, action="network_key.retire", subject=f"v{version}",
                 reports_deleted=count)
    return count


def _x25519(raw: bytes | None) -> Any:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    assert raw is not None
    return X25519PublicKey.from_public_bytes(raw)


def refuse_retired(session: Session, versions: list[int], pointer: str) -> None:
    """422 naming the first item whose token was made with a retired network-key version."""
    refuse_retired_versions(retired_versions(session), versions, pointer)


def refuse_retired_versions(retired: set[int] | frozenset[int], versions: list[int],
                            pointer: str) -> None:
    for index, version in enumerate(versions):
        if version in retired:
            raise item_error(pointer, index, "key_version",
                             f"{version} is a retired network-key version; fetch the current "
                             "key (`clue keys network fetch`) and use it")
