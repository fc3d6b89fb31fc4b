"""Fingerprints and key ids, pinned on the RFC 8032 test 1 key and RFC 9180 A.1.1 key."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

import keys

# RFC 8032 section 7.1, TEST 1
ED25519_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
ED25519_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
# RFC 9180 A.1.1 skRm / pkRm
X25519_SECRET = bytes.fromhex("4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8")
X25519_PUBLIC = bytes.fromhex("3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d")


def sha256_b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_ed25519_fingerprint_and_key_id() -> None:
    private = Ed25519PrivateKey.from_private_bytes(ED25519_SECRET)
    assert private.public_key().public_bytes_raw() == ED25519_PUBLIC
    expected = "SHA256:If4x36FUomFia_hUBG_SJxt77UtqvkWqWId-9H-XIbk"
    assert expected == "SHA256:" + sha256_b64url(ED25519_PUBLIC)
    assert keys.fingerprint(private) == expected
    assert keys.fingerprint(private.public_key()) == expected
    assert keys.key_id(private.public_key()) == "k-21fe31dfa154a261"
    assert keys.key_id(private.public_key()) == \
        "k-" + hashlib.sha256(ED25519_PUBLIC).hexdigest()[:16]


def test_x25519_fingerprint() -> None:
    private = X25519PrivateKey.from_private_bytes(X25519_SECRET)
    expected = "SHA256:iyKM11q3C62-wb61Iz8GimhP6Bx8YmHAyKevMg6dhBs"
    assert expected == "SHA256:" + sha256_b64url(X25519_PUBLIC)
    assert keys.fingerprint(private) == keys.fingerprint(private.public_key()) == expected


def test_symmetric_fingerprint_is_keyed_not_a_hash() -> None:
    secret = bytes(range(32))
    key = keys.SymmetricKey("network", 1, secret, datetime(2025, 1, 1, tzinfo=UTC))
    fp = keys.fingerprint(key)
    assert fp == "HMAC-SHA256:E39_59rf2qAeNQ937Eh_Rg"
    body = fp.split(":", 1)[1]
    plain = hashlib.sha256(secret)
    for digest in (plain.hexdigest(), sha256_b64url(secret),
                   base64.b64encode(plain.digest()).decode()):
        assert body not in digest
        assert digest[:16] not in fp


def test_symmetric_fingerprints_differ_per_key() -> None:
    first, second = keys.new_symmetric_key("pepper", 1), keys.new_symmetric_key("pepper", 1)
    assert keys.fingerprint(first) != keys.fingerprint(second)
    assert re.fullmatch(r"HMAC-SHA256:[A-Za-z0-9_-]{22}", keys.fingerprint(first))


def test_key_id_format_and_stability() -> None:
    public = keys.generate_signing_key().public_key()
    assert re.fullmatch(r"k-[0-9a-f]{16}", keys.key_id(public))
    assert keys.key_id(public) == keys.key_id(public)


def test_misuse_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        keys.key_id(keys.generate_hpke_key().public_key())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        keys.fingerprint(b"raw bytes")  # type: ignore[arg-type]
