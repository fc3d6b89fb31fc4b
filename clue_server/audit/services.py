"""Append audit events to the hash chain, in the caller's transaction.

An event commits or rolls back with the write it records. Appends are serialised by
the one ``audit_head`` row: on PostgreSQL it is locked ``FOR UPDATE`` until the
caller commits, on SQLite every write transaction is ``BEGIN IMMEDIATE`` already. So
two app servers writing at once still produce one linear chain (docs/audit.md).
"""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from clue_server.audit import chain
from clue_server.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from clue_server.db import utcnow
from clue_server.keystore import ServerKeys

DEFAULT_CHECKPOINT_EVERY = 100


def record(session: Session, *, actor: str, action: str, subject: str, **details: Any) -> None:
    """Append one entry: who (``actor``: a member id, ``council``, ``staff:<user>``) did
    what (``action``) to which ``subject``, with JSON-able ``details``."""
    head = lock_head(session)
    # Stored and hashed from the same JSON round trip, so reading it back hashes alike.
    plain = json.loads(json.dumps(details, ensure_ascii=False))
    event = AuditEvent(at=utcnow(), actor=actor, action=action, subject=subject, details=plain)
    session.add(event)
    session.flush()
    previous_id = head.last_event_id
    _link(head, event)
    keys, every = _checkpoint_policy()
    if keys is not None and event.id // every > previous_id // every:
        _add_checkpoint(session, keys, event)


def lock_head(session: Session) -> AuditHead:
    """The chain head, locked until the transaction ends (created on first use).

    Entries written before the chain existed (``entry_hash`` NULL, from before
    migration 0004) are chained, in id order, when the head is created.
    """
    head = session.get(AuditHead, 1, with_for_update=True, populate_existing=True)
    if head is None:
        insert = (postgresql.insert if session.get_bind().dialect.name == "postgresql"
                  else sqlite.insert)
        # Two first writers at once: one inserts, the other waits and then skips.
        session.execute(insert(AuditHead).values(id=1, last_event_id=0,
                                                 last_hash=chain.ZERO_HASH)
                        .on_conflict_do_nothing())
        head = session.get(AuditHead, 1, with_for_update=True, populate_existing=True)
        assert head is not None
        if head.last_event_id == 0:
            for old in session.scalars(select(AuditEvent).where(AuditEvent.entry_hash.is_(None))
                                       .order_by(AuditEvent.id)):
                _link(head, old)
            session.flush()
    return head


def _link(head: AuditHead, event: AuditEvent) -> None:
    event.prev_hash = head.last_hash
    event.entry_hash = chain.event_hash(event, head.last_hash)
    head.last_event_id = event.id
    head.last_hash = event.entry_hash


def _checkpoint_policy() -> tuple[ServerKeys | None, int]:
    if not has_app_context():
        return None, DEFAULT_CHECKPOINT_EVERY
    settings = current_app.extensions.get("clue_settings")
    every = getattr(settings, "audit_checkpoint_every", DEFAULT_CHECKPOINT_EVERY)
    return current_app.extensions.get("clue_keys"), max(1, int(every))


def _add_checkpoint(session: Session, keys: ServerKeys, event: AuditEvent) -> AuditCheckpoint:
    assert event.entry_hash is not None
    key_id, signature = chain.sign_checkpoint(keys.signing_key, event.id, event.entry_hash)
    checkpoint = AuditCheckpoint(event_id=event.id, entry_hash=event.entry_hash, key_id=key_id,
                                 signature=signature, at=utcnow())
    session.add(checkpoint)
    return checkpoint


def checkpoint(session: Session, keys: ServerKeys) -> AuditCheckpoint | None:
    """Sign the chain head now; None when the log is empty. An entry already signed by
    this key is not signed twice (its existing checkpoint is returned)."""
    head = lock_head(session)
    if head.last_event_id == 0:
        return None
    event = session.get(AuditEvent, head.last_event_id)
    assert event is not None and event.entry_hash == head.last_hash
    existing = session.scalar(select(AuditCheckpoint).where(
        AuditCheckpoint.event_id == event.id,
        AuditCheckpoint.key_id == keys.signing_key_id))
    if existing is not None:
        return existing
    return _add_checkpoint(session, keys, event)


def recent(session: Session, *, limit: int = 50, actor: str | None = None,
           action: str | None = None) -> list[AuditEvent]:
    """The newest entries first, optionally only one actor's or one action's."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return list(session.scalars(query))
