from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from clue_server import db
from clue_server.errors import BadRequest, QuotaExceeded
from clue_server.idempotency import run_once
from clue_server.networkkeys.services import refuse_retired_versions
from clue_server.quotas import counters
from clue_server.reports import services
from clue_server.validation import json_body, plausible_id

bp = Blueprint("reports", __name__, url_prefix="/reports")


@bp.post("")
def register() -> Response:
    extensions = current_app.extensions
    settings = extensions["clue_settings"]
    session = db.get_session()
    reports = services.parse_register_body(json_body(request), settings,
                                           extensions["clue_retention"]())
    refuse_retired_versions(extensions["clue_retired_versions"](),
                            [r.key_version for r in reports], "/reports")
    member_id = g.caller.member_id

    def write() -> tuple[int, dict[str, Any]]:
        now = db.utcnow()
        results, created = services.register(session, member_id, reports,
                                             extensions["clue_keys"], now=now)
        try:
            counters.count_registrations(session.connection(), member_id, created, now)
        except QuotaExceeded:
            session.rollback()
            counters.record_rejection(extensions["clue_engine"], member_id,
                                      Counter(r.id_type for r in reports), now)
            raise
        status = 201 if created else 200
        return status, {"reports": results}

    return run_once(session, request, member_id, write,
                    ttl=dt.timedelta(hours=settings.idempotency_ttl_hours),
                    server_keys=extensions["clue_keys"])


@bp.delete("/<report_id>")
def withdraw(report_id: str) -> dict[str, Any]:
    session = db.get_session()
    services.withdraw(session, g.caller.member_id, report_id)
    session.commit()
    return {"id": report_id, "withdrawn": True}


@bp.post("/search")
def search() -> dict[str, Any]:
    """The caller's own reports for tokens (POST: tokens never go into a URL)."""
    items = services.parse_search_body(json_body(request),
                                       current_app.extensions["clue_settings"])
    return {"results": services.search_own(db.get_session(), g.caller.member_id, items,
                                           current_app.extensions["clue_keys"],
                                           now=db.utcnow())}


@bp.get("")
def list_reports() -> dict[str, Any]:
    unknown = set(request.args) - {"limit", "after"}
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(sorted(unknown))}")
    try:
        limit = int(request.args.get("limit", "100"))
    except ValueError:
        raise BadRequest("limit must be a whole number") from None
    if not 1 <= limit <= 1000:
        raise BadRequest("limit must be between 1 and 1000")
    after = request.args.get("after")
    if after is not None and not plausible_id(after, 40):
        raise BadRequest("after must be a report id")
    reports, next_after = services.list_reports(db.get_session(), g.caller.member_id,
                                                after=after, limit=limit, now=db.utcnow())
    return {"reports": reports, "next_after": next_after}
