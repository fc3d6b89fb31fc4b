"""CLUE server: the Flask app factory.

>>> from clue_server import create_app
>>> app = create_app({"database_url": "sqlite:///var/example.db"})  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from clue_server.config import Settings


def create_app(config: Mapping[str, Any] | None = None, *, load_keys: bool = True) -> Flask:
    from clue_server import api, db, errors, metrics
    from clue_server.auth.nonces import DatabaseNonceStore, RedisNonceStore
    from clue_server.console import views as console_views
    from clue_server.keystore import load_server_keys
    from clue_server.quotas import services as quota_services

    settings = Settings.from_env().with_overrides(config or {})
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["clue_settings"] = settings
    db.init_app(app, settings.database_url)
    if load_keys:
        app.extensions["clue_keys"] = load_server_keys(settings.server_keys_dir)
    app.extensions["clue_nonces"] = (
        RedisNonceStore(settings.redis_url) if settings.redis_url
        else DatabaseNonceStore(app.extensions["clue_sessionmaker"]))
    errors.init_app(app)
    api.init_app(app)
    console_views.init_app(app)
    metrics.init_app(app)
    quota_services.init_app(app)
    return app
