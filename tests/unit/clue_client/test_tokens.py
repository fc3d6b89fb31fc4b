"""Tokens: a known-answer vector, the wire encoding and its strict parser."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clue_client.tokens import TOKEN_BYTES, decode_token, derive_token, encode_token

PROPERTY = settings(max_examples=200, deadline=None)

KAT_KEY = bytes(range(32))
KAT_TYPE = "phone"
KAT_CANONICAL = "+819012345678"
# Computed once from the documented layout and cross-checked with
#   printf 'clue/v1\0phone\0+819012345678' | \
#     openssl dgst -sha256 -mac HMAC -macopt hexkey:000102...1f
# A change of the message layout, the hash or the encoding breaks these literals.
KAT_HEX = "195cfaad194108851e87209113cff14a67bd1ad2f63a27f332daec23d1ee8823"
KAT_TEXT = "GVz6rRlBCIUehyCRE8_xSme9GtL2OifzMtrsI9HuiCM"


def test_known_answer() -> None:
    message = b"clue/v1" + b"\x00" + b"phone" + b"\x00" + b"+819012345678"
    expected = hmac.new(KAT_KEY, message, hashlib.sha256).digest()
    token = derive_token(KAT_KEY, KAT_TYPE, KAT_CANONICAL)
    assert token == expected
    assert token.hex() == KAT_HEX
    assert encode_token(token) == KAT_TEXT
    assert decode_token(KAT_TEXT) == token


def test_non_ascii_canonical_is_utf8() -> None:
    key = bytes(range(32, 64))
    canonical = "端末-42"
    message = b"clue/v1\x00device_id\x00" + canonical.encode("utf-8")
    assert derive_token(key, "device_id", canonical) == hmac.digest(key, message, "sha256")


def test_type_and_key_separate_tokens() -> None:
    base = derive_token(KAT_KEY, "phone", "+819012345678")
    assert len(base) == TOKEN_BYTES
    assert derive_token(KAT_KEY, "device_id", "+819012345678") != base
    assert derive_token(bytes(range(1, 33)), "phone", "+819012345678") != base
    assert derive_token(KAT_KEY, "phone", "+819012345679") != base
    # The NUL separator keeps (type, value) boundaries unambiguous.
    assert derive_token(KAT_KEY, "ab", "c") != derive_token(KAT_KEY, "a", "bc")


def test_longer_keys_and_bytearray_are_accepted() -> None:
    key = bytes(range(64))
    assert len(derive_token(key, "phone", "+819012345678")) == TOKEN_BYTES
    assert derive_token(bytearray(KAT_KEY), KAT_TYPE, KAT_CANONICAL).hex() == KAT_HEX


@pytest.mark.parametrize("key", [b"", b"short", bytes(31)])
def test_short_key_is_rejected(key: bytes) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        derive_token(key, "phone", "+819012345678")


def test_non_bytes_key_is_rejected() -> None:
    with pytest.raises(TypeError):
        derive_token("k" * 32, "phone", "+819012345678")  # type: ignore[arg-type]


@pytest.mark.parametrize("id_type", ["", "ph\x00one"])
def test_bad_type_is_rejected(id_type: str) -> None:
    with pytest.raises(ValueError, match="id_type"):
        derive_token(KAT_KEY, id_type, "+819012345678")


def test_unencodable_canonical_is_rejected() -> None:
    with pytest.raises(ValueError, match="UTF-8"):
        derive_token(KAT_KEY, "device_id", "\ud800")


@pytest.mark.parametrize("token", [b"", bytes(31), bytes(33), "x" * 32])
def test_encode_rejects_wrong_size(token: bytes) -> None:
    with pytest.raises(ValueError):
        encode_token(token)


@PROPERTY
@given(st.binary(min_size=TOKEN_BYTES, max_size=TOKEN_BYTES))
def test_encode_decode_round_trip(token: bytes) -> None:
    text = encode_token(token)
    assert len(text) == 43
    assert "=" not in text
    assert text == base64.urlsafe_b64encode(token).decode("ascii").rstrip("=")
    assert decode_token(text) == token


# Last character of KAT_TEXT is "M" (0b001100): its two low bits carry nothing. "N" sets
# one of them, which a lenient decoder would silently accept as the same token.
NON_CANONICAL = KAT_TEXT[:-1] + "N"


@pytest.mark.parametrize(
    "text",
    [
        KAT_TEXT + "=",  # padding
        base64.urlsafe_b64encode(bytes.fromhex(KAT_HEX)).decode(),  # padded form
        KAT_TEXT[:-1],  # 42 characters
        KAT_TEXT + "A",  # 44 characters
        "",
        "+" + KAT_TEXT[1:],  # standard-alphabet characters
        "/" + KAT_TEXT[1:],
        "é" + KAT_TEXT[1:],  # non-ASCII
        "Ａ" + KAT_TEXT[1:],  # full-width letter that NFKC would fold to "A"
        "٣" + KAT_TEXT[1:],  # a non-ASCII digit
        " " + KAT_TEXT[1:],
        KAT_TEXT[:-1] + "\n",
        KAT_TEXT + "\n",
        NON_CANONICAL,
        base64.b64encode(bytes(range(200, 232))).decode().rstrip("="),  # has + and /
    ],
)
def test_decode_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        decode_token(text)


@pytest.mark.parametrize("value", [None, 42, KAT_TEXT.encode(), ["x"]])
def test_decode_rejects_non_str(value: object) -> None:
    with pytest.raises(ValueError):
        decode_token(value)  # type: ignore[arg-type]


@PROPERTY
@given(st.one_of(st.text(max_size=50), st.from_regex(r"[A-Za-z0-9_-]{43}", fullmatch=True)))
def test_decode_random_text(text: str) -> None:
    try:
        token = decode_token(text)
    except ValueError:
        return
    assert len(token) == TOKEN_BYTES
    assert encode_token(token) == text  # one token, one text
