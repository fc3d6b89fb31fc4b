"""CLUE server: the Flask app factory.

>>> from clue_server import create_app
>>> app = create_app({"database_url": "sqlite:///var/example.db"})  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from flask import Flask

from clue_server.config import Settings


class _Flask(Flask):
    """Flask, minus re-inspecting every hook on every request: whether a function is a
    coroutine function does not change, so ``ensure_sync`` remembers its answer (Flask asks
    for each of the ~10 hooks a request runs)."""

    _sync: ClassVar[dict[Any, Any]] = {}

    def ensure_sync(self, func: Any) -> Any:
        try:
            return self._sync[func]
        except (KeyError, TypeError):
            wrapped = super().ensure_sync(func)
            try:
                if len(self._sync) < 10_000:
                    self._sync[func] = wrapped
            except TypeError:  # an unhashable callable: not remembered
                pass
            return wrapped


def create_app(config: Mapping[str, Any] | None = None, *, load_keys: bool = True) -> Flask:
    from clue_server import api, db, errors, health, metrics
    from clue_server.auth.nonces import DatabaseNonceStore, RedisNonceStore
    from clue_server.auth.services import KeyCache
    from clue_server.cache import Refreshed, invalidate_on_change
    from clue_server.console import views as console_views
    from clue_server.hotpath import HotPath, fast_engine
    from clue_server.keystore import load_server_keys
    from clue_server.members.models import Member, MemberKey
    from clue_server.networkkeys.models import NetworkKeyVersion
    from clue_server.networkkeys.services import retired_versions
    from clue_server.quotas import services as quota_services
    from clue_server.quotas import settings as council
    from clue_server.quotas.models import CouncilSetting

    settings = Settings.from_env().with_overrides(config or {})
    app = _Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    extensions = app.extensions
    extensions["clue_settings"] = settings
    db.init_app(app, settings.database_url)
    if load_keys:
        extensions["clue_keys"] = load_server_keys(settings.server_keys_dir)
    # Nonce claims, matches and look-up counts: plain statements on a pool of their own,
    # whose commits need not wait for the disk.
    extensions["clue_fast_engine"] = fast_engine(settings.database_url, db.make_engine)
    extensions["clue_hot"] = hot = HotPath(extensions["clue_fast_engine"])
    app.teardown_request(hot.release)
    extensions["clue_redis"] = redis = (db.make_redis(settings.redis_url)
                                        if settings.redis_url else None)
    extensions["clue_nonces"] = (RedisNonceStore(redis) if redis is not None
                                 else DatabaseNonceStore(hot))
    extensions["clue_key_cache"] = KeyCache(extensions["clue_engine"])
    sessions = extensions["clue_sessionmaker"]

    def _retired() -> frozenset[int]:
        with sessions() as session:
            return frozenset(retired_versions(session))

    def _retention() -> dict[str, int]:
        with sessions() as session:
            return council.retention_days(session, extensions["clue_settings"])

    def _private() -> tuple[int, int]:
        with sessions() as session:
            return council.private_lookups(session)

    def _v1_retired() -> bool:
        with sessions() as session:
            return council.v1_lookups_retired(session)

    extensions["clue_private_settings"] = Refreshed(_private)
    extensions["clue_v1_retired"] = Refreshed(_v1_retired)
    invalidate_on_change(extensions["clue_private_settings"], CouncilSetting)
    invalidate_on_change(extensions["clue_v1_retired"], CouncilSetting)
    extensions["clue_retired_versions"] = Refreshed(_retired)
    extensions["clue_retention"] = Refreshed(_retention)
    invalidate_on_change(extensions["clue_key_cache"], Member, MemberKey)
    invalidate_on_change(extensions["clue_retired_versions"], NetworkKeyVersion)
    invalidate_on_change(extensions["clue_retention"], CouncilSetting)
    errors.init_app(app)
    api.init_app(app)
    health.init_app(app)
    console_views.init_app(app)
    metrics.init_app(app)
    quota_services.init_app(app)
    return app
