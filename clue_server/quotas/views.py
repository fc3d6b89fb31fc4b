"""``GET /v1/limits``: what the server will accept from the caller, so a client can check
its input before sending it (a CSV import does).

Everything here is either the server's configuration or the caller's own usage; nothing
about other members.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, request

from clue_server import db
from clue_server.db import iso_utc
from clue_server.errors import BadRequest
from clue_server.quotas import services as quotas
from clue_server.quotas import settings as council
from clue_server.validation import MAX_NOTE_BYTES

bp = Blueprint("limits", __name__, url_prefix="/limits")


@bp.get("")
def limits() -> dict[str, Any]:
    if request.args:
        names = ", ".join(sorted(name[:40] for name in request.args)[:5])
        raise BadRequest(f"unknown query parameter(s): {names}")
    settings = current_app.extensions["clue_settings"]
    session = db.get_session()
    now = db.utcnow()
    usage = quotas.usage_today(session, g.caller.member_id, now=now)
    retention = council.retention_days(session, settings)
    session.rollback()  # read-only: end the transaction
    return {
        "max_batch_items": settings.max_batch_items,
        "max_body_bytes": settings.max_body_bytes,
        "max_sealed_note_bytes": MAX_NOTE_BYTES,
        # The council maximum per type: also the default when a report gives none.
        "retention_days": retention,
        "quotas": {
            "resets_at": iso_utc(usage.resets_at),
            "lookups": _quota(usage.lookups_limit, usage.lookups),
            "registrations": _quota(usage.registrations_limit, usage.registrations),
        },
    }


def _quota(limit: int, used: int) -> dict[str, int]:
    return {"limit": limit, "used": used, "remaining": max(0, limit - used)}
