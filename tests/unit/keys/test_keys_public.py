"""Public key files: portable PEM SubjectPublicKeyInfo."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import keys

# RFC 8410 section 10.1: an Ed25519 public key in SubjectPublicKeyInfo PEM
RFC8410_PEM = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
    "-----END PUBLIC KEY-----\n"
)
RFC8410_RAW = bytes.fromhex("19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1")


def test_reads_the_rfc8410_example() -> None:
    public = keys.load_public_key_pem(RFC8410_PEM)
    assert public.public_bytes_raw() == RFC8410_RAW
    assert keys.public_key_pem(public) == RFC8410_PEM


@pytest.mark.parametrize("make", [keys.generate_signing_key, keys.generate_hpke_key])
def test_round_trip(tmp_path: Path, make: object) -> None:
    private = make()  # type: ignore[operator]
    public = private.public_key()
    path = tmp_path / "pub" / "key.pub"
    old = os.umask(0o077)
    try:
        keys.save_public_key(path, public)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    text = path.read_text("ascii")
    assert text.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert text == keys.public_key_pem(public)
    loaded = keys.load_public_key(path)
    assert type(loaded) is type(public)
    assert loaded.public_bytes_raw() == public.public_bytes_raw()
    assert keys.load_public_key_pem(text.encode()).public_bytes_raw() == public.public_bytes_raw()
    assert keys.fingerprint(loaded) == keys.fingerprint(private)


def test_refuses_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "k.pub"
    keys.save_public_key(path, keys.generate_signing_key().public_key())
    with pytest.raises(FileExistsError):
        keys.save_public_key(path, keys.generate_signing_key().public_key())
    replacement = keys.generate_signing_key().public_key()
    keys.save_public_key(path, replacement, overwrite=True)
    assert keys.load_public_key(path).public_bytes_raw() == replacement.public_bytes_raw()


def test_other_keys_and_garbage_are_invalid(tmp_path: Path) -> None:
    ec_public = ec.generate_private_key(ec.SECP256R1()).public_key()
    ec_pem = ec_public.public_bytes(serialization.Encoding.PEM,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)
    private_pem = keys.generate_signing_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    for data in (ec_pem, private_pem, b"", b"garbage", RFC8410_PEM[:40].encode(), "ünïcode"):
        with pytest.raises(keys.InvalidKeyFile):
            keys.load_public_key_pem(data)
    path = tmp_path / "bad.pub"
    path.write_bytes(ec_pem)
    with pytest.raises(keys.InvalidKeyFile) as caught:
        keys.load_public_key(path)
    assert str(path) in str(caught.value)


def test_public_key_pem_rejects_private_keys() -> None:
    with pytest.raises(TypeError):
        keys.public_key_pem(keys.generate_signing_key())  # type: ignore[arg-type]
