"""The server's own secrets: its response-signing key and its pepper versions.

Both live as files in ``CLUE_SERVER_KEYS_DIR`` (default ``var/server-keys``),
created by ``clue-server init`` (or on the first ``make run``). The network key
that tokens are made with is never here: only members hold it.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

import keys
from clue_client.protocol import server_key_id

SIGNING_FILE = "server-signing.key"
SIGNING_PUBLIC_FILE = "server-signing.pub"
NEXT_SIGNING_FILE = "server-signing-next.key"
NEXT_SIGNING_PUBLIC_FILE = "server-signing-next.pub"
PEPPER_PURPOSE = "pepper"
#: Seeds of the OPRF keys of private look-ups (docs/private-lookups.md §2), one per version.
OPRF_PURPOSE = "oprf"
#: The web console's session-signing secret: 32 random bytes, mode 0600 (docs/console.md).
CONSOLE_SESSION_FILE = "console-session.key"


@dataclass(frozen=True)
class ServerKeys:
    signing_key: Ed25519PrivateKey
    signing_key_id: str
    peppers: keys.Keyring
    #: A staged successor key, published (endorsed by the current key) before it takes over.
    next_signing_key: Ed25519PrivateKey | None = None
    #: The OPRF keys by version (``skS = DeriveKeyPair(seed, "clue oprf v<N>")``); empty
    #: until the first ``oprf-v1.key`` exists (then protocol v2 answers 404).
    oprf_keys: dict[int, keys.OprfKey] = field(default_factory=dict)

    @property
    def oprf_version(self) -> int | None:
        """The OPRF key version new entries are made under (the newest)."""
        return max(self.oprf_keys, default=None)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.signing_key.public_key()

    def token_hash(self, token: bytes, pepper_version: int | None = None) -> bytes:
        """``HMAC-SHA256(pepper[v], token)``: what the database stores instead of the token."""
        pepper = self.peppers.current if pepper_version is None else self.peppers.get(
            pepper_version)
        return hmac.digest(pepper.secret, token, "sha256")

    def token_hashes(self, token: bytes) -> list[bytes]:
        """The token's stored form under every active pepper version (newest first)."""
        return [hmac.digest(p.secret, token, "sha256") for p in self.peppers]


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
    if not any(directory.glob(f"{OPRF_PURPOSE}-v*.key")):
        created.append(str(new_oprf_key(directory)[1]))
    if not (directory / CONSOLE_SESSION_FILE).exists():
        console_session_secret(directory)
        created.append(str(directory / CONSOLE_SESSION_FILE))
    return created


def load_server_keys(directory: Path) -> ServerKeys:
    signing_key, _info = keys.load_private_key(directory / SIGNING_FILE, purpose="server-signing")
    assert isinstance(signing_key, Ed25519PrivateKey)
    peppers = keys.load_keyring(directory, PEPPER_PURPOSE)
    next_key = None
    if (directory / NEXT_SIGNING_FILE).exists():
        loaded, _ = keys.load_private_key(directory / NEXT_SIGNING_FILE, purpose="server-signing")
        assert isinstance(loaded, Ed25519PrivateKey)
        next_key = loaded
    return ServerKeys(signing_key=signing_key,
                      signing_key_id=server_key_id(signing_key.public_key()),
                      peppers=peppers, next_signing_key=next_key,
                      oprf_keys=load_oprf_keys(directory))


def oprf_key_info(version: int) -> bytes:
    """DeriveKeyPair's info string for OPRF key ``version`` (docs/private-lookups.md §2)."""
    return f"clue oprf v{version}".encode()


def load_oprf_keys(directory: Path) -> dict[int, keys.OprfKey]:
    if not any(directory.glob(f"{OPRF_PURPOSE}-v*.key")):
        return {}
    return {seed.version: keys.OprfKey.derive(seed.secret, oprf_key_info(seed.version))
            for seed in keys.load_keyring(directory, OPRF_PURPOSE)}


def new_oprf_key(directory: Path) -> tuple[int, Path]:
    """Add the next OPRF key version (its 32-byte seed); returns the version and file.
    Entries are made under the newest; older versions keep answering until retired."""
    versions = load_oprf_keys(directory)
    version = max(versions, default=0) + 1
    path = keys.keyring_path(directory, OPRF_PURPOSE, version)
    keys.save_symmetric_key(path, keys.new_symmetric_key(OPRF_PURPOSE, version))
    return version, path


def stage_next_signing_key(directory: Path) -> Ed25519PublicKey:
    """Create the successor signing key; members learn it (endorsed) before it is used."""
    if (directory / NEXT_SIGNING_FILE).exists():
        raise FileExistsError(f"{directory / NEXT_SIGNING_FILE} already exists; promote it first")
    key = keys.generate_signing_key()
    keys.save_private_key(directory / NEXT_SIGNING_FILE, key, purpose="server-signing")
    keys.save_public_key(directory / NEXT_SIGNING_PUBLIC_FILE, key.public_key())
    return key.public_key()


def promote_next_signing_key(directory: Path, *, stamp: str) -> Ed25519PublicKey:
    """Make the staged key current; the old one is kept as ``server-signing-retired-*.key``."""
    nxt = directory / NEXT_SIGNING_FILE
    if not nxt.exists():
        raise FileNotFoundError(f"no staged key {nxt}; run `clue-server server-key rotate` first")
    (directory / SIGNING_FILE).rename(directory / f"server-signing-retired-{stamp}.key")
    (directory / SIGNING_PUBLIC_FILE).unlink(missing_ok=True)
    nxt.rename(directory / SIGNING_FILE)
    (directory / NEXT_SIGNING_PUBLIC_FILE).rename(directory / SIGNING_PUBLIC_FILE)
    key, _ = keys.load_private_key(directory / SIGNING_FILE, purpose="server-signing")
    assert isinstance(key, Ed25519PrivateKey)
    return key.public_key()


def rotate_pepper(directory: Path) -> int:
    """Add the next pepper version; new rows use it, look-ups try every version."""
    version = keys.load_keyring(directory, PEPPER_PURPOSE).current.version + 1
    keys.save_symmetric_key(keys.keyring_path(directory, PEPPER_PURPOSE, version),
                            keys.new_symmetric_key(PEPPER_PURPOSE, version))
    return version


def retire_pepper_file(directory: Path, version: int) -> Path:
    """Remove a pepper version's file (the caller checks no row uses it)."""
    ring = keys.load_keyring(directory, PEPPER_PURPOSE)
    if version == ring.current.version:
        raise ValueError(f"pepper v{version} is the newest; rotate before retiring it")
    ring.get(version)
    path = keys.keyring_path(directory, PEPPER_PURPOSE, version)
    path.unlink()
    return path


def console_session_secret(directory: Path) -> bytes:
    """The console's session secret, created (0600, never overwritten) on first use.

    Every app server must share it, like the other files here. Two workers racing to
    create it both end up reading the one that won.
    """
    path = directory / CONSOLE_SESSION_FILE
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = directory / f".{CONSOLE_SESSION_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # no-clobber: the first writer wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    secret = path.read_bytes()
    if len(secret) < 32:
        raise ValueError(f"{path} is too short: delete it to have a new one made")
    return secret
