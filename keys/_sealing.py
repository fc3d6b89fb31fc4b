"""Sealing key material under a passphrase: Argon2id then AES-256-GCM.

The AES-256-GCM key is ``Argon2id(passphrase, salt, t, m, p)`` (32 bytes, Argon2
version 0x13). The associated data is the canonical JSON of the file's metadata *and*
its KDF parameters, so editing any of them makes opening fail.

Tests and development tools that seal many files may pass cheaper parameters with the
``kdf_params`` keyword of the save functions, or monkeypatch ``DEFAULT_KDF_PARAMS`` in
this module (it is read at call time).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SALT_SIZE = 16
NONCE_SIZE = 12
KDF_NAME = "argon2id"

# Bounds on what a file may ask for, so an edited file cannot make loading take hours
# or gigabytes. They bound saving too.
MAX_TIME_COST = 16
MAX_MEMORY_KIB = 1024 * 1024  # 1 GiB
MAX_PARALLELISM = 16


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id cost parameters: ``t`` passes, ``m`` KiB of memory, ``p`` lanes."""

    t: int = 3
    m: int = 64 * 1024  # 64 MiB
    p: int = 1

    def __post_init__(self) -> None:
        for name, value in (("t", self.t), ("m", self.m), ("p", self.p)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"Argon2 parameter {name} must be an integer")
        if not 1 <= self.t <= MAX_TIME_COST:
            raise ValueError(f"Argon2 t must be in 1..{MAX_TIME_COST}")
        if not 1 <= self.p <= MAX_PARALLELISM:
            raise ValueError(f"Argon2 p must be in 1..{MAX_PARALLELISM}")
        if not 8 * self.p <= self.m <= MAX_MEMORY_KIB:
            raise ValueError(f"Argon2 m must be in {8 * self.p}..{MAX_MEMORY_KIB} KiB")


DEFAULT_KDF_PARAMS = Argon2Params()


def _derive(passphrase: bytes, salt: bytes, params: Argon2Params) -> bytes:
    return hash_secret_raw(
        secret=passphrase,
        salt=salt,
        time_cost=params.t,
        memory_cost=params.m,
        parallelism=params.p,
        hash_len=32,
        type=Type.ID,
    )


@dataclass(frozen=True)
class Sealed:
    """The ``"sealed"`` object of a key file, decoded."""

    params: Argon2Params
    salt: bytes
    nonce: bytes
    ciphertext: bytes


def new_seal_header(params: Argon2Params | None) -> tuple[Argon2Params, bytes]:
    """Parameters and a fresh salt for a new seal (the header goes into the AAD)."""
    return params or DEFAULT_KDF_PARAMS, secrets.token_bytes(SALT_SIZE)


def seal(plaintext: bytes, passphrase: bytes, params: Argon2Params, salt: bytes,
         aad: bytes) -> Sealed:
    nonce = secrets.token_bytes(NONCE_SIZE)
    key = _derive(passphrase, salt, params)
    return Sealed(params, salt, nonce, AESGCM(key).encrypt(nonce, plaintext, aad))


def open_sealed(sealed: Sealed, passphrase: bytes, aad: bytes) -> bytes:
    """The plaintext; raises ``ValueError`` on any failure (the caller makes it opaque)."""
    if len(sealed.salt) != SALT_SIZE or len(sealed.nonce) != NONCE_SIZE:
        raise ValueError("bad seal")
    key = _derive(passphrase, sealed.salt, sealed.params)
    try:
        return AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, aad)
    except InvalidTag:
        raise ValueError("bad seal") from None
