"""Keyring: newest first, lookup by version, loading from a directory."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

import keys


def ring_of(*versions: int, purpose: str = "pepper") -> keys.Keyring:
    return keys.Keyring(keys.new_symmetric_key(purpose, v) for v in versions)


def test_newest_first() -> None:
    ring = ring_of(2, 5, 1)
    assert ring.versions == (5, 2, 1)
    assert ring.current.version == 5
    assert [k.version for k in ring] == [5, 2, 1]
    assert len(ring) == 3
    assert ring.purpose == "pepper"


def test_get_by_version() -> None:
    ring = ring_of(1, 2)
    assert ring.get(1).version == 1
    with pytest.raises(keys.UnknownKeyVersion) as caught:
        ring.get(3)
    assert caught.value.version == 3
    assert isinstance(caught.value, keys.KeyFileError)
    assert not isinstance(caught.value, KeyError)


def test_repr_hides_secrets() -> None:
    ring = ring_of(1)
    assert ring.current.secret.hex() not in repr(ring)
    assert repr(ring) == "Keyring(purpose='pepper', versions=(1,))"


@pytest.mark.parametrize("bad", [[], "duplicate", "mixed"])
def test_invalid_rings(bad: object) -> None:
    if bad == "duplicate":
        members = [keys.new_symmetric_key("pepper", 1), keys.new_symmetric_key("pepper", 1)]
    elif bad == "mixed":
        members = [keys.new_symmetric_key("pepper", 1), keys.new_symmetric_key("network", 2)]
    else:
        members = []
    with pytest.raises(ValueError):
        keys.Keyring(members)


def test_keyring_path() -> None:
    assert keys.keyring_path("/k", "network", 3) == Path("/k/network-v3.key")
    with pytest.raises(ValueError):
        keys.keyring_path("/k", "member-signing", 1)
    with pytest.raises(ValueError):
        keys.keyring_path("/k", "network", 0)


def test_load_keyring(tmp_path: Path) -> None:
    saved = {}
    for version in (1, 3, 2):
        key = keys.new_symmetric_key("network", version)
        keys.save_symmetric_key(keys.keyring_path(tmp_path, "network", version), key)
        saved[version] = key
    keys.save_symmetric_key(keys.keyring_path(tmp_path, "pepper", 9),
                            keys.new_symmetric_key("pepper", 9))
    (tmp_path / "notes.txt").write_text("ignored")
    ring = keys.load_keyring(tmp_path, "network")
    assert ring.versions == (3, 2, 1)
    assert all(ring.get(v) == saved[v] for v in saved)
    assert keys.load_keyring(tmp_path, "pepper").versions == (9,)


def test_load_sealed_keyring(tmp_path: Path) -> None:
    for version in (1, 2):
        keys.save_symmetric_key(keys.keyring_path(tmp_path, "network", version),
                                keys.new_symmetric_key("network", version), passphrase=b"pw")
    assert keys.load_keyring(tmp_path, "network", passphrase=b"pw").versions == (2, 1)
    with pytest.raises(keys.PassphraseRequired):
        keys.load_keyring(tmp_path, "network")
    with pytest.raises(keys.InvalidKeyFile):
        keys.load_keyring(tmp_path, "network", passphrase=b"wrong")


def test_renamed_file_is_invalid(tmp_path: Path) -> None:
    keys.save_symmetric_key(keys.keyring_path(tmp_path, "pepper", 1),
                            keys.new_symmetric_key("pepper", 1))
    os.rename(keys.keyring_path(tmp_path, "pepper", 1), keys.keyring_path(tmp_path, "pepper", 2))
    with pytest.raises(keys.InvalidKeyFile):
        keys.load_keyring(tmp_path, "pepper")


def test_file_of_other_purpose_under_keyring_name_is_invalid(tmp_path: Path) -> None:
    keys.save_symmetric_key(keys.keyring_path(tmp_path, "pepper", 1),
                            keys.new_symmetric_key("network", 1))
    with pytest.raises(keys.InvalidKeyFile):
        keys.load_keyring(tmp_path, "pepper")


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        keys.load_keyring(tmp_path, "pepper")


def test_symmetric_key_value_rules() -> None:
    created = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        keys.SymmetricKey("network", 1, b"short", created)
    with pytest.raises(ValueError):
        keys.SymmetricKey("member-signing", 1, bytes(32), created)
    with pytest.raises(ValueError):
        keys.SymmetricKey("network", 0, bytes(32), created)
    with pytest.raises(ValueError):
        keys.SymmetricKey("network", 1, bytes(32), datetime(2025, 1, 1))
    key = keys.SymmetricKey("network", 1, bytes(32), created)
    assert "secret" not in repr(key)
    assert bytes(32).hex() not in repr(key)
    assert key == keys.SymmetricKey("network", 1, bytes(32), created)
    assert key != keys.SymmetricKey("network", 1, bytes(31) + b"\x01", created)


def test_new_symmetric_key_uses_injected_time(fixed_now: datetime) -> None:
    key = keys.new_symmetric_key("network", 2, now=fixed_now)
    assert key.created == fixed_now.replace(microsecond=0)
    assert key.created.tzinfo is UTC
    assert len(key.secret) == 32
    with pytest.raises(ValueError):
        keys.new_symmetric_key("network", 1, now=datetime(2025, 1, 1))
