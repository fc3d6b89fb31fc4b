"""Wrapping secrets to a member's X25519 key with HPKE (RFC 9180), through ``pyhpke``.

Suite: mode_base, DHKEM(X25519, HKDF-SHA256) (0x0020), HKDF-SHA256 (0x0001),
AES-128-GCM (0x0001) -- the suite of RFC 9180 Appendix A.1, whose published vectors
the tests check. One single-shot message per envelope (sequence number 0).

Envelope layout (no header, no length fields)::

    envelope = enc (32 bytes: the sender's ephemeral X25519 public key)
             || ct  (len(plaintext) + 16 bytes: AES-128-GCM ciphertext and tag)

The suite is fixed; a future change of suite must change ``info`` (which both sides fix
per use, e.g. ``b"clue/v1 wrap network"``) so old and new envelopes cannot be confused.
"""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey, KEMKeyPair

from ._common import (
    SYMMETRIC_PURPOSES,
    b64decode,
    b64encode,
    check_purpose,
    format_time,
    parse_time,
)
from ._errors import UnwrapError
from ._symmetric import SymmetricKey

ENC_SIZE = 32
TAG_SIZE = 16

_SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES128_GCM)


def _check_bytes(**values: object) -> None:
    for name, value in values.items():
        if not isinstance(value, bytes):
            raise TypeError(f"{name} must be bytes, not {type(value).__name__}")


def _seal(recipient: X25519PublicKey, plaintext: bytes, info: bytes, aad: bytes,
          ephemeral: KEMKeyPair | None) -> bytes:
    """``wrap`` with an optional fixed ephemeral key pair (known-answer tests only)."""
    pkr = KEMKey.from_pyca_cryptography_key(recipient)
    enc, context = _SUITE.create_sender_context(pkr, info=info, eks=ephemeral)
    return enc + context.seal(plaintext, aad=aad)


def wrap(recipient: X25519PublicKey, plaintext: bytes, *, info: bytes, aad: bytes = b"") -> bytes:
    """Encrypt ``plaintext`` so only the holder of ``recipient``'s private key can read it.

    ``info`` names the use (both sides must pass the same); ``aad`` is authenticated but
    not encrypted (e.g. the member id and key version the envelope is for).
    """
    if not isinstance(recipient, X25519PublicKey):
        raise TypeError(f"recipient must be an X25519PublicKey, not {type(recipient).__name__}")
    _check_bytes(plaintext=plaintext, info=info, aad=aad)
    return _seal(recipient, plaintext, info, aad, None)


def unwrap(recipient: X25519PrivateKey, envelope: bytes, *, info: bytes, aad: bytes = b"") -> bytes:
    """The plaintext of ``envelope``; ``UnwrapError`` for every kind of failure."""
    if not isinstance(recipient, X25519PrivateKey):
        raise TypeError(f"recipient must be an X25519PrivateKey, not {type(recipient).__name__}")
    _check_bytes(envelope=envelope, info=info, aad=aad)
    if len(envelope) < ENC_SIZE + TAG_SIZE:
        raise UnwrapError
    try:
        skr = KEMKey.from_pyca_cryptography_key(recipient)
        context = _SUITE.create_recipient_context(envelope[:ENC_SIZE], skr, info=info)
        return context.open(envelope[ENC_SIZE:], aad=aad)
    except Exception:  # bad point, low-order point, failed tag: all the same to the caller
        raise UnwrapError from None


# ----------------------------------------------------------------- symmetric keys


def _wrap_info(purpose: str) -> bytes:
    return b"clue/v1 wrap " + purpose.encode("ascii")


def wrap_symmetric_key(recipient: X25519PublicKey, key: SymmetricKey, *, aad: bytes = b"") -> bytes:
    """``key`` (secret, purpose, version, creation time) wrapped to ``recipient``.

    How the council relays a network key version to a member without being able to read
    it. ``info`` is ``b"clue/v1 wrap " + purpose``; the plaintext is canonical JSON.
    """
    if not isinstance(key, SymmetricKey):
        raise TypeError(f"expected a SymmetricKey, not {type(key).__name__}")
    payload = json.dumps(
        {"purpose": key.purpose, "version": key.version, "created": format_time(key.created),
         "secret": b64encode(key.secret)},
        sort_keys=True, separators=(",", ":"),
    ).encode("ascii")
    return wrap(recipient, payload, info=_wrap_info(key.purpose), aad=aad)


def unwrap_symmetric_key(
    recipient: X25519PrivateKey, envelope: bytes, *, purpose: str, aad: bytes = b""
) -> SymmetricKey:
    """The ``purpose`` key in ``envelope``; ``UnwrapError`` for every kind of failure."""
    check_purpose(purpose, SYMMETRIC_PURPOSES, "unwrap_symmetric_key")
    payload = unwrap(recipient, envelope, info=_wrap_info(purpose), aad=aad)
    try:
        fields = json.loads(payload)
        if not isinstance(fields, dict) or set(fields) != {"purpose", "version", "created",
                                                           "secret"}:
            raise ValueError
        if fields["purpose"] != purpose or isinstance(fields["version"], bool):
            raise ValueError
        return SymmetricKey(purpose=purpose, version=fields["version"],
                            secret=b64decode(fields["secret"]),
                            created=parse_time(fields["created"]))
    except (ValueError, TypeError, AttributeError):
        raise UnwrapError from None
