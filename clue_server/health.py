"""Health endpoints for the load balancer (outside /v1, unsigned, no secrets).

``/healthz``: the process answers (liveness). ``/readyz``: the database and, when
configured, Redis answer now (readiness); 503 otherwise, naming what is down.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app
from sqlalchemy import text

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    checks: dict[str, str] = {}
    try:
        with current_app.extensions["clue_engine"].connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"; say which kind
        checks["database"] = f"unavailable ({type(exc).__name__})"
    redis = current_app.extensions.get("clue_redis")
    if redis is not None:
        try:
            redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unavailable ({type(exc).__name__})"
    ready = all(v == "ok" for v in checks.values())
    return {"status": "ready" if ready else "unavailable", "checks": checks}, (
        200 if ready else 503)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
