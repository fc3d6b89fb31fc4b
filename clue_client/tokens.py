"""Tokens: what the SDK sends instead of an identifier.

``token = HMAC-SHA256(network_key, b"clue/v1" || 0x00 || type || 0x00 || canonical)``
with ``type`` and ``canonical`` encoded as UTF-8. The network key is held by members
only, so the server cannot test a guessed identifier against the tokens it stores.
On the wire a token is base64url without padding (43 characters), sent together with
the version of the network key that made it.

>>> token = derive_token(bytes(range(32)), "phone", "+819012345678")
>>> text = encode_token(token)
>>> len(text), decode_token(text) == token
(43, True)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

__all__ = [
    "MIN_NETWORK_KEY_BYTES",
    "TOKEN_BYTES",
    "TOKEN_DOMAIN",
    "TOKEN_TEXT_LENGTH",
    "decode_token",
    "derive_token",
    "encode_token",
]

TOKEN_BYTES = 32
TOKEN_TEXT_LENGTH = 43  # ceil(32 * 8 / 6) base64 characters, no padding
MIN_NETWORK_KEY_BYTES = 32
# Domain-separation prefix: a protocol change gets a new label, so tokens made under
# different layouts can never collide.
TOKEN_DOMAIN = b"clue/v1"

_TOKEN_TEXT = re.compile(r"[A-Za-z0-9_-]{43}")


def derive_token(network_key: bytes, id_type: str, canonical: str) -> bytes:
    """Return the 32-byte token of ``canonical`` (an identifier of type ``id_type``).

    ``canonical`` must already be in canonical form (see :mod:`clue_client.canonical`);
    this function does not re-canonicalise. Raises :class:`ValueError` for a key shorter
    than 32 bytes, an empty ``id_type`` or one containing NUL (which would make the
    layout ambiguous), or text that cannot be encoded as UTF-8.
    """
    if not isinstance(network_key, bytes | bytearray):
        raise TypeError("network_key must be bytes")
    if len(network_key) < MIN_NETWORK_KEY_BYTES:
        raise ValueError(f"network_key must be at least {MIN_NETWORK_KEY_BYTES} bytes")
    if not isinstance(id_type, str) or not isinstance(canonical, str):
        raise TypeError("id_type and canonical must be str")
    # The type is NUL-terminated; a NUL inside it would let ("a\0b", "c") and
    # ("a", "b\0c") share a message. The canonical value is last, so NULs there are
    # harmless, but canonical forms never contain them anyway.
    if not id_type or "\x00" in id_type:
        raise ValueError("id_type must be non-empty and contain no NUL")
    try:
        type_bytes = id_type.encode("utf-8")
        canonical_bytes = canonical.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("id_type and canonical must be encodable as UTF-8") from exc
    message = b"".join((TOKEN_DOMAIN, b"\x00", type_bytes, b"\x00", canonical_bytes))
    return hmac.digest(bytes(network_key), message, hashlib.sha256)


def encode_token(token: bytes) -> str:
    """Return ``token`` as base64url without ``=`` padding (43 characters)."""
    if not isinstance(token, bytes | bytearray) or len(token) != TOKEN_BYTES:
        raise ValueError(f"a token is exactly {TOKEN_BYTES} bytes")
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")


def decode_token(text: str) -> bytes:
    """Parse a token sent on the wire; the inverse of :func:`encode_token`.

    Strict, because the text comes from the network: exactly 43 characters of the
    base64url alphabet, no padding, and the canonical encoding of 32 bytes (the unused
    low bits of the last character must be zero, so one token has exactly one text).
    Anything else raises :class:`ValueError`.
    """
    # fullmatch on str rejects non-ASCII, "+", "/", "=" and every other length; the
    # isinstance check keeps non-str JSON values (numbers, null) a ValueError too.
    if not isinstance(text, str) or _TOKEN_TEXT.fullmatch(text) is None:
        raise ValueError(f"a token is {TOKEN_TEXT_LENGTH} base64url characters without padding")
    try:
        token = base64.urlsafe_b64decode(text + "=")
    except binascii.Error as exc:  # unreachable after the regex; kept as a guard
        raise ValueError("a token is base64url") from exc
    if encode_token(token) != text:
        raise ValueError("non-canonical token encoding")
    return token
