"""Handing a network-key version to other members through the server, which cannot read it.

A custodian seals the key to each member's X25519 public key with HPKE
(RFC 9180, through :mod:`keys`) and signs a statement binding the envelope to
its version and recipient with its Ed25519 signing key. The server stores the
envelope as opaque bytes, and only the version's custodian (the member whose
upload created it) may upload envelopes for it; the recipient checks that the
custodian signed it, opens the envelope locally and saves ``network-v{N}.key``.

The HPKE associated data and the signed statement both name the version and the
recipient, so an envelope cannot be replayed to another member or as another
version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

import keys
from clue_client.protocol import b64url, unb64url

if TYPE_CHECKING:
    from clue_client.client import ClueClient

NETWORK_PURPOSE = "network"


class ShareError(Exception):
    """An envelope is not signed by its custodian, not for us, or does not open."""


def aad(version: int, recipient_id: str) -> bytes:
    return b"clue/v1 network-key\x00" + str(version).encode() + b"\x00" + recipient_id.encode()


def statement(version: int, recipient_id: str, envelope: bytes) -> bytes:
    """What a custodian signs for each envelope."""
    return (b"clue/v1 network-key share\x00" + str(version).encode() + b"\x00"
            + recipient_id.encode() + b"\x00" + hashlib.sha256(envelope).digest())


def seal(key: keys.SymmetricKey, recipient_id: str, recipient: X25519PublicKey,
         custodian: Ed25519PrivateKey) -> tuple[bytes, bytes]:
    """Return (envelope, signature) for one recipient."""
    envelope = keys.wrap_symmetric_key(recipient, key, aad=aad(key.version, recipient_id))
    return envelope, custodian.sign(statement(key.version, recipient_id, envelope))


def verify(version: int, recipient_id: str, envelope: bytes, signature: bytes,
           custodian: Ed25519PublicKey) -> None:
    try:
        custodian.verify(signature, statement(version, recipient_id, envelope))
    except InvalidSignature:
        raise ShareError(f"network key v{version}: the custodian's signature does not "
                         "verify") from None


def open_envelope(version: int, recipient_id: str, envelope: bytes, signature: bytes, *,
                  custodian: Ed25519PublicKey, own_key: X25519PrivateKey) -> keys.SymmetricKey:
    verify(version, recipient_id, envelope, signature, custodian)
    try:
        key = keys.unwrap_symmetric_key(own_key, envelope, purpose=NETWORK_PURPOSE,
                                        aad=aad(version, recipient_id))
    except keys.UnwrapError:
        raise ShareError(f"network key v{version}: the envelope does not open with this "
                         "member's HPKE key") from None
    if key.version != version:
        raise ShareError(f"network key v{version}: the envelope holds version {key.version}")
    return key


@dataclass(frozen=True)
class ShareResult:
    version: int
    shared_with: tuple[str, ...]
    skipped: tuple[str, ...]  # members without an HPKE key yet
    #: Each recipient's HPKE key fingerprint, computed here from the key sealed to (not
    #: taken from the server): compare them with the council's published member list.
    fingerprints: tuple[tuple[str, str], ...] = ()


def share(client: ClueClient, key: keys.SymmetricKey, custodian: Ed25519PrivateKey, *,
          own_member_id: str) -> ShareResult:
    """Seal ``key`` to every admitted member with an HPKE key and upload the envelopes.

    The recipients and their HPKE keys are the server's word: the fingerprints in the
    result are what a custodian checks against the council's published list, since a
    key swapped in the directory would receive the network key.
    """
    directory = client.network_directory()
    envelopes, shared, fingerprints = [], [], []
    for recipient in directory["recipients"]:
        member_id = recipient["member_id"]
        if member_id == own_member_id:
            continue
        public = X25519PublicKey.from_public_bytes(unb64url(recipient["hpke_public_key"]))
        fingerprint = keys.fingerprint(public)
        if recipient.get("fingerprint") not in (None, fingerprint):
            raise ShareError(f"the server's directory gives member {member_id} an HPKE key "
                             f"whose fingerprint is {fingerprint}, not the "
                             f"{recipient['fingerprint']} it states; refusing to share")
        envelope, signature = seal(key, member_id, public, custodian)
        envelopes.append({"recipient": member_id, "envelope": b64url(envelope),
                          "signature": b64url(signature)})
        shared.append(member_id)
        fingerprints.append((member_id, fingerprint))
    for start in range(0, len(envelopes), 500):
        client.upload_envelopes(key.version, envelopes[start:start + 500])
    return ShareResult(key.version, tuple(shared), (), tuple(fingerprints))


@dataclass(frozen=True)
class FetchResult:
    saved: tuple[int, ...]
    already_had: tuple[int, ...]
    fingerprints: dict[int, str]
    removed: tuple[int, ...] = ()  # retired versions whose local files were deleted


def fetch(client: ClueClient, own_key: X25519PrivateKey, keys_dir: Path, *,
          own_member_id: str, trusted_custodians: frozenset[str] | None = None,
          passphrase: bytes | None = None) -> FetchResult:
    """Open this member's envelopes and save new ``network-v{N}.key`` files.

    An envelope is accepted only when it is signed by a key of the version's custodian
    (the member whose upload created the version, as the server records it): one that
    another member slipped in is refused. ``trusted_custodians`` (signing key ids)
    further restricts whose envelopes are accepted, which also holds against an
    operator that lies about the custodian; without it the fingerprints should be
    compared out of band. With ``passphrase`` the saved files are sealed.
    """
    saved, had, fingerprints = [], [], {}
    for row in client.my_envelopes():
        version = int(row["version"])
        sender_key_id = row["sender_key_id"]
        custodian_id = row.get("custodian_member_id")
        if not custodian_id or row["sender_member_id"] != custodian_id:
            raise ShareError(f"network key v{version} was sealed for you by "
                             f"{row['sender_member_id']} ({sender_key_id}), not by the "
                             f"version's custodian {custodian_id}; refusing it. Tell the "
                             "council and the custodian")
        if trusted_custodians is not None and sender_key_id not in trusted_custodians:
            raise ShareError(f"network key v{version} was shared by {sender_key_id}, "
                             "who is not one of your trusted custodians")
        custodian = Ed25519PublicKey.from_public_bytes(unb64url(row["sender_public_key"]))
        if keys.key_id(custodian) != sender_key_id:
            raise ShareError(f"network key v{version}: the custodian key does not match its id")
        key = open_envelope(version, own_member_id, unb64url(row["envelope"]),
                            unb64url(row["signature"]), custodian=custodian, own_key=own_key)
        fingerprints[version] = keys.fingerprint(key)
        path = keys.keyring_path(keys_dir, NETWORK_PURPOSE, version)
        if path.exists():
            existing = keys.load_symmetric_key(path, purpose=NETWORK_PURPOSE,
                                               passphrase=passphrase)
            if existing != key:
                raise ShareError(f"network key v{version} shared by {sender_key_id} differs "
                                 f"from the one in {path}; stop and ask the custodians")
            had.append(version)
            continue
        keys.save_symmetric_key(path, key, passphrase=passphrase)
        saved.append(version)
    # A retired version is refused by the server; its tokens are gone, so is the key.
    removed = []
    for entry in client.network_directory()["versions"]:
        path = keys.keyring_path(keys_dir, NETWORK_PURPOSE, int(entry["version"]))
        if entry["status"] == "retired" and path.exists():
            path.unlink()
            removed.append(int(entry["version"]))
    return FetchResult(tuple(saved), tuple(had), fingerprints, tuple(removed))
