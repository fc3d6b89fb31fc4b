"""Failures inside the server: what the client gets, what the log keeps, how it heals.

* A statement that fails during a look-up leaves no token and no stored hash in the log
  (issue 10 item 8): the engines hide parameters, and the error handler logs the error's
  class and SQLSTATE, not the database's message (PostgreSQL quotes values in it).
* A dependency outage is a signed 503 with Retry-After, not a 500 (issue 11 item 1).
* An SQLite connection opened read-only (the file was not writable) is replaced once the
  file is writable again, without a restart (issue 11 item 5).
"""

from __future__ import annotations

import base64
import logging
import sqlite3
from typing import Any

import pytest

from clue_client import protocol
from clue_server.hotpath import HotPath
from tests.helpers import signed


def _lookup(token: bytes) -> dict[str, Any]:
    return {"items": [{"type": "phone", "key_version": 1, "token": protocol.b64url(token)}]}


def test_a_failed_statement_logs_no_token_and_no_stored_hash(app, http, make_member,
                                                             monkeypatch, caplog):
    member = make_member()
    token = bytes(range(100, 132))
    stored = app.extensions["clue_keys"].token_hash(token)
    real_cursor = HotPath.cursor

    def failing(self: HotPath) -> Any:
        cursor = real_cursor(self)

        class Failing:
            def execute(self, sql: str, params: Any, **options: Any) -> Any:
                # The failure a statement timeout or a type error would cause, with the
                # look-up's own values in it (PostgreSQL quotes them in its message).
                value = stored.hex()
                if self_is_pg:
                    return cursor.execute("SELECT %s::integer", (value,))
                return cursor.execute("SELECT json_extract(?, '$')", (value,))

            def __getattr__(self, name: str) -> Any:
                return getattr(cursor, name)

        return Failing()

    self_is_pg = app.extensions["clue_hot"].postgres
    monkeypatch.setattr(HotPath, "cursor", failing)
    with caplog.at_level(logging.DEBUG):
        answer = signed(http, member, "POST", "/v1/lookups", _lookup(token))
    assert answer.status_code == 500
    assert "Signature" in answer.headers
    logged = caplog.text + answer.get_data(as_text=True)
    for secret in (token, stored):
        for form in (secret.hex(), protocol.b64url(secret), base64.b64encode(secret).decode(),
                     secret.hex()[:24]):
            assert form not in logged
    assert "unhandled error" in caplog.text  # the failure itself is still logged


def test_a_database_outage_is_a_signed_503_with_retry_after(app, http, make_member,
                                                            monkeypatch, caplog):
    import psycopg

    member = make_member()

    def down(self: HotPath, *args: Any, **kwargs: Any) -> Any:
        raise psycopg.OperationalError("connection failed: Connection refused")

    monkeypatch.setattr(HotPath, "lookup", down)
    monkeypatch.setattr(HotPath, "count_lookups", down)
    answers = [signed(http, member, "POST", "/v1/lookups", _lookup(bytes(32)))
               for _ in range(5)]
    for answer in answers:
        assert answer.status_code == 503
        assert answer.get_json()["type"] == "urn:clue:problem:unavailable"
        assert int(answer.headers["Retry-After"]) >= 1
        assert "Signature" in answer.headers
    assert caplog.text.count("database unavailable") == 1  # once per outage
    assert "Traceback" not in caplog.text


def test_a_read_only_sqlite_connection_heals_when_the_file_is_writable(app, http,
                                                                       make_member,
                                                                       monkeypatch,
                                                                       database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's own behaviour")
    member = make_member()
    hot: HotPath = app.extensions["clue_hot"]
    hot.close()
    for engine in (app.extensions["clue_engine"], app.extensions["clue_fast_engine"]):
        engine.dispose()
    real_connect = sqlite3.connect
    writable = [False]

    def connect(database: str, *args: Any, **kwargs: Any) -> Any:
        # What SQLite does with a file it cannot write: it opens it read-only, and the
        # connection stays read-only after the file is writable again.
        if not writable[0]:
            return real_connect(f"file:{database}?mode=ro", *args, uri=True,
                                **{k: v for k, v in kwargs.items() if k != "uri"})
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    monkeypatch.setattr(sqlite3.dbapi2, "connect", connect)  # what SQLAlchemy calls
    first = signed(http, member, "POST", "/v1/lookups", _lookup(bytes(32)))
    assert first.status_code == 503, first.get_data(as_text=True)
    assert first.get_json()["type"] == "urn:clue:problem:unavailable"
    writable[0] = True  # the file is writable again; nothing is restarted
    answers = [signed(http, member, "POST", "/v1/lookups", _lookup(bytes(32))).status_code
               for _ in range(3)]
    assert answers[-2:] == [200, 200], answers
