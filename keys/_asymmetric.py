"""Ed25519 signing keys, X25519 HPKE keys, and their portable public-key PEM form."""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from ._errors import InvalidKeyFile, WrongKeyKind
from ._fileio import is_private_key

PrivateKey = Ed25519PrivateKey | X25519PrivateKey
PublicKey = Ed25519PublicKey | X25519PublicKey


def generate_signing_key() -> Ed25519PrivateKey:
    """A new Ed25519 key for signing requests (member) or responses (server)."""
    return Ed25519PrivateKey.generate()


def generate_hpke_key() -> X25519PrivateKey:
    """A new X25519 key a member publishes so the network key can be wrapped to it."""
    return X25519PrivateKey.generate()


def public_key_pem(public_key: PublicKey) -> str:
    """``public_key`` as PEM SubjectPublicKeyInfo (``-----BEGIN PUBLIC KEY-----``).

    RFC 8410 encoding, readable by OpenSSL and the standard libraries of other languages.
    """
    if not isinstance(public_key, Ed25519PublicKey | X25519PublicKey):
        raise TypeError(
            f"expected an Ed25519 or X25519 public key, not {type(public_key).__name__}"
        )
    return public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_public_key_pem(data: bytes | str, *, source: str | None = None) -> PublicKey:
    """The Ed25519 or X25519 public key in PEM ``data``; ``InvalidKeyFile`` for anything else."""
    if isinstance(data, str):
        try:
            data = data.encode("ascii")
        except UnicodeEncodeError:
            raise InvalidKeyFile(source) from None
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        if is_private_key(data):
            raise WrongKeyKind(source, wanted="public") from None
        raise InvalidKeyFile(source) from None
    if not isinstance(key, Ed25519PublicKey | X25519PublicKey):
        raise InvalidKeyFile(source)
    return key
