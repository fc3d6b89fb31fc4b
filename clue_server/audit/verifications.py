"""Stored results of audit-chain verification, for "last verified" at a glance.

``clue-server audit verify`` and the console's "verify now" button both walk the chain
with ``chain.verify_chain`` and keep the outcome here (``audit_verifications``); the
console's overview and audit page show the newest one instead of re-walking the log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clue_server.audit import chain
from clue_server.audit.models import AuditEvent, AuditVerification


def verify_and_record(session: Session, public_keys: Iterable[Ed25519PublicKey], *, by: str,
                      now: dt.datetime) -> tuple[chain.ChainStatus, AuditVerification]:
    """Verify the whole chain now and store the result (the caller commits)."""
    status = chain.verify_chain(session, public_keys)
    row = AuditVerification(at=now, by=by, ok=status.ok, entries=status.entries,
                            checkpoints=status.checkpoints, last_event_id=status.last_event_id,
                            first_broken_id=status.first_broken_id, problem=status.problem,
                            detail=status.detail)
    session.add(row)
    session.flush()
    return status, row


def latest(session: Session) -> AuditVerification | None:
    return session.scalar(select(AuditVerification).order_by(AuditVerification.id.desc())
                          .limit(1))


def entries_since(session: Session, verification: AuditVerification) -> int:
    """Entries written after the verified part of the log (not covered by the result)."""
    query = select(func.count()).select_from(AuditEvent)
    if verification.last_event_id is not None:
        query = query.where(AuditEvent.id > verification.last_event_id)
    return int(session.scalar(query) or 0)
