"""A member's local configuration: where the server is and where its keys are.

A small JSON file (``CLUE_CONFIG``, default ``var/clue.json``); relative key
paths are read relative to the file's own directory, so a config and its key
directory can be moved together.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from clue_client.errors import ConfigError

DEFAULT_CONFIG = Path("var/clue.json")
DEFAULT_KEYS_DIR = Path("var/keys")
SIGNING_KEY_FILE = "member-signing.key"
SIGNING_PUBLIC_FILE = "member-signing.pub"
SERVER_KEY_FILE = "server-signing.pub"
NEXT_SERVER_KEY_FILE = "server-signing-next.pub"
HPKE_KEY_FILE = "member-hpke.key"
HPKE_PUBLIC_FILE = "member-hpke.pub"
NOTES_KEY_FILE = "member-notes.key"
NETWORK_PURPOSE = "network"


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("CLUE_CONFIG", DEFAULT_CONFIG))


def check_server_url(url: str) -> str:
    """The server's base URL as the client wants it: http(s), a host, no ``/v1``.

    Returns it without a trailing ``/``; raises :class:`ConfigError` saying what to
    write instead (the client adds ``/v1/...`` itself, so a URL ending in ``/v1``
    would ask for ``/v1/v1/...`` and get "no such endpoint").
    """
    text = url.strip() if isinstance(url, str) else ""
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"server URL {url!r} is not a valid URL ({exc})") from None
    if any(c.isspace() or not c.isprintable() for c in text):
        raise ConfigError(f"server URL {url!r} contains spaces or control characters")
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"server URL {url!r} must start with http:// or https:// and name "
                          "a host, e.g. https://clue.example or http://127.0.0.1:8080")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"server URL {url!r} must not carry a query, fragment or "
                          "credentials; give just the server's base URL")
    base = text.split("?")[0].split("#")[0].rstrip("/")
    if base.endswith("/v1"):
        raise ConfigError(f"server URL {url!r} ends in /v1; give the server's base URL "
                          f"without it ({base[:-3]}): the client adds /v1 itself")
    return base


def keys_dir_default() -> Path:
    return Path(os.environ.get("CLUE_KEYS_DIR", DEFAULT_KEYS_DIR))


@dataclass(frozen=True)
class ClientConfig:
    server_url: str
    keys_dir: str
    server_key_id: str
    signing_key: str = SIGNING_KEY_FILE
    server_public_key: str = SERVER_KEY_FILE
    timeout: float = 5.0

    def resolve(self, base: Path, name: str) -> Path:
        keys_dir = Path(self.keys_dir)
        if not keys_dir.is_absolute():
            keys_dir = base / keys_dir
        return keys_dir / name

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path, *, check_url: bool = True) -> ClientConfig:
        """Read the config; ``check_url=False`` lets `clue config` repair a bad URL."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"no CLUE config at {path}; run `clue keys init` first") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read CLUE config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown setting(s): {', '.join(unknown)}")
        try:
            config = cls(**data)
        except TypeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        try:
            if check_url:
                check_server_url(config.server_url)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}; fix it with `clue config set server-url URL`"
                              ) from None
        return config
