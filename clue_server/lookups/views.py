from __future__ import annotations

from collections import Counter
from typing import Any

from flask import Blueprint, current_app, g, request

from clue_server import db
from clue_server.lookups import services
from clue_server.networkkeys.services import refuse_retired
from clue_server.quotas import services as quotas
from clue_server.stats import services as usage
from clue_server.validation import json_body

bp = Blueprint("lookups", __name__, url_prefix="/lookups")


@bp.post("")
def lookup() -> dict[str, Any]:
    items = services.parse_lookup_body(json_body(request), current_app.extensions["clue_settings"])
    session = db.get_session()
    refuse_retired(session, [i.key_version for i in items], "/items")
    quotas.reserve(session, g.caller.member_id, "lookups", Counter(i.id_type for i in items))
    now = db.utcnow()
    results, report_ids = services.match(session, g.caller.member_id, items,
                                         current_app.extensions["clue_keys"], now=now)
    usage.record_lookups(session, g.caller.member_id, items, report_ids, now=now)
    session.commit()
    return {"results": results}
