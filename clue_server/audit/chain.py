"""The audit log's hash chain and signed checkpoints: the bytes, and how to check them.

Every entry carries ``prev_hash`` (the previous entry's ``entry_hash``; 64 zeros for
the first) and ``entry_hash = SHA-256(prev_hash || canonical_json(entry))``, where
``prev_hash`` is its 64 lower-case hex characters in ASCII and ``canonical_json`` is
the UTF-8 JSON of ``{id, at, actor, action, subject, details}`` with sorted keys, no
spaces and no ASCII escaping; ``at`` is UTC with microseconds,
``2025-06-01T12:34:56.123456Z``. At intervals the server key signs
``b"clue/v1 audit checkpoint\\x00" + str(event_id) + b"\\x00" + entry_hash`` (ASCII).
docs/audit.md spells this out for auditors recomputing it with other tools.

>>> entry_hash(ZERO_HASH, canonical_entry(1, dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
...            "council", "member.add", "m_1", {}))[:16]
'702f7e1750ad1e7e'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

import keys
from clue_client.protocol import server_key_id
from clue_server.audit.models import AuditCheckpoint, AuditEvent, AuditHead

ZERO_HASH = "0" * 64
CHECKPOINT_CONTEXT = b"clue/v1 audit checkpoint\x00"


def iso_micro(value: dt.datetime) -> str:
    """``at`` as hashed: UTC, microseconds, ``Z``."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_entry(event_id: int, at: dt.datetime, actor: str, action: str, subject: str,
                    details: Mapping[str, Any]) -> bytes:
    document = {"id": event_id, "at": iso_micro(at), "actor": actor, "action": action,
                "subject": subject, "details": details}
    return json.dumps(document, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def entry_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()


def event_hash(event: AuditEvent, prev_hash: str) -> str:
    return entry_hash(prev_hash, canonical_entry(event.id, event.at, event.actor, event.action,
                                                 event.subject, event.details or {}))


def checkpoint_statement(event_id: int, hash_hex: str) -> bytes:
    """What the server key signs at a checkpoint."""
    return CHECKPOINT_CONTEXT + str(event_id).encode("ascii") + b"\x00" + hash_hex.encode("ascii")


def sign_checkpoint(signing_key: Ed25519PrivateKey, event_id: int, hash_hex: str
                    ) -> tuple[str, bytes]:
    """``(key_id, signature)`` over the chain head at ``event_id``."""
    return (server_key_id(signing_key.public_key()),
            signing_key.sign(checkpoint_statement(event_id, hash_hex)))


def server_public_keys(directory: Path) -> list[Ed25519PublicKey]:
    """The server's current signing public key and those of its retired keys."""
    found: list[Ed25519PublicKey] = []
    paths = [directory / "server-signing.key",
             *sorted(directory.glob("server-signing-retired-*.key"))]
    for path in paths:
        if path.exists():
            key, _info = keys.load_private_key(path, purpose="server-signing")
            assert isinstance(key, Ed25519PrivateKey)
            found.append(key.public_key())
    public = directory / "server-signing.pub"
    if not found and public.exists():
        loaded = keys.load_public_key(public)
        if isinstance(loaded, Ed25519PublicKey):
            found.append(loaded)
    return found


@dataclass(frozen=True)
class ChainStatus:
    """What ``verify_chain`` found.

    ``ok``: every check passed. ``entries``: chained entries walked (up to the first
    problem). ``checkpoints``: checkpoints whose signature and hash checked out.
    ``last_event_id``: the last entry walked. ``last_checkpoint_id``: the entry the
    newest good checkpoint signed (None if none). ``first_broken_id``: the first entry
    that is wrong or missing (None when ok). ``problem``: one of ``hash mismatch``,
    ``broken link``, ``missing entries``, ``bad checkpoint signature``,
    ``checkpoint mismatch``, ``not chained``, ``head mismatch`` (None when ok).
    ``detail``: a sentence for people. ``unchained``: entries older than the chain
    (written before it existed) that the next write will chain.
    """

    ok: bool
    entries: int
    checkpoints: int
    last_event_id: int | None = None
    last_checkpoint_id: int | None = None
    first_broken_id: int | None = None
    problem: str | None = None
    detail: str = ""
    unchained: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.ok:
            text = f"audit chain intact: {self.entries} entries, {self.checkpoints} checkpoints"
            text += (f", last checkpoint at entry #{self.last_checkpoint_id}"
                     if self.last_checkpoint_id is not None else ", no checkpoint yet")
            if self.unchained:
                text += (f" ({self.unchained} older entries are not chained yet; the next "
                         "write or `clue-server audit checkpoint` chains them)")
            return text
        return (f"audit chain BROKEN at entry #{self.first_broken_id}: {self.problem}: "
                f"{self.detail}")


def verify_chain(session: Session, public_keys: Iterable[Ed25519PublicKey]) -> ChainStatus:
    """Walk the log in id order: recompute every hash, follow every link, check every
    checkpoint's signature and hash, and that the head names the last entry."""
    trusted = {server_key_id(k): k for k in public_keys}
    by_event: dict[int, list[AuditCheckpoint]] = {}
    for cp in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id)):
        by_event.setdefault(cp.event_id, []).append(cp)
    head = session.get(AuditHead, 1)
    counts = {"entries": 0, "checkpoints": 0}
    last_id: int | None = None
    last_cp: int | None = None

    def broken(event_id: int | None, problem: str, detail: str) -> ChainStatus:
        return ChainStatus(False, counts["entries"], counts["checkpoints"], last_id, last_cp,
                           event_id, problem, detail)

    def check_signature(cp: AuditCheckpoint) -> str | None:
        public = trusted.get(cp.key_id)
        if public is None:
            return f"checkpoint {cp.id} is signed by {cp.key_id}, not a known server key"
        try:
            public.verify(cp.signature, checkpoint_statement(cp.event_id, cp.entry_hash))
        except InvalidSignature:
            return f"checkpoint {cp.id}'s signature by {cp.key_id} does not verify"
        return None

    events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)
                             .execution_options(yield_per=1000))
    expected_prev = ZERO_HASH
    unchained = 0
    for event in events:
        if event.entry_hash is None:
            if head is None and not by_event and counts["entries"] == 0:
                unchained += 1  # older than the chain; chained on the next append
                last_id = event.id
                continue
            return broken(event.id, "not chained", "the entry has no hash: it was inserted "
                          "around the chain, or its hash was erased")
        if unchained:
            return broken(event.id, "not chained", "chained entries follow unchained ones")
        if event.prev_hash != expected_prev:
            if last_id is not None and event.id > last_id + 1:
                return broken(event.id, "missing entries",
                              f"ids {last_id + 1}..{event.id - 1} are gone and this entry's "
                              f"prev_hash does not match entry #{last_id}")
            if last_id is None and expected_prev == ZERO_HASH:
                return broken(event.id, "missing entries", "the first entry present does not "
                              "start the chain: earlier entries are gone")
            return broken(event.id, "broken link", "prev_hash is not the previous entry's hash "
                          f"(#{last_id})" if last_id is not None else "prev_hash is not 0...0")
        if event_hash(event, event.prev_hash) != event.entry_hash:
            return broken(event.id, "hash mismatch", "the entry's content does not match its "
                          "entry_hash: it was edited after it was written")
        for cp in by_event.pop(event.id, []):
            if (why := check_signature(cp)) is not None:
                return broken(event.id, "bad checkpoint signature", why)
            if cp.entry_hash != event.entry_hash:
                since = f"#{last_cp}" if last_cp is not None else "the start"
                return broken(event.id, "checkpoint mismatch",
                              f"checkpoint {cp.id} signed another hash for this entry: the "
                              f"chain after {since} up to here was rewritten")
            counts["checkpoints"] += 1
            last_cp = event.id
        expected_prev = event.entry_hash
        counts["entries"] += 1
        last_id = event.id
    for event_id, cps in sorted(by_event.items()):
        for cp in cps:
            if (why := check_signature(cp)) is not None:
                return broken(event_id, "bad checkpoint signature", why)
        return broken(event_id, "missing entries",
                      f"checkpoint {cps[0].id} signed entry #{event_id}, which no longer "
                      "exists: entries were deleted")
    if head is not None and (head.last_event_id != (last_id or 0)
                             or head.last_hash != expected_prev):
        if head.last_event_id > (last_id or 0):
            ends = f"ends at #{last_id}" if last_id is not None else "is empty"
            return broken(head.last_event_id, "missing entries",
                          f"the head records entry #{head.last_event_id} but the log {ends}: "
                          "the tail was truncated")
        return broken(last_id, "head mismatch", f"the head records entry "
                      f"#{head.last_event_id}, not the last entry #{last_id}")
    if head is None and counts["entries"]:
        return broken(last_id, "head mismatch", "the chain head row is missing")
    return ChainStatus(True, counts["entries"], counts["checkpoints"], last_id, last_cp,
                       unchained=unchained)
