"""Append an audit event in the caller's transaction, so it commits or rolls back with the write."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from clue_server.audit.models import AuditEvent


def record(session: Session, *, actor: str, action: str, subject: str, **details: Any) -> None:
    session.add(AuditEvent(actor=actor, action=action, subject=subject, details=details))
