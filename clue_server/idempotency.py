"""``Idempotency-Key`` for writes: a retry gets the first answer, never a second write.

The stored answer is written in the same transaction as the write itself, so
either both land or neither does. Same key with another body → 422.
"""

from __future__ import annotations

import datetime as dt
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
from clue_server.keystore import ServerKeys

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
             write: Callable[[], tuple[int, dict[str, Any]]], *, ttl: dt.timedelta,
             server_keys: ServerKeys) -> Response:
    """Run ``write`` (which adds to ``session`` without committing) at most once per key.

    The stored request fingerprint is keyed with the pepper: a plain hash of a body
    full of tokens would let a database thief holding a network key test guesses.
    A write that loses a race on a unique constraint (two requests creating the same
    report at once) is run again and then finds the winner's rows.
    """
    key = idempotency_key(request)
    message = request.method.encode() + b" " + request.path.encode() + b"\n" + request.get_data()
    fingerprints = [h.hex() for h in server_keys.token_hashes(message)]
    for attempt in range(2):
        if key is not None:
            stored = _replay(session, member_id, key, fingerprints, ttl)
            if stored is not None:
                return stored
        try:
            status, body = write()
            if key is not None:
                session.add(IdempotencyRecord(member_id=member_id, key=key,
                                              request_hash=fingerprints[0], status_code=status,
                                              response_body=json.dumps(body)))
            session.commit()
        except IntegrityError:
            session.rollback()
            if attempt == 1:
                raise IdempotencyInProgress("a concurrent request is writing the same "
                                            "reports; retry in a moment") from None
            continue
        return _json(status, body)
    raise AssertionError("unreachable")


def purge(session: Session, *, older_than: dt.datetime) -> int:
    result = session.execute(delete(IdempotencyRecord)
                             .where(IdempotencyRecord.created_at < older_than))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _replay(session: Session, member_id: str, key: str, fingerprints: list[str],
            ttl: dt.timedelta) -> Response | None:
    record = session.get(IdempotencyRecord, (member_id, key))
    if record is None:
        return None
    if record.created_at < utcnow() - ttl:
        session.execute(delete(IdempotencyRecord).where(
            IdempotencyRecord.member_id == member_id, IdempotencyRecord.key == key))
        session.flush()
        return None
    if record.request_hash not in fingerprints:
        raise IdempotencyConflict(f"{HEADER} {key!r} was already used with a different request")
    response = _json(record.status_code, json.loads(record.response_body))
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
