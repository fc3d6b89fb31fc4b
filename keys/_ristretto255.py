"""The ristretto255 group, from libsodium, through pysodium: the only door to it.

No curve arithmetic is written in this project. Every group and scalar operation the
OPRF needs is one libsodium call (libsodium >= 1.0.18 has ristretto255), reached
through ``pysodium`` (a maintained ctypes binding to the system's libsodium). PyNaCl,
the obvious choice, does not expose libsodium's ristretto255 functions (its pull
request for them, pyca/pynacl#646, is still open); ``rbcl`` bundles libsodium but
writes a fresh copy of it to a temporary file on every import. Keeping the calls in
this one small module makes a later switch a one-file change.

Every function checks the lengths of what it passes (libsodium reads a fixed number of
bytes from each pointer) and turns a failing libsodium call into ``ValueError``; the
OPRF layer above maps that to its one opaque error.

libsodium is loaded on first use, not on import, so the rest of ``keys`` (and the v1
protocol) keeps working on a machine without it.
"""

from __future__ import annotations

import functools
from typing import Any

ELEMENT_BYTES = 32
SCALAR_BYTES = 32
HASH_BYTES = 64  # crypto_core_ristretto255_HASHBYTES: the input of the one-way map
NONREDUCED_SCALAR_BYTES = 64
IDENTITY = bytes(ELEMENT_BYTES)  # the identity element's (unique, canonical) encoding

_MIN_LIBSODIUM = (1, 0, 18)


class LibsodiumMissing(RuntimeError):
    """libsodium (>= 1.0.18) cannot be loaded: private look-ups are unavailable."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"libsodium >= 1.0.18 is required for the OPRF (private look-ups): {detail}. "
            "Install it with the system's package manager (Debian: apt-get install libsodium23)"
        )


@functools.cache
def _sodium() -> Any:
    try:
        import pysodium
    except (ImportError, OSError, ValueError) as exc:  # pysodium raises ValueError if not found
        raise LibsodiumMissing(str(exc) or type(exc).__name__) from exc
    version = (pysodium.sodium_major, pysodium.sodium_minor, pysodium.sodium_patch)
    if version < _MIN_LIBSODIUM:
        raise LibsodiumMissing("found libsodium " + ".".join(map(str, version)))
    return pysodium


def _check(data: bytes, size: int) -> bytes:
    if not isinstance(data, bytes) or len(data) != size:
        raise ValueError(f"expected {size} bytes")
    return data


def from_hash(uniform: bytes) -> bytes:
    """The ristretto255 one-way map of 64 uniform bytes (RFC 9496 §4.3.4)."""
    return bytes(_sodium().crypto_core_ristretto255_from_hash(_check(uniform, HASH_BYTES)))


def scalar_reduce(wide: bytes) -> bytes:
    """A 64-byte little-endian integer reduced modulo the group order."""
    out = _sodium().crypto_core_ristretto255_scalar_reduce(_check(wide, NONREDUCED_SCALAR_BYTES))
    return bytes(out)


def scalar_random() -> bytes:
    """A uniformly random non-zero scalar (libsodium loops until it is non-zero)."""
    return bytes(_sodium().crypto_core_ristretto255_scalar_random())


def scalar_invert(scalar: bytes) -> bytes:
    """1/scalar; ``ValueError`` for zero."""
    return bytes(_sodium().crypto_core_ristretto255_scalar_invert(_check(scalar, SCALAR_BYTES)))


def scalar_mul(a: bytes, b: bytes) -> bytes:
    """a*b modulo the group order."""
    out = _sodium().crypto_core_ristretto255_scalar_mul(
        _check(a, SCALAR_BYTES), _check(b, SCALAR_BYTES))
    return bytes(out)


def scalarmult(scalar: bytes, element: bytes) -> bytes:
    """scalar*element. ``ValueError`` if ``element`` is not a canonical encoding of a
    group element, or if the result is the identity (so also for the identity itself)."""
    out = _sodium().crypto_scalarmult_ristretto255(
        _check(scalar, SCALAR_BYTES), _check(element, ELEMENT_BYTES))
    return bytes(out)


def scalarmult_base(scalar: bytes) -> bytes:
    """scalar*G for the ristretto255 generator; ``ValueError`` for the zero scalar."""
    return bytes(_sodium().crypto_scalarmult_ristretto255_base(_check(scalar, SCALAR_BYTES)))


def is_valid_element(element: bytes) -> bool:
    """``element`` is a canonical encoding of a group element (the identity included)."""
    if not isinstance(element, bytes) or len(element) != ELEMENT_BYTES:
        return False
    return bool(_sodium().crypto_core_ristretto255_is_valid_point(element))
