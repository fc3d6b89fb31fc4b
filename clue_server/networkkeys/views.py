from __future__ import annotations

from typing import Any

from flask import Blueprint, g, request

from clue_server import db
from clue_server.errors import NotCustodian
from clue_server.networkkeys import services
from clue_server.validation import json_body

members_bp = Blueprint("me", __name__, url_prefix="/members/me")
network_bp = Blueprint("network_keys", __name__, url_prefix="/network-keys")


@members_bp.get("")
def profile() -> dict[str, Any]:
    return services.member_profile(db.get_session(), g.caller.member_id)


@members_bp.put("/hpke-key")
def set_hpke_key() -> dict[str, Any]:
    session = db.get_session()
    result = services.set_hpke_key(session, g.caller.member_id, json_body(request))
    session.commit()
    return result


@members_bp.post("/keys")
def add_key() -> dict[str, Any]:
    session = db.get_session()
    result = services.add_signing_key(session, g.caller.member_id, json_body(request))
    session.commit()
    return result


@members_bp.delete("/keys/<key_id>")
def revoke_key(key_id: str) -> dict[str, Any]:
    session = db.get_session()
    services.revoke_signing_key(session, g.caller.member_id, key_id)
    session.commit()
    return {"key_id": key_id, "revoked": True}


@network_bp.get("")
def directory() -> dict[str, Any]:
    return services.directory(db.get_session())


@network_bp.post("/<int:version>/envelopes")
def upload(version: int) -> dict[str, Any]:
    session = db.get_session()
    try:
        result = services.upload_envelopes(session, g.caller.member_id, g.caller.key_id,
                                           version, json_body(request))
    except NotCustodian:
        session.commit()  # the refusal's audit row, and nothing else, is kept
        raise
    session.commit()
    return result


@network_bp.get("/envelopes")
def mine() -> dict[str, Any]:
    return services.my_envelopes(db.get_session(), g.caller.member_id)
