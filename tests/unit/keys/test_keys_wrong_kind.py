"""A key file of the wrong kind is named for what it is (issue 12).

A public key configured as the signing key used to get "run chmod 600" (a .pub is
mode 0644); a private key given where the server's public key belongs got the opaque
"corrupt, tampered with ..." message. Neither mistake reveals a secret, so each gets a
message that says what to do, while real tampering stays one opaque message.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import keys


@pytest.mark.parametrize("mode", [0o644, 0o600])
def test_a_public_key_loaded_as_a_private_key_says_so(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "member-signing.pub"
    keys.save_public_key(path, keys.generate_signing_key().public_key())
    path.chmod(mode)
    for load in (keys.load_private_key, keys.load_symmetric_key):
        with pytest.raises(keys.WrongKeyKind) as caught:
            load(path)
        message = str(caught.value)
        assert "this is a public key" in message and ".key" in message, message
        assert "chmod" not in message
        assert isinstance(caught.value, keys.InvalidKeyFile)  # old handlers still catch it


def test_a_loose_real_private_key_still_gets_chmod(tmp_path: Path) -> None:
    path = tmp_path / "member-signing.key"
    keys.save_private_key(path, keys.generate_signing_key(), purpose="member-signing")
    path.chmod(0o644)
    with pytest.raises(keys.InsecureKeyFile, match="chmod 600"):
        keys.load_private_key(path)


def _openssl_pem(tmp_path: Path) -> Path:
    path = tmp_path / "openssl.pem"
    path.write_bytes(keys.generate_signing_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return path


def _clue_private(tmp_path: Path) -> Path:
    path = tmp_path / "member-signing.key"
    keys.save_private_key(path, keys.generate_signing_key(), purpose="member-signing")
    return path


def _clue_sealed(tmp_path: Path) -> Path:
    path = tmp_path / "member-hpke.key"
    keys.save_private_key(path, keys.generate_hpke_key(), purpose="member-hpke",
                          passphrase=b"pw", kdf_params=keys.Argon2Params(t=1, m=8, p=1))
    return path


@pytest.mark.parametrize("make", [_openssl_pem, _clue_private, _clue_sealed])
def test_a_private_key_loaded_as_a_public_key_says_so(tmp_path: Path, make: object) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(keys.WrongKeyKind) as caught:
        keys.load_public_key(path)
    assert "this is a private key" in str(caught.value)
    assert ".pub" in str(caught.value)


@pytest.mark.parametrize("data", [b"", b"garbage", b"\x00\xff" * 10,
                                  b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                                  b'{"not": "a key"}'])
def test_garbage_stays_the_opaque_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.pub"
    path.write_bytes(data)
    with pytest.raises(keys.InvalidKeyFile) as caught:
        keys.load_public_key(path)
    assert not isinstance(caught.value, keys.WrongKeyKind)
    path.chmod(0o600)
    with pytest.raises(keys.InvalidKeyFile) as caught:
        keys.load_private_key(path)
    assert not isinstance(caught.value, keys.WrongKeyKind)
