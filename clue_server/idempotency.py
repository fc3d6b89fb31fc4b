"""``Idempotency-Key`` for writes: a retry gets the first answer, never a second write.

The stored answer is written in the same transaction as the write itself, so
either both land or neither does. Same key with another body → 422.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

from flask import Request, Response
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clue_server.auth.models import IdempotencyRecord
from clue_server.db import utcnow
from clue_server.errors import BadRequest, IdempotencyConflict, IdempotencyInProgress

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise BadRequest(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")
    return key


def run_once(session: Session, request: Request, member_id: str,
             write: Callable[[], tuple[int, dict[str, Any]]], *, ttl: dt.timedelta) -> Response:
    """Run ``write`` (which adds to ``session`` without committing) at most once per key."""
    key = idempotency_key(request)
    if key is None:
        status, body = write()
        session.commit()
        return _json(status, body)
    request_hash = hashlib.sha256(
        request.method.encode() + b" " + request.path.encode() + b"\n" + request.get_data()
    ).hexdigest()
    stored = _replay(session, member_id, key, request_hash, ttl)
    if stored is not None:
        return stored
    status, body = write()
    session.add(IdempotencyRecord(member_id=member_id, key=key, request_hash=request_hash,
                                  status_code=status, response_body=json.dumps(body)))
    try:
        session.commit()
    except IntegrityError:
        # A concurrent retry with the same key committed first: answer as it did.
        session.rollback()
        stored = _replay(session, member_id, key, request_hash, ttl)
        if stored is None:
            raise IdempotencyInProgress("retry in a moment") from None
        return stored
    return _json(status, body)


def _replay(session: Session, member_id: str, key: str, request_hash: str,
            ttl: dt.timedelta) -> Response | None:
    record = session.get(IdempotencyRecord, (member_id, key))
    if record is None:
        return None
    if record.created_at < utcnow() - ttl:
        session.execute(delete(IdempotencyRecord).where(
            IdempotencyRecord.member_id == member_id, IdempotencyRecord.key == key))
        session.flush()
        return None
    if record.request_hash != request_hash:
        raise IdempotencyConflict(f"{HEADER} {key!r} was already used with a different request")
    response = _json(record.status_code, json.loads(record.response_body))
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
