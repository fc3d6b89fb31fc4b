"""Private and symmetric key files: round trips, sealing, tampering, permissions."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

import keys
import keys._sealing

PASSPHRASE = b"correct horse battery staple"
PRIVATE_PURPOSES = ("member-signing", "member-hpke", "server-signing")
SYMMETRIC_PURPOSES = ("network", "pepper", "member-notes", "oprf")


def new_private(purpose: str) -> keys.PrivateKey:
    return keys.generate_hpke_key() if purpose == "member-hpke" else keys.generate_signing_key()


def raw(key: keys.PrivateKey) -> bytes:
    return key.private_bytes_raw()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def test_purposes_constant() -> None:
    assert set(keys.PURPOSES) == set(PRIVATE_PURPOSES) | set(SYMMETRIC_PURPOSES)


# ------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "sealed"])
@pytest.mark.parametrize("purpose", PRIVATE_PURPOSES)
def test_private_round_trip(tmp_path: Path, purpose: str, sealed: bool) -> None:
    key = new_private(purpose)
    passphrase = PASSPHRASE if sealed else None
    path = tmp_path / f"{purpose}.key"
    info = keys.save_private_key(path, key, purpose=purpose, version=2, passphrase=passphrase)
    assert info.purpose == purpose and info.version == 2
    assert info.fingerprint == keys.fingerprint(key)
    loaded, loaded_info = keys.load_private_key(path, purpose=purpose, passphrase=passphrase)
    assert type(loaded) is type(key)
    assert raw(loaded) == raw(key)
    assert loaded_info == info
    assert keys.load_private_key(path, passphrase=passphrase)[1] == info  # purpose optional
    assert mode_of(path) == 0o600


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "sealed"])
@pytest.mark.parametrize("purpose", SYMMETRIC_PURPOSES)
def test_symmetric_round_trip(tmp_path: Path, purpose: str, sealed: bool,
                              fixed_now: datetime) -> None:
    key = keys.new_symmetric_key(purpose, 7, now=fixed_now)
    passphrase = PASSPHRASE if sealed else None
    path = keys.keyring_path(tmp_path, purpose, 7)
    info = keys.save_symmetric_key(path, key, passphrase=passphrase)
    assert info == keys.KeyInfo(purpose, 7, key.created, keys.fingerprint(key))
    assert keys.load_symmetric_key(path, purpose=purpose, passphrase=passphrase) == key
    assert keys.load_symmetric_key(path, passphrase=passphrase) == key
    assert mode_of(path) == 0o600


def test_injectable_now(tmp_path: Path, fixed_now: datetime) -> None:
    path = tmp_path / "k.key"
    info = keys.save_private_key(path, keys.generate_signing_key(), purpose="member-signing",
                                 now=fixed_now)
    assert info.created == datetime(2025, 4, 1, 9, 30, 15, tzinfo=UTC)
    assert json.loads(path.read_text())["created"] == "2025-04-01T09:30:15Z"
    assert keys.load_private_key(path)[1].created == info.created


def test_now_in_another_zone_is_stored_as_utc(tmp_path: Path) -> None:
    from datetime import timedelta, timezone

    jst = datetime(2025, 4, 1, 18, 0, tzinfo=timezone(timedelta(hours=9)))
    info = keys.save_private_key(tmp_path / "k.key", keys.generate_signing_key(),
                                 purpose="member-signing", now=jst)
    assert info.created == datetime(2025, 4, 1, 9, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        keys.save_private_key(tmp_path / "n.key", keys.generate_signing_key(),
                              purpose="member-signing", now=datetime(2025, 4, 1))


def test_created_defaults_to_current_time(tmp_path: Path) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    info = keys.save_private_key(tmp_path / "k.key", keys.generate_signing_key(),
                                 purpose="member-signing")
    assert before <= info.created <= datetime.now(UTC)


# ------------------------------------------------------------------------- file format


def test_plain_file_format(tmp_path: Path, fixed_now: datetime) -> None:
    key = keys.generate_signing_key()
    path = tmp_path / "member-signing.key"
    keys.save_private_key(path, key, purpose="member-signing", version=3, now=fixed_now)
    document = json.loads(path.read_text("utf-8"))
    assert document == {
        "clue_key": 1,
        "purpose": "member-signing",
        "version": 3,
        "created": "2025-04-01T09:30:15Z",
        "fingerprint": keys.fingerprint(key),
        "key": base64.b64encode(raw(key)).decode(),
    }


def test_sealed_file_format(tmp_path: Path) -> None:
    key = keys.generate_hpke_key()
    path = tmp_path / "member-hpke.key"
    params = keys.Argon2Params(t=2, m=16, p=2)
    keys.save_private_key(path, key, purpose="member-hpke", passphrase=PASSPHRASE,
                          kdf_params=params)
    text = path.read_text("utf-8")
    assert base64.b64encode(raw(key)).decode() not in text
    document = json.loads(text)
    assert "key" not in document
    sealed = document["sealed"]
    assert set(sealed) == {"kdf", "salt", "t", "m", "p", "nonce", "ciphertext"}
    assert (sealed["kdf"], sealed["t"], sealed["m"], sealed["p"]) == ("argon2id", 2, 16, 2)
    assert len(base64.b64decode(sealed["salt"])) == 16
    assert len(base64.b64decode(sealed["nonce"])) == 12
    assert len(base64.b64decode(sealed["ciphertext"])) == 32 + 16
    assert raw(keys.load_private_key(path, passphrase=PASSPHRASE)[0]) == raw(key)


def test_default_argon2_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys._sealing, "DEFAULT_KDF_PARAMS", keys.Argon2Params())
    path = tmp_path / "pepper-v1.key"
    key = keys.new_symmetric_key("pepper", 1)
    keys.save_symmetric_key(path, key, passphrase=PASSPHRASE)
    sealed = json.loads(path.read_text())["sealed"]
    assert (sealed["t"], sealed["m"], sealed["p"]) == (3, 64 * 1024, 1)
    assert keys.load_symmetric_key(path, passphrase=PASSPHRASE) == key


@pytest.mark.parametrize("params", [dict(t=0), dict(m=4), dict(p=0), dict(m=2 * 1024 * 1024),
                                    dict(t=True)])
def test_argon2_parameter_bounds(params: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        keys.Argon2Params(**params)


def test_two_seals_differ(tmp_path: Path) -> None:
    key = keys.new_symmetric_key("network", 1)
    keys.save_symmetric_key(tmp_path / "a.key", key, passphrase=PASSPHRASE)
    keys.save_symmetric_key(tmp_path / "b.key", key, passphrase=PASSPHRASE)
    a = json.loads((tmp_path / "a.key").read_text())["sealed"]
    b = json.loads((tmp_path / "b.key").read_text())["sealed"]
    assert a["salt"] != b["salt"] and a["ciphertext"] != b["ciphertext"]


# ------------------------------------------------------------------------- tampering


def edit(field: str, value: Any, *, sealed_field: bool = False) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        document = json.loads(data)
        target = document["sealed"] if sealed_field else document
        target[field] = value
        return json.dumps(document).encode()
    return apply


def flip_b64(field: str, index: int = 0) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        document = json.loads(data)
        target = document["sealed"] if field != "key" else document
        decoded = bytearray(base64.b64decode(target[field]))
        decoded[index] ^= 0x01
        target[field] = base64.b64encode(bytes(decoded)).decode()
        return json.dumps(document).encode()
    return apply


def drop(field: str) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        document = json.loads(data)
        document.pop(field)
        return json.dumps(document).encode()
    return apply


SEALED_TAMPERING: dict[str, Callable[[bytes], bytes]] = {
    "flipped ciphertext byte": flip_b64("ciphertext", 5),
    "flipped tag byte": flip_b64("ciphertext", -1),
    "flipped nonce": flip_b64("nonce"),
    "flipped salt": flip_b64("salt"),
    "edited purpose": edit("purpose", "server-signing"),
    "edited version": edit("version", 9),
    "edited created": edit("created", "2020-01-01T00:00:00Z"),
    "edited fingerprint": edit("fingerprint", "SHA256:" + "A" * 43),
    "edited t": edit("t", 2, sealed_field=True),
    "edited m": edit("m", 16, sealed_field=True),
    "absurd m": edit("m", 10**9, sealed_field=True),
    "edited kdf": edit("kdf", "scrypt", sealed_field=True),
    "extra field": edit("comment", "hi"),
    "missing field": drop("created"),
    "version as string": edit("version", "1"),
    "version as bool": edit("version", True),
    "format version": edit("clue_key", 2),
    "non-canonical base64": edit("salt", "!!!!", sealed_field=True),
    "both key and sealed": edit("key", base64.b64encode(bytes(32)).decode()),
    "truncated to half": lambda data: data[: len(data) // 2],
    "truncated by one": lambda data: data[:-2],
    "empty": lambda data: b"",
    "garbage json": lambda data: b"{not json",
    "json list": lambda data: b"[1, 2, 3]",
    "binary garbage": lambda data: bytes(range(256)),
    "invalid utf-8": lambda data: b'{"clue_key": "\xff"}',
    "duplicate field": lambda data: data.replace(b'"clue_key": 1,',
                                                 b'"clue_key": 1, "clue_key": 1,'),
    "deep nesting": lambda data: b"[" * 10_000 + b"]" * 10_000,
    "oversized": lambda data: data + b" " * 100_000,
}


def test_sealed_tampering_is_one_opaque_error(tmp_path: Path) -> None:
    path = tmp_path / "member-signing.key"
    keys.save_private_key(path, keys.generate_signing_key(), purpose="member-signing",
                          passphrase=PASSPHRASE)
    original = path.read_bytes()
    messages: dict[str, str] = {}
    for name, tamper in SEALED_TAMPERING.items():
        write_private(path, tamper(original))
        with pytest.raises(keys.InvalidKeyFile) as caught:
            keys.load_private_key(path, purpose="member-signing", passphrase=PASSPHRASE)
        assert caught.value.__cause__ is None, name
        messages[name] = str(caught.value)
    write_private(path, original)
    attempts: dict[str, Callable[[], object]] = {
        "wrong passphrase": lambda: keys.load_private_key(path, passphrase=b"wrong"),
        "empty passphrase": lambda: keys.load_private_key(path, passphrase=b""),
        "wrong purpose": lambda: keys.load_private_key(path, purpose="server-signing",
                                                       passphrase=PASSPHRASE),
        "loaded as symmetric": lambda: keys.load_symmetric_key(path, passphrase=PASSPHRASE),
    }
    for name, attempt in attempts.items():
        with pytest.raises(keys.InvalidKeyFile) as caught:
            attempt()
        messages[name] = str(caught.value)
    assert len(set(messages.values())) == 1, messages
    message = next(iter(messages.values()))
    assert str(path) in message
    for word in ("passphrase is wrong", "tampered", "purpose"):
        assert word in message  # lists the possibilities, never says which


def test_plain_tampering_is_one_opaque_error(tmp_path: Path) -> None:
    path = keys.keyring_path(tmp_path, "network", 1)
    keys.save_symmetric_key(path, keys.new_symmetric_key("network", 1))
    original = path.read_bytes()
    messages = set()
    for tamper in (flip_b64("key"), flip_b64("key", 31), edit("fingerprint", "HMAC-SHA256:x"),
                   edit("purpose", "pepper"), edit("key", "AAAA"), edit("created", "yesterday"),
                   edit("purpose", "member-signing")):
        write_private(path, tamper(original))
        with pytest.raises(keys.InvalidKeyFile) as caught:
            keys.load_symmetric_key(path, purpose="network")
        messages.add(str(caught.value))
    write_private(path, original)
    with pytest.raises(keys.InvalidKeyFile) as caught:
        keys.load_private_key(path)  # a symmetric file is no private key
    messages.add(str(caught.value))
    with pytest.raises(keys.InvalidKeyFile) as caught:
        keys.load_symmetric_key(path, passphrase=PASSPHRASE)  # sealed file swapped for plain
    messages.add(str(caught.value))
    assert len(messages) == 1


def test_invalid_key_file_message_is_the_same_class_wide() -> None:
    assert str(keys.InvalidKeyFile("/a")) .replace("/a", "/b") == str(keys.InvalidKeyFile("/b"))


def test_passphrase_required(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    keys.save_private_key(path, keys.generate_hpke_key(), purpose="member-hpke",
                          passphrase=PASSPHRASE)
    with pytest.raises(keys.PassphraseRequired) as caught:
        keys.load_private_key(path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, keys.KeyFileError)
    assert not isinstance(caught.value, keys.InvalidKeyFile)


# ------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_loose_private_file_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "server-signing.key"
    keys.save_private_key(path, keys.generate_signing_key(), purpose="server-signing")
    path.chmod(mode)
    with pytest.raises(keys.InsecureKeyFile) as caught:
        keys.load_private_key(path)
    assert str(path) in str(caught.value)
    assert "chmod 600" in str(caught.value)
    assert caught.value.path == str(path)


def test_loose_symmetric_file_is_refused(tmp_path: Path) -> None:
    path = keys.keyring_path(tmp_path, "pepper", 1)
    keys.save_symmetric_key(path, keys.new_symmetric_key("pepper", 1))
    path.chmod(0o644)
    with pytest.raises(keys.InsecureKeyFile):
        keys.load_symmetric_key(path)
    with pytest.raises(keys.InsecureKeyFile):
        keys.load_keyring(tmp_path, "pepper")


def test_owner_only_modes_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    keys.save_private_key(path, keys.generate_signing_key(), purpose="member-signing")
    path.chmod(0o400)
    keys.load_private_key(path)


def test_private_file_mode_ignores_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "k.key"
        keys.save_private_key(path, keys.generate_signing_key(), purpose="member-signing")
    finally:
        os.umask(old)
    assert mode_of(path) == 0o600


def test_parent_directories_are_created_0700(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c" / "member-hpke.key"
    keys.save_private_key(path, keys.generate_hpke_key(), purpose="member-hpke")
    for directory in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert mode_of(directory) == 0o700


def test_symlinked_file_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    keys.save_private_key(real, keys.generate_signing_key(), purpose="member-signing")
    link = tmp_path / "link.key"
    link.symlink_to(real)
    assert keys.load_private_key(link)[1].purpose == "member-signing"


def test_directory_is_not_a_key_file(tmp_path: Path) -> None:
    directory = tmp_path / "dir.key"
    directory.mkdir(mode=0o700)
    with pytest.raises(keys.InvalidKeyFile):
        keys.load_private_key(directory)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        keys.load_private_key(tmp_path / "absent.key")


# ------------------------------------------------------------------------- writing


def test_no_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "member-signing.key"
    first = keys.generate_signing_key()
    keys.save_private_key(path, first, purpose="member-signing")
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        keys.save_private_key(path, keys.generate_signing_key(), purpose="member-signing")
    with pytest.raises(FileExistsError):
        keys.save_symmetric_key(path, keys.new_symmetric_key("network", 1))
    with pytest.raises(FileExistsError):
        keys.save_public_key(path, first.public_key())
    assert path.read_bytes() == before
    second = keys.generate_signing_key()
    keys.save_private_key(path, second, purpose="member-signing", overwrite=True)
    assert raw(keys.load_private_key(path)[0]) == raw(second)
    assert mode_of(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["member-signing.key"]  # no temp files


def test_no_overwrite_of_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "k.key"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        keys.save_private_key(link, keys.generate_signing_key(), purpose="member-signing")
    assert not (tmp_path / "elsewhere").exists()


def test_save_rejects_misuse(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    with pytest.raises(TypeError):
        keys.save_private_key(path, keys.generate_hpke_key(), purpose="member-signing")
    with pytest.raises(TypeError):
        keys.save_private_key(path, keys.generate_signing_key(), purpose="member-hpke")
    with pytest.raises(ValueError):
        keys.save_private_key(path, keys.generate_signing_key(), purpose="network")
    with pytest.raises(ValueError):
        keys.save_private_key(path, keys.generate_signing_key(), purpose="member-signing",
                              version=0)
    with pytest.raises(ValueError):
        keys.save_private_key(path, keys.generate_signing_key(), purpose="member-signing",
                              passphrase=b"")
    with pytest.raises(TypeError):
        keys.save_private_key(path, keys.generate_signing_key(), purpose="member-signing",
                              passphrase="text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        keys.save_symmetric_key(path, b"\x00" * 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        keys.load_private_key(path, purpose="network")
    with pytest.raises(ValueError):
        keys.load_symmetric_key(path, purpose="member-hpke")
    assert not path.exists()


def test_loaded_types_follow_purpose(tmp_path: Path) -> None:
    keys.save_private_key(tmp_path / "s.key", keys.generate_signing_key(),
                          purpose="server-signing")
    keys.save_private_key(tmp_path / "h.key", keys.generate_hpke_key(), purpose="member-hpke")
    assert isinstance(keys.load_private_key(tmp_path / "s.key")[0], Ed25519PrivateKey)
    assert isinstance(keys.load_private_key(tmp_path / "h.key")[0], X25519PrivateKey)


# ------------------------------------------------------------------------- locations


def test_default_keys_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert keys.default_keys_dir({}) == tmp_path / "var" / "keys"
    assert keys.default_keys_dir({"CLUE_KEYS_DIR": "/srv/clue/keys"}) == Path("/srv/clue/keys")
    assert keys.default_keys_dir({"CLUE_KEYS_DIR": "rel"}) == tmp_path / "rel"
    monkeypatch.setenv("CLUE_KEYS_DIR", str(tmp_path / "env"))
    assert keys.default_keys_dir() == tmp_path / "env"
    package = Path(keys.__file__).resolve().parent
    monkeypatch.delenv("CLUE_KEYS_DIR")
    assert package not in keys.default_keys_dir().parents


def test_conventional_paths() -> None:
    assert keys.private_key_path("/k", "server-signing") == Path("/k/server-signing.key")
    assert keys.public_key_path("/k", "member-hpke") == Path("/k/member-hpke.pub")
    with pytest.raises(ValueError):
        keys.private_key_path("/k", "pepper")


def test_keys_never_imports_flask() -> None:
    import subprocess
    import sys

    code = "import sys, keys; sys.exit(1 if 'flask' in sys.modules else 0)"
    root = Path(__file__).resolve().parents[3]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
