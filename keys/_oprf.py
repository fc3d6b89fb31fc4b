"""An oblivious PRF: RFC 9497, OPRF mode (0x00), ciphersuite ristretto255-SHA512.

The member (client) holds an input, the server holds a key; together they compute
``Finalize = PRF(key, input)`` so that the member learns the 64-byte output and the
server learns nothing about the input or the output::

    member                                      server (OprfKey)
    state = oprf_blind(token)
    state.blinded_element     ----------------->
                              <-----------------  key.blind_evaluate(blinded_element)
    output = oprf_finalize(state, evaluated_element)

    output == key.evaluate(token)     # the server's direct evaluation (registration)

Example::

    >>> key = OprfKey.derive(bytes(32), b"clue oprf example")
    >>> state = oprf_blind(b"an input")
    >>> evaluated = key.blind_evaluate(state.blinded_element)
    >>> oprf_finalize(state, evaluated) == key.evaluate(b"an input")
    True

What is written here and why: libsodium (``_ristretto255``) gives every group and
scalar operation, but no library we can use gives the two hash functions RFC 9497
builds on them, so these few lines are written by hand from the RFCs and checked
against their published vectors (tests/unit/keys/test_keys_oprf.py):

* ``expand_message_xmd`` with SHA-512 (RFC 9380 §5.3.1), and from it HashToGroup
  (hash_to_ristretto255, RFC 9380 appendix B / RFC 9496 §4.3.4, whose one-way map is
  libsodium's ``crypto_core_ristretto255_from_hash``) and HashToScalar (RFC 9497 §4.1);
* RFC 9497's context string, DeriveKeyPair and the Finalize/Evaluate hash encodings.

Every malformed element (wrong length, non-canonical encoding, the identity) and every
input the protocol cannot take ends in one opaque :class:`OprfError`, like
``InvalidKeyFile``: a caller probing the server learns nothing from which check failed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import _ristretto255 as group
from ._errors import KeyFileError

__all__ = [
    "OPRF_CONTEXT",
    "OPRF_ELEMENT_BYTES",
    "OPRF_OUTPUT_BYTES",
    "OPRF_SUITE",
    "OprfBlind",
    "OprfError",
    "OprfKey",
    "oprf_blind",
    "oprf_blind_batch",
    "oprf_finalize",
    "oprf_finalize_batch",
]

OPRF_SUITE = "ristretto255-SHA512"
MODE_OPRF = 0x00
#: RFC 9497 §3.2: "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier.
OPRF_CONTEXT = b"OPRFV1-" + bytes([MODE_OPRF]) + b"-" + OPRF_SUITE.encode("ascii")
OPRF_ELEMENT_BYTES = group.ELEMENT_BYTES
OPRF_SCALAR_BYTES = group.SCALAR_BYTES
OPRF_OUTPUT_BYTES = 64  # Nh of SHA-512
MAX_INPUT_BYTES = 0xFFFF  # the input's length travels as I2OSP(len, 2)

_HASH_TO_GROUP_DST = b"HashToGroup-" + OPRF_CONTEXT
_HASH_TO_SCALAR_DST = b"HashToScalar-" + OPRF_CONTEXT
_DERIVE_KEY_PAIR_DST = b"DeriveKeyPair" + OPRF_CONTEXT
_FINALIZE = b"Finalize"
_ZERO_SCALAR = bytes(OPRF_SCALAR_BYTES)
# SHA-512 after absorbing Z_pad (one 128-byte block of zeros): copied for every b_0.
_ZPAD_SHA512 = hashlib.sha512(bytes(128))


class OprfError(KeyFileError):
    """An OPRF input, element or key cannot be used, for a reason we do not say.

    Raised alike for an element of the wrong length, a non-canonical encoding, the
    identity element, a zero or non-canonical scalar, and an input too long to encode.
    """

    def __init__(self) -> None:
        super().__init__("invalid OPRF input, element or key")


# -- RFC 9380: expand_message_xmd with SHA-512 -----------------------------------------------

def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """RFC 9380 §5.3.1 with H = SHA-512 (b_in_bytes 64, s_in_bytes 128).

    A DST longer than 255 bytes is refused instead of hashed (§5.3.3): every DST here is
    a short constant.
    """
    ell = -(-len_in_bytes // 64)
    if not 0 < len_in_bytes <= 0xFFFF or ell > 255 or len(dst) > 255:
        raise ValueError("expand_message_xmd: length or DST out of range")
    dst_prime = dst + bytes([len(dst)])
    state = _ZPAD_SHA512.copy()
    state.update(msg + len_in_bytes.to_bytes(2, "big") + b"\x00" + dst_prime)
    b_0 = state.digest()
    b_i = hashlib.sha512(b_0 + b"\x01" + dst_prime).digest()
    uniform = [b_i]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b_0, b_i, strict=True))
        b_i = hashlib.sha512(mixed + bytes([i]) + dst_prime).digest()
        uniform.append(b_i)
    return b"".join(uniform)[:len_in_bytes]


# -- RFC 9497 §4.1: the ristretto255 group's hash functions ----------------------------------

def _hash_to_group(data: bytes) -> bytes:
    return group.from_hash(expand_message_xmd(data, _HASH_TO_GROUP_DST, group.HASH_BYTES))


def _hash_to_scalar(data: bytes, dst: bytes = _HASH_TO_SCALAR_DST) -> bytes:
    return group.scalar_reduce(expand_message_xmd(data, dst, group.NONREDUCED_SCALAR_BYTES))


def _input_element(prf_input: bytes) -> bytes:
    _check_input(prf_input)
    element = _hash_to_group(prf_input)
    if hmac.compare_digest(element, group.IDENTITY):  # RFC 9497: InvalidInputError
        raise OprfError
    return element


def _check_input(prf_input: bytes) -> None:
    if not isinstance(prf_input, bytes):
        raise TypeError("an OPRF input is bytes")
    if len(prf_input) > MAX_INPUT_BYTES:
        raise OprfError


def _check_element(element: bytes) -> bytes:
    """RFC 9497 DeserializeElement: canonical, not the identity. (libsodium's
    scalarmult checks canonicity again and refuses an identity result.)"""
    if not isinstance(element, bytes | bytearray):
        raise TypeError("an OPRF element is bytes")
    element = bytes(element)
    if len(element) != OPRF_ELEMENT_BYTES or hmac.compare_digest(element, group.IDENTITY):
        raise OprfError
    return element


def _mult(scalar: bytes, element: bytes) -> bytes:
    try:
        return group.scalarmult(scalar, _check_element(element))
    except ValueError:
        raise OprfError from None


def _finalize_hash(prf_input: bytes, element: bytes) -> bytes:
    return hashlib.sha512(
        len(prf_input).to_bytes(2, "big") + prf_input
        + len(element).to_bytes(2, "big") + element + _FINALIZE
    ).digest()


# -- the server ------------------------------------------------------------------------------

class OprfKey:
    """The server's OPRF private key ``skS`` (a non-zero scalar).

    Its ``repr`` never shows the scalar. Make one with :meth:`derive` (RFC 9497
    DeriveKeyPair, from a 32-byte secret seed kept like any other server secret) or
    :meth:`generate` (GenerateKeyPair).
    """

    __slots__ = ("_scalar",)

    def __init__(self, scalar: bytes) -> None:
        self._scalar = _check_scalar(scalar)

    @classmethod
    def derive(cls, seed: bytes, info: bytes) -> OprfKey:
        """RFC 9497 §3.2.1 DeriveKeyPair(seed, info) for this suite."""
        if not isinstance(seed, bytes) or len(seed) != OPRF_SCALAR_BYTES:
            raise ValueError(f"an OPRF seed is {OPRF_SCALAR_BYTES} bytes")
        if not isinstance(info, bytes) or len(info) > MAX_INPUT_BYTES:
            raise ValueError("info is bytes, at most 65535 of them")
        derive_input = seed + len(info).to_bytes(2, "big") + info
        for counter in range(256):
            scalar = _hash_to_scalar(derive_input + bytes([counter]), _DERIVE_KEY_PAIR_DST)
            if not hmac.compare_digest(scalar, _ZERO_SCALAR):
                return cls(scalar)
        raise OprfError  # DeriveKeyPairError: probability about 256 / 2^252

    @classmethod
    def generate(cls) -> OprfKey:
        """RFC 9497 §3.2.1 GenerateKeyPair: a uniformly random non-zero scalar."""
        return cls(group.scalar_random())

    @classmethod
    def from_bytes(cls, data: bytes) -> OprfKey:
        """The key from its 32-byte little-endian scalar; :class:`OprfError` unless
        canonical (below the group order) and non-zero."""
        return cls(data)

    def private_bytes(self) -> bytes:
        """The scalar, 32 bytes little-endian (SerializeScalar). A secret."""
        return self._scalar

    def blind_evaluate(self, blinded_element: bytes) -> bytes:
        """RFC 9497 BlindEvaluate: ``skS * blindedElement``, serialized (32 bytes)."""
        return _mult(self._scalar, blinded_element)

    def blind_evaluate_batch(self, blinded_elements: Sequence[bytes]) -> list[bytes]:
        """:meth:`blind_evaluate` of each; one bad element refuses the whole batch."""
        return [_mult(self._scalar, element) for element in blinded_elements]

    def evaluate(self, prf_input: bytes) -> bytes:
        """RFC 9497 Evaluate: the PRF computed directly from the input (64 bytes).

        Equal to what a client gets from blind, :meth:`blind_evaluate` and finalize.
        """
        element = group.scalarmult(self._scalar, _input_element(prf_input))
        return _finalize_hash(prf_input, element)

    def __repr__(self) -> str:
        return "OprfKey(<secret>)"


def _check_scalar(scalar: bytes) -> bytes:
    if not isinstance(scalar, bytes):
        raise TypeError("an OPRF scalar is bytes")
    if len(scalar) != OPRF_SCALAR_BYTES or hmac.compare_digest(scalar, _ZERO_SCALAR):
        raise OprfError
    # Canonical iff reducing it (as a 64-byte number) changes nothing.
    if not hmac.compare_digest(group.scalar_reduce(scalar + _ZERO_SCALAR), scalar):
        raise OprfError
    return scalar


# -- the client ------------------------------------------------------------------------------

@dataclass(frozen=True)
class OprfBlind:
    """A client's state between :func:`oprf_blind` and :func:`oprf_finalize`.

    Send ``blinded_element``; keep the rest (the blind is secret: anyone who has it and
    sees ``blinded_element`` learns ``HashToGroup(input)``).
    """

    prf_input: bytes = field(repr=False)
    blinded_element: bytes
    blind: bytes = field(repr=False)


def oprf_blind(prf_input: bytes) -> OprfBlind:
    """RFC 9497 Blind with a fresh random blind."""
    return _blind_with(prf_input, group.scalar_random())


def oprf_blind_batch(prf_inputs: Sequence[bytes]) -> list[OprfBlind]:
    """:func:`oprf_blind` of each input, each with its own blind."""
    return [oprf_blind(prf_input) for prf_input in prf_inputs]


def _blind_with(prf_input: bytes, blind: bytes) -> OprfBlind:
    """Blind with a given scalar: only the known-answer tests choose the blind."""
    element = _input_element(prf_input)
    blinded = group.scalarmult(_check_scalar(blind), element)
    return OprfBlind(prf_input=prf_input, blinded_element=blinded, blind=blind)


def oprf_finalize(state: OprfBlind, evaluated_element: bytes) -> bytes:
    """RFC 9497 Finalize: unblind the server's answer and hash it (64 bytes)."""
    return _unblind(state, group.scalar_invert(state.blind), evaluated_element)


def oprf_finalize_batch(states: Sequence[OprfBlind],
                        evaluated_elements: Sequence[bytes]) -> list[bytes]:
    """:func:`oprf_finalize` of each pair; one bad element refuses the whole batch.

    The blinds are inverted together (Montgomery's trick: one inversion and three
    scalar multiplications each), which is most of what finalizing costs.
    """
    if len(states) != len(evaluated_elements):
        raise ValueError("one evaluated element per blinded input")
    inverses = _batch_invert([state.blind for state in states])
    return [_unblind(state, inverse, evaluated)
            for state, inverse, evaluated in zip(states, inverses, evaluated_elements,
                                                 strict=True)]


def _unblind(state: OprfBlind, blind_inverse: bytes, evaluated_element: bytes) -> bytes:
    return _finalize_hash(state.prf_input, _mult(blind_inverse, evaluated_element))


def _batch_invert(scalars: Sequence[bytes]) -> list[bytes]:
    if not scalars:
        return []
    prefix = [scalars[0]]
    for scalar in scalars[1:]:
        prefix.append(group.scalar_mul(prefix[-1], scalar))
    inverse = group.scalar_invert(prefix[-1])  # of the product of them all
    inverses = [b""] * len(scalars)
    for i in range(len(scalars) - 1, 0, -1):
        inverses[i] = group.scalar_mul(inverse, prefix[i - 1])
        inverse = group.scalar_mul(inverse, scalars[i])
    inverses[0] = inverse
    return inverses
