"""Server settings, read once from the environment (``CLUE_*``) or a mapping.

Secrets never live here: the server's signing key and pepper are files in
``CLUE_SERVER_KEYS_DIR``. Development defaults keep everything under ``var/``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clue_client import canonical, protocol

# One vocabulary for both sides of the wire.
ID_TYPES = canonical.ID_TYPES
CATEGORIES = protocol.CATEGORIES
DEFAULT_RETENTION_DAYS = {t: (30 if t == "ip" else 365) for t in ID_TYPES}


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///var/clue.db"
    server_keys_dir: Path = Path("var/server-keys")
    redis_url: str | None = None
    max_body_bytes: int = 1024 * 1024
    max_batch_items: int = 1000
    #: Council maximum retention per type, in days.
    max_retention_days: Mapping[str, int] = field(
        default_factory=lambda: dict(DEFAULT_RETENTION_DAYS))
    idempotency_ttl_hours: int = 24
    #: Prefix of the Redis quota counter keys (tests give each run its own).
    quota_key_prefix: str = "clue:quota:"
    #: The extra listener (host:port) on which /metrics is served; None: staff only.
    metrics_bind: str | None = None
    #: The server key signs the audit chain head when an entry id crosses a multiple of this.
    audit_checkpoint_every: int = 100
    #: The host names (``host`` or ``host:port``, as in ``Host``) requests must be signed
    #: for; empty: any (development). A request signed for another deployment is refused.
    public_hosts: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        settings = cls()
        changes: dict[str, Any] = {}
        if url := env.get("CLUE_DATABASE_URL"):
            changes["database_url"] = url
        if keys := env.get("CLUE_SERVER_KEYS_DIR"):
            changes["server_keys_dir"] = Path(keys)
        if redis_url := env.get("CLUE_REDIS_URL"):
            changes["redis_url"] = redis_url
        if metrics_bind := env.get("CLUE_METRICS_BIND"):
            changes["metrics_bind"] = metrics_bind
        if hosts := env.get("CLUE_PUBLIC_HOSTS"):
            changes["public_hosts"] = frozenset(
                h.strip().lower() for h in hosts.split(",") if h.strip())
        if every := env.get("CLUE_AUDIT_CHECKPOINT_EVERY"):
            changes["audit_checkpoint_every"] = _positive_int("CLUE_AUDIT_CHECKPOINT_EVERY", every)
        retention = dict(settings.max_retention_days)
        for id_type in ID_TYPES:
            if value := env.get(f"CLUE_MAX_RETENTION_DAYS_{id_type.upper()}"):
                retention[id_type] = _positive_int(f"CLUE_MAX_RETENTION_DAYS_{id_type.upper()}",
                                                   value)
        changes["max_retention_days"] = retention
        return replace(settings, **changes)

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        values = dict(overrides)
        if "server_keys_dir" in values:
            values["server_keys_dir"] = Path(values["server_keys_dir"])
        return replace(self, **values)


def _positive_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number of days, not {value!r}") from None
    if number < 1:
        raise SystemExit(f"{name} must be at least 1")
    return number
