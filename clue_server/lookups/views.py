from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, request

from clue_server import db
from clue_server.errors import ProtocolRetired
from clue_server.lookups import services
from clue_server.networkkeys.services import refuse_retired_versions
from clue_server.quotas.services import lookup_counter
from clue_server.validation import json_body

bp = Blueprint("lookups", __name__, url_prefix="/lookups")


@bp.post("")
def lookup() -> dict[str, Any]:
    """Verify (done before), parse, match, count against the quota, answer (signed after)."""
    extensions = current_app.extensions
    if extensions["clue_v1_retired"]():
        raise ProtocolRetired("the council retired protocol-1 look-ups: look up privately "
                              "(protocol 2, GET /v2/config; the SDK does so by default)")
    items = services.parse_lookup_body(json_body(request), extensions["clue_settings"])
    refuse_retired_versions(extensions["clue_retired_versions"](),
                            [i.key_version for i in items], "/items")
    # The nonce is claimed together with the count (api.CLAIM_LATER).
    results = services.lookup(lookup_counter(), g.caller.member_id, items,
                              extensions["clue_keys"], now=db.utcnow(),
                              nonce=g.pop("nonce_owed"))
    return {"results": results}
