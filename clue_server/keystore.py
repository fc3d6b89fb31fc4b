"""The server's own secrets: its response-signing key and its pepper versions.

Both live as files in ``CLUE_SERVER_KEYS_DIR`` (default ``var/server-keys``),
created by ``clue-server init`` (or on the first ``make run``). The network key
that tokens are made with is never here: only members hold it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

import keys
from clue_client.protocol import server_key_id

SIGNING_FILE = "server-signing.key"
SIGNING_PUBLIC_FILE = "server-signing.pub"
PEPPER_PURPOSE = "pepper"


@dataclass(frozen=True)
class ServerKeys:
    signing_key: Ed25519PrivateKey
    signing_key_id: str
    peppers: keys.Keyring

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.signing_key.public_key()

    def token_hash(self, token: bytes, pepper_version: int | None = None) -> bytes:
        """``HMAC-SHA256(pepper[v], token)``: what the database stores instead of the token."""
        pepper = self.peppers.current if pepper_version is None else self.peppers.get(
            pepper_version)
        return hmac.new(pepper.secret, token, hashlib.sha256).digest()

    def token_hashes(self, token: bytes) -> list[bytes]:
        """The token's stored form under every active pepper version (newest first)."""
        return [hmac.new(p.secret, token, hashlib.sha256).digest() for p in self.peppers]


def ensure_server_keys(directory: Path) -> list[str]:
    """Create the signing key and the first pepper if absent; return what was created."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    created = []
    signing_path = directory / SIGNING_FILE
    if not signing_path.exists():
        key = keys.generate_signing_key()
        keys.save_private_key(signing_path, key, purpose="server-signing")
        keys.save_public_key(directory / SIGNING_PUBLIC_FILE, key.public_key())
        created.append(str(signing_path))
    if not any(directory.glob(f"{PEPPER_PURPOSE}-v*.key")):
        path = keys.keyring_path(directory, PEPPER_PURPOSE, 1)
        keys.save_symmetric_key(path, keys.new_symmetric_key(PEPPER_PURPOSE, 1))
        created.append(str(path))
    return created


def load_server_keys(directory: Path) -> ServerKeys:
    signing_key, _info = keys.load_private_key(directory / SIGNING_FILE, purpose="server-signing")
    assert isinstance(signing_key, Ed25519PrivateKey)
    peppers = keys.load_keyring(directory, PEPPER_PURPOSE)
    return ServerKeys(signing_key=signing_key,
                      signing_key_id=server_key_id(signing_key.public_key()),
                      peppers=peppers)
