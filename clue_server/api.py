"""API v1 and v2: parent blueprints that authenticate every request and sign every answer.

Domain blueprints (reports, lookups) hang under it; ``/v1/openapi.json`` and
``/v1/server-key`` are the only unsigned-request endpoints (their answers are
still signed).
"""

from __future__ import annotations

import base64
from importlib import resources
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Blueprint, Flask, Response, current_app, g, request

import keys
from clue_client import protocol
from clue_server.auth import services as auth
from clue_server.disputes.views import bp as disputes_bp
from clue_server.errors import ClueError, problem_response
from clue_server.lookups.views import bp as lookups_bp
from clue_server.networkkeys.views import members_bp, network_bp
from clue_server.private.views import bp as private_bp
from clue_server.quotas.counters import NonceClaim
from clue_server.quotas.views import bp as limits_bp
from clue_server.reports.views import bp as reports_bp

bp = Blueprint("v1", __name__, url_prefix="/v1")
PUBLIC_ENDPOINTS = {"v1.openapi", "v1.server_key"}
#: Endpoints that claim the request's nonce together with their own counting statement
#: (one round trip fewer); if they fail before that, the claim is made when they answer.
CLAIM_LATER = {"v1.lookups.lookup", "v2.evaluations"}


def _authenticate() -> None:
    state = g._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
    state.nonce = None
    req = request._get_current_object()  # type: ignore[attr-defined]
    if req.endpoint in PUBLIC_ENDPOINTS:
        return
    extensions = current_app.extensions
    later = req.endpoint in CLAIM_LATER
    settings = extensions["clue_settings"]
    caller = auth.authenticate(req, extensions["clue_key_cache"], extensions["clue_nonces"],
                               max_body=settings.max_body_bytes, claim_nonce=not later,
                               public_hosts=settings.public_hosts)
    state.caller = caller
    state.nonce = caller.nonce
    if later:
        state.nonce_owed = NonceClaim(caller.key_id, caller.nonce, caller.created)


@bp.get("/ping")
def ping() -> dict[str, Any]:
    return {"pong": True, "member_id": g.caller.member_id}


@bp.get("/server-key")
def server_key() -> dict[str, Any]:
    server_keys = current_app.extensions["clue_keys"]
    public = server_keys.public_key
    answer: dict[str, Any] = _describe(public)
    nxt = server_keys.next_signing_key
    if nxt is not None:
        raw = nxt.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        endorsement = server_keys.signing_key.sign(protocol.endorsement_statement(raw))
        answer["next"] = {**_describe(nxt.public_key()),
                          "endorsement": base64.urlsafe_b64encode(endorsement).decode()}
    return answer


def _describe(public: Ed25519PublicKey) -> dict[str, Any]:
    return {
        "key_id": protocol.server_key_id(public),
        "algorithm": "ed25519",
        "public_key_pem": keys.public_key_pem(public),
        "public_key_raw": public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex(),
        "fingerprint": keys.fingerprint(public),
    }


@bp.get("/openapi.json")
def openapi() -> Response:
    document = resources.files("clue_server").joinpath("openapi.json").read_text("utf-8")
    return Response(document, content_type="application/json")


bp.register_blueprint(reports_bp)
bp.register_blueprint(lookups_bp)
bp.register_blueprint(members_bp)
bp.register_blueprint(network_bp)
bp.register_blueprint(disputes_bp)
bp.register_blueprint(limits_bp)
# Protocol version 2 (private look-ups): its own prefix, the same checks and signatures.
for _blueprint in (bp, private_bp):
    _blueprint.before_request(_authenticate)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(private_bp)

    outages = app.extensions["clue_outages"]

    @app.after_request
    def _sign(response: Response) -> Response:
        req = request._get_current_object()  # type: ignore[attr-defined]
        owed = g.pop("nonce_owed", None)
        if owed is not None:
            # The request failed before its counting statement claimed the nonce: claim it
            # now, so that a signed request is accepted once whatever its fate (a replay
            # of it is refused as one).
            try:
                app.extensions["clue_nonces"].claim(owed.key_id, owed.nonce, owed.created)
            except ClueError as refused:
                response = problem_response(refused, refused.headers)
        path = req.path
        if path.startswith(("/v1/", "/v2/")) or path in ("/v1", "/v2"):
            # A refused request has no verified nonce; echo the one it claims.
            nonce = g.get("nonce") or protocol.read_nonce(req.headers)
            auth.sign_response(response, req, app.extensions["clue_keys"], nonce)
        if response.status_code < 500:
            outages.succeeded()
        return response


