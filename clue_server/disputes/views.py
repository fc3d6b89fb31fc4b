"""``/v1/disputes``: file a dispute, see the ones routed to you or filed by you, answer."""

from __future__ import annotations

from collections import Counter
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from clue_server import db
from clue_server.disputes import services
from clue_server.errors import BadRequest, ValidationFailed
from clue_server.networkkeys.services import retired_versions
from clue_server.quotas import services as quotas
from clue_server.validation import json_body

bp = Blueprint("disputes", __name__, url_prefix="/disputes")


@bp.post("")
def open_dispute() -> Response:
    new = services.parse_open_body(json_body(request))
    session = db.get_session()
    if new.key_version in retired_versions(session):
        raise ValidationFailed(f"key_version {new.key_version} is a retired network-key version; "
                               "fetch the current key and use it", pointer="/key_version")
    # Filing tells the caller whether the token is reported: it is a look-up of one
    # identifier, counted against the same daily quota (429 when it is used up) once
    # the matching is done and before anything is written.
    now = db.utcnow()

    def count(matched: bool) -> None:
        # The count commits on a connection of its own: end this request's read first
        # (nothing is written yet; an SQLite transaction holds the write lock).
        session.commit()
        quotas.lookup_counter().count(g.caller.member_id, Counter({new.id_type: 1}),
                                      Counter({new.id_type: int(matched)}), now)

    try:
        answer, created = services.open_dispute(session, g.caller.member_id, new,
                                                current_app.extensions["clue_keys"],
                                                now=now, count=count)
    except (services.NothingToDispute, services.OnlyOwnReports):
        # The refusal still answered the question: its count stands; keep its audit row.
        session.commit()
        raise
    session.commit()
    response = jsonify(answer)
    response.status_code = 201 if created else 200
    return response


@bp.get("/incoming")
def incoming() -> dict[str, Any]:
    _no_query()
    return {"disputes": services.incoming(db.get_session(), g.caller.member_id)}


@bp.get("/outgoing")
def outgoing() -> dict[str, Any]:
    _no_query()
    return {"disputes": services.outgoing(db.get_session(), g.caller.member_id)}


@bp.post("/<dispute_id>/answer")
def answer(dispute_id: str) -> dict[str, Any]:
    given = services.parse_answer_body(json_body(request))
    session = db.get_session()
    result = services.answer(session, g.caller.member_id, dispute_id, given, now=db.utcnow())
    session.commit()
    return result


def _no_query() -> None:
    if request.args:
        names = ", ".join(sorted(name[:40] for name in request.args)[:5])
        raise BadRequest(f"unknown query parameter(s): {names}")
