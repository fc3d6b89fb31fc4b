"""Fingerprints and key ids.

* Public-key fingerprint (Ed25519 and X25519, public or private key given):
  ``"SHA256:" + base64url-nopad(SHA-256(raw 32-byte public key))`` -- 43 characters
  after the prefix, the full digest, in the spirit of OpenSSH's ``SHA256:`` form. Any
  language can recompute it from the raw public key.
* Symmetric-key fingerprint: ``"HMAC-SHA256:" + base64url-nopad(HMAC-SHA256(secret,
  b"clue/v1 key fingerprint")[:16])``. A keyed PRF output, so it identifies the key
  without being a plain hash of it: it gives no way to test a guess offline
  other than guessing the whole 256-bit key.
* Key id (RFC 9421 ``keyid``): ``"k-" + hex(SHA-256(raw Ed25519 public key))[:16]``.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ._common import b64url_nopad
from ._symmetric import SymmetricKey

_SYMMETRIC_FINGERPRINT_LABEL = b"clue/v1 key fingerprint"

AnyKey = (
    Ed25519PrivateKey | Ed25519PublicKey | X25519PrivateKey | X25519PublicKey | SymmetricKey
)


def public_raw(key: Ed25519PrivateKey | Ed25519PublicKey | X25519PrivateKey | X25519PublicKey,
               ) -> bytes:
    if isinstance(key, Ed25519PrivateKey | X25519PrivateKey):
        return key.public_key().public_bytes_raw()
    if isinstance(key, Ed25519PublicKey | X25519PublicKey):
        return key.public_bytes_raw()
    raise TypeError(f"expected an Ed25519 or X25519 key, not {type(key).__name__}")


def fingerprint(key: AnyKey) -> str:
    """A printable fingerprint of ``key``, safe to log and to show (see module docs)."""
    if isinstance(key, SymmetricKey):
        mac = hmac.new(key.secret, _SYMMETRIC_FINGERPRINT_LABEL, hashlib.sha256).digest()
        return "HMAC-SHA256:" + b64url_nopad(mac[:16])
    return "SHA256:" + b64url_nopad(hashlib.sha256(public_raw(key)).digest())


def key_id(public_key: Ed25519PublicKey) -> str:
    """The short stable id of a signing key, used as the RFC 9421 ``keyid``."""
    if not isinstance(public_key, Ed25519PublicKey):
        raise TypeError(f"key_id takes an Ed25519PublicKey, not {type(public_key).__name__}")
    return "k-" + hashlib.sha256(public_key.public_bytes_raw()).hexdigest()[:16]
