"""Shared vocabulary: purposes, ``KeyInfo``, time stamps and strict base64."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime

PURPOSES = ("member-signing", "member-hpke", "member-notes", "server-signing", "network", "pepper",
            "oprf")
"""Every purpose a key file may have; a key is only ever loaded for its own purpose."""

SIGNING_PURPOSES = frozenset({"member-signing", "server-signing"})  # Ed25519
HPKE_PURPOSES = frozenset({"member-hpke"})  # X25519
PRIVATE_PURPOSES = SIGNING_PURPOSES | HPKE_PURPOSES
SYMMETRIC_PURPOSES = frozenset({"network", "pepper", "member-notes", "oprf"})  # 32-byte secrets

SECRET_SIZE = 32
"""Bytes of every symmetric key (HMAC-SHA256 wants a key of its block-size order)."""

_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


@dataclass(frozen=True)
class KeyInfo:
    """What a key file says about its key (never the key itself)."""

    purpose: str
    version: int
    created: datetime
    """Creation time, UTC, whole seconds."""
    fingerprint: str


def check_purpose(purpose: str, allowed: frozenset[str], what: str) -> str:
    if purpose not in allowed:
        raise ValueError(f"purpose must be one of {sorted(allowed)} for {what}, not {purpose!r}")
    return purpose


def check_version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"key version must be an integer >= 1, not {version!r}")
    return version


def creation_time(now: datetime | None) -> datetime:
    """``now`` (or the current time) in UTC, whole seconds; naive datetimes are refused."""
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC).replace(microsecond=0)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Parse exactly what ``format_time`` writes; raise ``ValueError`` on anything else."""
    if not _TIME_RE.fullmatch(text):
        raise ValueError("bad time stamp")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    """Strict standard base64: padding required, nothing but the alphabet, canonical."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("bad base64") from exc
    if b64encode(data) != text:
        raise ValueError("non-canonical base64")
    return data


def b64url_nopad(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
