"""Daily quotas: 429 problem+json with Retry-After, nothing stored, batches refused whole,
overrides over defaults, counters shared by app instances (database and Redis), replays
not counted twice, and the ``clue-server quota`` commands (audited)."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from clue_client import ReportInput
from clue_client.errors import RateLimitedError
from clue_server import create_app, db
from clue_server.audit.models import AuditEvent
from clue_server.cli import main as server_cli
from clue_server.quotas import services as quotas
from clue_server.reports.models import Report
from clue_server.stats.models import DailyUsage
from tests.helpers import signed

PHONES = [f"090-1111-{n:04d}" for n in range(10)]


def _set_quota(app: Any, member_id: str, lookups: int | None = None,
               registrations: int | None = None) -> None:
    with db.session_scope(app) as session:
        quotas.set_member_quota(session, member_id, lookups, registrations, actor="test")


def _count(app: Any, query: Any) -> int:
    with db.session_scope(app) as session:
        return int(session.scalar(query) or 0)


def _lookup_body(n: int) -> dict[str, Any]:
    return {"items": [{"type": "phone", "key_version": 1, "token": "A" * 43}
                      for _ in range(n)]}


@pytest.fixture
def redis_app(database_url: str, server_keys_dir: Path, redis_url: str) -> Iterator[Any]:
    application = make_redis_app(database_url, server_keys_dir, redis_url,
                                 f"clue-test:{secrets.token_hex(6)}:")
    yield application
    db.dispose(application)


def make_redis_app(database_url: str, keys_dir: Path, redis_url: str, prefix: str) -> Any:
    application = create_app({"database_url": database_url, "server_keys_dir": keys_dir,
                              "redis_url": redis_url, "quota_key_prefix": prefix})
    application.config["TESTING"] = True
    return application


def test_a_lookup_over_the_quota_is_429_with_retry_after_and_counts_the_rejection(
        app, http, make_member):
    member = make_member()
    _set_quota(app, member.member_id, lookups=5)
    assert signed(http, member, "POST", "/v1/lookups", _lookup_body(3)).status_code == 200

    before = dt.datetime.now(dt.UTC)
    refused = signed(http, member, "POST", "/v1/lookups", _lookup_body(3))

    assert refused.status_code == 429
    assert refused.content_type == "application/problem+json"
    problem = refused.get_json()
    assert problem["type"] == "urn:clue:problem:quota-exceeded"
    assert (problem["quota"], problem["limit"], problem["used"], problem["requested"]) == (
        "lookups", 5, 3, 3)
    midnight = dt.datetime.combine(before.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    assert problem["resets_at"] == midnight.isoformat().replace("+00:00", "Z")
    retry_after = int(refused.headers["Retry-After"])
    assert abs(retry_after - (midnight - before).total_seconds()) <= 2
    assert problem["retry_after"] == retry_after
    assert "Signature" in refused.headers  # still a signed answer
    # The two that still fit are served; the refusal was counted, per type.
    assert signed(http, member, "POST", "/v1/lookups", _lookup_body(2)).status_code == 200
    assert signed(http, member, "POST", "/v1/lookups", _lookup_body(1)).status_code == 429
    with db.session_scope(app) as session:
        row = session.get(DailyUsage, (before.date(), member.member_id, "phone"))
        assert (row.lookups, row.quota_rejections) == (5, 4)


def test_the_sdk_raises_rate_limited_and_a_refused_registration_stores_nothing(
        app, make_member, make_client):
    member = make_member()
    client, _ = make_client(member)
    _set_quota(app, member.member_id, registrations=4, lookups=2)
    client.register_many([ReportInput("phone", p, "phishing") for p in PHONES[:2]])

    with pytest.raises(RateLimitedError) as caught:
        # Two would fit, three do not: the batch is refused whole.
        client.register_many([ReportInput("phone", p, "phishing") for p in PHONES[2:5]])
    assert caught.value.status == 429
    assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 86400
    assert caught.value.problem["type"] == "urn:clue:problem:quota-exceeded"
    assert _count(app, select(func.count()).select_from(Report)) == 2
    # Re-registering known reports uses nothing up; then two new ones still fit.
    client.register_many([ReportInput("phone", p, "phishing") for p in PHONES[:2]])
    client.register_many([ReportInput("phone", p, "phishing") for p in PHONES[2:4]])
    assert _count(app, select(func.count()).select_from(Report)) == 4

    client.lookup_many([("phone", PHONES[0]), ("phone", PHONES[9])])
    with pytest.raises(RateLimitedError):
        client.lookup(phone=PHONES[0])
    today = dt.datetime.now(dt.UTC).date()
    with db.session_scope(app) as session:
        row = session.get(DailyUsage, (today, member.member_id, "phone"))
        # 3 refused registrations of phones, then 1 refused look-up.
        assert (row.lookups, row.hits, row.quota_rejections) == (2, 1, 4)


def test_an_override_beats_the_default_and_clearing_it_restores_the_default(
        app, http, make_member):
    member, other = make_member("Small Pay"), make_member("Other Pay")
    with db.session_scope(app) as session:
        quotas.set_defaults(session, 2, 2, actor="test")
    _set_quota(app, member.member_id, lookups=4)

    assert signed(http, member, "POST", "/v1/lookups", _lookup_body(4)).status_code == 200
    assert signed(http, other, "POST", "/v1/lookups", _lookup_body(3)).status_code == 429
    with db.session_scope(app) as session:
        assert quotas.effective_quota(session, member.member_id) == (4, 2, True, False)
        quotas.clear_member_quota(session, member.member_id, actor="test")
        assert quotas.effective_quota(session, member.member_id) == (2, 2, False, False)
        used = quotas.usage_today(session, member.member_id)
        assert (used.lookups, used.lookups_limit) == (4, 2)
    assert signed(http, member, "POST", "/v1/lookups", _lookup_body(1)).status_code == 429


def test_an_idempotent_replay_is_not_counted_twice(app, http, make_member):
    member = make_member()
    _set_quota(app, member.member_id, registrations=1)
    body = {"reports": [{"type": "phone", "category": "phishing", "key_version": 1,
                         "token": "B" * 42 + "A"}]}
    first = signed(http, member, "POST", "/v1/reports", body, headers={"Idempotency-Key": "k1"})
    again = signed(http, member, "POST", "/v1/reports", body, headers={"Idempotency-Key": "k1"})

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    with db.session_scope(app) as session:
        assert quotas.usage_today(session, member.member_id).registrations == 1


def test_database_counters_are_shared_by_two_app_instances(app, http, database_url,
                                                           server_keys_dir, make_member):
    second = create_app({"database_url": database_url, "server_keys_dir": server_keys_dir,
                         "redis_url": None})
    try:
        member = make_member()
        _set_quota(app, member.member_id, lookups=4)
        assert signed(http, member, "POST", "/v1/lookups", _lookup_body(3)).status_code == 200
        other_http = second.test_client()
        assert signed(other_http, member, "POST", "/v1/lookups",
                      _lookup_body(2)).status_code == 429
        assert signed(other_http, member, "POST", "/v1/lookups",
                      _lookup_body(1)).status_code == 200
        assert signed(http, member, "POST", "/v1/lookups", _lookup_body(1)).status_code == 429
    finally:
        db.dispose(second)


def test_concurrent_lookups_never_exceed_the_quota(app, make_member):
    member = make_member()
    _set_quota(app, member.member_id, lookups=5)
    statuses: list[int] = []

    def ask() -> None:
        statuses.append(signed(app.test_client(), member, "POST", "/v1/lookups",
                               _lookup_body(1)).status_code)

    threads = [threading.Thread(target=ask) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200] * 5 + [429] * 7
    with db.session_scope(app) as session:
        assert quotas.usage_today(session, member.member_id).lookups == 5


def test_redis_counters_are_shared_by_two_app_instances(redis_app, database_url,
                                                        server_keys_dir, redis_url,
                                                        make_member, monkeypatch):
    prefix = redis_app.extensions["clue_settings"].quota_key_prefix
    second = make_redis_app(database_url, server_keys_dir, redis_url, prefix)
    try:
        member = make_member()
        _set_quota(redis_app, member.member_id, lookups=4, registrations=2)
        one, two = redis_app.test_client(), second.test_client()
        counter = redis_app.extensions["clue_lookup_counter"]
        today = dt.datetime.now(dt.UTC).date()

        assert signed(one, member, "POST", "/v1/lookups", _lookup_body(3)).status_code == 200
        with db.session_scope(redis_app) as session:
            assert counter.used(session.connection(), member.member_id, today) == 3
        assert signed(two, member, "POST", "/v1/lookups", _lookup_body(2)).status_code == 429
        assert signed(two, member, "POST", "/v1/lookups", _lookup_body(1)).status_code == 200
        assert signed(one, member, "POST", "/v1/lookups", _lookup_body(1)).status_code == 429
        with db.session_scope(redis_app) as session:
            assert counter.used(session.connection(), member.member_id, today) == 4
            assert quotas.usage_today(session, member.member_id).lookups == 4
        ttl = counter.redis.ttl(counter.key(member.member_id, today))
        assert 0 < ttl <= 86400 + 3600

        # Registrations are counted in the database, in the registration's transaction:
        # one that fails counts nothing, whatever happened in between.
        good = {"reports": [{"type": "phone", "category": "phishing", "key_version": 1,
                             "token": "C" * 42 + "A"}]}
        with monkeypatch.context() as patch:
            patch.setattr("clue_server.reports.services.register", _boom)
            assert signed(one, member, "POST", "/v1/reports", good).status_code == 500
        with db.session_scope(redis_app) as session:
            assert quotas.usage_today(session, member.member_id).registrations == 0
        # A duplicate registration is free in the end; an idempotent replay takes nothing.
        assert signed(one, member, "POST", "/v1/reports", good).status_code == 201
        for _ in range(2):
            again = signed(two, member, "POST", "/v1/reports", good,
                           headers={"Idempotency-Key": "r1"})
            assert again.status_code == 200
        assert again.headers["Idempotent-Replayed"] == "true"
        with db.session_scope(redis_app) as session:
            assert quotas.usage_today(session, member.member_id).registrations == 1
        # The look-up usage waits in Redis until a worker folds it into daily_usage.
        assert counter.flush() > 0
        assert counter.flush() == 0
        with db.session_scope(redis_app) as session:
            row = session.get(DailyUsage, (today, member.member_id, "phone"))
            assert (row.lookups, row.registrations, row.quota_rejections) == (4, 1, 3)
    finally:
        db.dispose(second)


def test_a_fold_interrupted_after_its_commit_is_not_counted_twice(redis_app, make_member):
    member = make_member()
    http = redis_app.test_client()
    counter = redis_app.extensions["clue_lookup_counter"]
    assert signed(http, member, "POST", "/v1/lookups", _lookup_body(2)).status_code == 200
    # A worker dies after its fold committed but before it dropped the batch from Redis.
    real_delete = counter.redis.delete
    calls = []

    def die_once(*keys: str) -> int:
        if not calls and counter.buffer_keys[1] in keys:
            calls.append(keys)
            raise RuntimeError("worker killed")
        return int(real_delete(*keys))

    counter.redis.delete = die_once
    try:
        with pytest.raises(RuntimeError):
            counter.flush()
    finally:
        counter.redis.delete = real_delete
    real_delete(f"{counter.prefix}usage:lock")
    assert counter.flush() > 0  # the next fold finds the batch, sees it folded, drops it
    today = dt.datetime.now(dt.UTC).date()
    with db.session_scope(redis_app) as session:
        row = session.get(DailyUsage, (today, member.member_id, "phone"))
        assert row.lookups == 2


def test_usage_of_a_member_this_database_does_not_know_is_dropped_not_fatal(
        redis_app, make_member, caplog):
    """Another CLUE sharing the Redis database and key prefix (or a member purged while
    its usage waited) leaves counters nobody here can own: the fold drops them with a
    warning and folds the rest. Before, the whole batch failed on the foreign key, at
    every fold, and each time the look-up carrying the fold answered 500."""
    member = make_member()
    http = redis_app.test_client()
    counter = redis_app.extensions["clue_lookup_counter"]
    today = dt.datetime.now(dt.UTC).date()
    counter.redis.hincrby(counter.buffer_keys[0], f"{today.isoformat()}|m_elsewhere|phone|lookups",
                          7)
    assert signed(http, member, "POST", "/v1/lookups", _lookup_body(2)).status_code == 200
    with caplog.at_level("WARNING", logger="clue_server.quotas.counters"):
        assert counter.flush() > 0
    assert "m_elsewhere" in caplog.text and "share this Redis" in caplog.text
    assert counter.flush() == 0  # nothing left behind to fail again
    with db.session_scope(redis_app) as session:
        assert session.get(DailyUsage, (today, member.member_id, "phone")).lookups == 2
        assert session.get(DailyUsage, (today, "m_elsewhere", "phone")) is None


@pytest.mark.parametrize("outage", [False, True], ids=["bug", "outage"])
def test_a_fold_that_fails_never_fails_the_lookup_it_rides_on(
        redis_app, make_member, monkeypatch, caplog, outage):
    import redis

    member = make_member()
    http = redis_app.test_client()
    counter = redis_app.extensions["clue_lookup_counter"]
    assert signed(http, member, "POST", "/v1/lookups", _lookup_body(1)).status_code == 200
    counter._next_flush = 0.0  # the next look-up folds

    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise redis.ConnectionError("gone") if outage else RuntimeError("a bug")

    with monkeypatch.context() as patch, caplog.at_level("WARNING"):
        patch.setattr("clue_server.quotas.counters.add_usage", fail)
        assert signed(http, member, "POST", "/v1/lookups", _lookup_body(2)).status_code == 200
    [record] = [r for r in caplog.records if "folded again" in r.getMessage()]
    # An outage is one line; anything else is a bug and carries its traceback.
    assert record.levelname == ("WARNING" if outage else "ERROR")
    assert ("Traceback" in record.getMessage() or "line " in record.getMessage()) != outage
    assert counter.flush() > 0  # the batch waited in Redis; folded once the cause is gone
    today = dt.datetime.now(dt.UTC).date()
    with db.session_scope(redis_app) as session:
        assert session.get(DailyUsage, (today, member.member_id, "phone")).lookups == 3


def _boom(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("the database went away")


def test_quota_cli_shows_sets_and_clears_and_each_change_is_audited(app, make_member,
                                                                    database_url,
                                                                    server_keys_dir,
                                                                    monkeypatch):
    member = make_member()
    monkeypatch.setenv("CLUE_DATABASE_URL", database_url)
    monkeypatch.setenv("CLUE_SERVER_KEYS_DIR", str(server_keys_dir))
    monkeypatch.delenv("CLUE_REDIS_URL", raising=False)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(server_cli, ["quota", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert "default: lookups 200000/day, registrations 50000/day" in run("show")
    assert "lookups 500/day, registrations 50000/day" in run("default", "--lookups", "500")
    out = run("set", member.member_id, "--lookups", "7")
    assert (f"Example Pay ({member.member_id}): today lookups 0/7 (override), "
            "registrations 0/50000") in out
    out = run("set", member.member_id, "--registrations", "9")
    assert "lookups 0/7 (override), registrations 0/9 (override)" in out
    assert "lookups 0/500, registrations 0/50000" in run("clear", member.member_id)
    assert member.member_id in run("show", member.member_id)

    bad = runner.invoke(server_cli, ["quota", "set", "m_nobody", "--lookups", "1"])
    assert bad.exit_code != 0 and "no member" in bad.output
    negative = runner.invoke(server_cli, ["quota", "default", "--lookups", "0"])
    assert negative.exit_code != 0
    with db.session_scope(app) as session:
        events = session.execute(select(AuditEvent.actor, AuditEvent.action, AuditEvent.subject,
                                        AuditEvent.details)
                                 .where(AuditEvent.action.like("quota.%"))
                                 .order_by(AuditEvent.id)).all()
    assert [(e.actor, e.action, e.subject) for e in events] == [
        ("council", "quota.defaults", "council"), ("council", "quota.set", member.member_id),
        ("council", "quota.set", member.member_id), ("council", "quota.clear", member.member_id)]
    assert json.loads(json.dumps(events[2].details)) == {"daily_lookups": 7,
                                                         "daily_registrations": 9}


def _replay(http: Any, member: Any, body: dict[str, Any]) -> tuple[Any, Any]:
    """The same signed look-up twice (same nonce, same signature time)."""
    nonce, created = secrets.token_urlsafe(18), dt.datetime.now(dt.UTC)
    first = signed(http, member, "POST", "/v1/lookups", body, nonce=nonce, created=created)
    again = signed(http, member, "POST", "/v1/lookups", body, nonce=nonce, created=created)
    return first, again


@pytest.mark.parametrize("store", ["database", "redis"])
def test_a_replayed_lookup_is_refused_and_counts_nothing(store, app, redis_app, make_member):
    # The nonce is claimed in the same statement (or script) that counts the look-up.
    application = app if store == "database" else redis_app
    http = application.test_client()
    member = make_member()
    first, again = _replay(http, member, _lookup_body(3))
    assert first.status_code == 200
    assert (again.status_code, again.get_json()["type"]) == (401, "urn:clue:problem:replayed")
    with db.session_scope(application) as session:
        assert quotas.usage_today(session, member.member_id).lookups == 3


@pytest.mark.parametrize("store", ["database", "redis"])
def test_a_lookup_refused_for_quota_still_uses_up_its_nonce(store, app, redis_app, make_member):
    application = app if store == "database" else redis_app
    http = application.test_client()
    member = make_member()
    _set_quota(application, member.member_id, lookups=2)
    first, again = _replay(http, member, _lookup_body(3))
    assert first.status_code == 429
    assert (again.status_code, again.get_json()["type"]) == (401, "urn:clue:problem:replayed")
    # A malformed look-up (refused before its counting statement) uses it up as well.
    bad, bad_again = _replay(http, member, {"items": [{"type": "phone"}]})
    assert bad.status_code == 400
    assert (bad_again.status_code, bad_again.get_json()["type"]) == (
        401, "urn:clue:problem:replayed")
