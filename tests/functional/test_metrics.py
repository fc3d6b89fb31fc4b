"""``/metrics``: Prometheus text, counted by URL rule and status, lookups and hits by type,
quota rejections; served on the CLUE_METRICS_BIND listener or to console staff, else 404."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clue_client import ReportInput
from clue_server import create_app, db
from clue_server.metrics import on_metrics_listener, split_bind
from clue_server.quotas import services as quotas
from tests.functional.console_helpers import add_staff, login
from tests.helpers import signed

METRICS_BIND = "127.0.0.1:9464"
METRICS_BASE = f"http://{METRICS_BIND}"


@pytest.fixture
def app(database_url: str, server_keys_dir: Path) -> Iterator[Any]:
    application = create_app({"database_url": database_url, "server_keys_dir": server_keys_dir,
                              "redis_url": None, "metrics_bind": METRICS_BIND})
    application.config["TESTING"] = True
    application.secret_key = "test-only-secret"
    yield application
    application.extensions["clue_engine"].dispose()


def scrape(http: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = http.get("/metrics", base_url=METRICS_BASE)
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.get_data(as_text=True))
            for s in family.samples}


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_requests_lookups_hits_and_rejections_are_counted(app, http, make_member, make_client):
    member = make_member()
    client, _ = make_client(member)
    before = scrape(http)

    made = client.register_many([ReportInput("phone", "090-1234-5678", "phishing"),
                                 ReportInput("email", "x@example.com", "phishing")])
    client.lookup_many([("phone", "090-1234-5678"), ("phone", "080-0000-1111"),
                        ("email", "x@example.com")])
    client.withdraw(made[0].id)
    with db.session_scope(app) as session:
        quotas.set_member_quota(session, member.member_id, 3, None, actor="test")
    assert signed(http, member, "POST", "/v1/lookups",
                  {"items": [{"type": "ip", "key_version": 1, "token": "A" * 43}]}
                  ).status_code == 429
    http.get("/no/such/path/123")
    after = scrape(http)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("clue_http_requests_total", route="/v1/lookups", method="POST",
                 status="200") == 1
    assert delta("clue_http_requests_total", route="/v1/lookups", method="POST",
                 status="429") == 1
    assert delta("clue_http_requests_total", route="/v1/reports", method="POST",
                 status="201") == 1
    assert delta("clue_http_requests_total", route="/v1/reports/<report_id>", method="DELETE",
                 status="200") == 1
    assert delta("clue_http_requests_total", route="<unmatched>", method="GET",
                 status="404") == 1
    assert delta("clue_http_request_duration_seconds_count", route="/v1/lookups",
                 method="POST", status="200") == 1
    assert delta("clue_lookups_total", type="phone") == 2
    assert delta("clue_lookups_total", type="email") == 1
    assert delta("clue_lookup_hits_total", type="phone") == 1
    assert delta("clue_lookup_hits_total", type="email") == 1
    assert delta("clue_registrations_total", type="phone") == 1
    assert delta("clue_quota_rejections_total", quota="lookups") == 1
    assert delta("clue_quota_rejected_items_total", quota="lookups") == 1
    # No raw path is ever a label.
    assert not any("/no/such" in str(key) for key in after)


def test_metrics_are_404_on_the_normal_listener_and_served_to_staff(app, http):
    refused = http.get("/metrics")
    assert refused.status_code == 404
    assert refused.get_json()["type"] == "urn:clue:problem:not-found"
    assert refused.get_data() == http.get("/nowhere").get_data()
    with http.session_transaction() as session:
        session["staff_user"] = "alice"  # a cookie that merely names someone is not enough
    assert http.get("/metrics").status_code == 404
    add_staff(app, "alice")
    assert login(http, "alice").status_code == 302  # a live console session is
    answer = http.get("/metrics")
    assert answer.status_code == 200
    assert b"clue_http_requests_total" in answer.get_data()


def test_without_a_metrics_bind_only_staff_see_metrics(database_url, server_keys_dir):
    application = create_app({"database_url": database_url, "server_keys_dir": server_keys_dir,
                              "redis_url": None})
    try:
        assert application.test_client().get("/metrics", base_url=METRICS_BASE).status_code == 404
    finally:
        application.extensions["clue_engine"].dispose()


class _Socket:
    def __init__(self, local: Any) -> None:
        self.local = local

    def getsockname(self) -> Any:
        return self.local


class _Request:
    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ


@pytest.mark.parametrize(("bind", "environ", "expected"), [
    ("127.0.0.1:9464", {"gunicorn.socket": _Socket(("127.0.0.1", 9464)),
                        "SERVER_NAME": "x", "SERVER_PORT": "1"}, True),
    # gunicorn's socket wins over headers a client could shape.
    ("127.0.0.1:9464", {"gunicorn.socket": _Socket(("127.0.0.1", 8080)),
                        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "9464"}, False),
    ("0.0.0.0:9464", {"gunicorn.socket": _Socket(("10.1.2.3", 9464))}, True),
    ("[::1]:9464", {"gunicorn.socket": _Socket(("::1", 9464, 0, 0))}, True),
    ("127.0.0.1:9464", {"gunicorn.socket": _Socket("/tmp/clue.sock")}, False),
    ("127.0.0.1:9464", {"SERVER_NAME": "127.0.0.1", "SERVER_PORT": "9464"}, True),
    ("127.0.0.1:9464", {"SERVER_NAME": "10.0.0.1", "SERVER_PORT": "9464"}, False),
    (None, {"SERVER_NAME": "127.0.0.1", "SERVER_PORT": "9464"}, False),
])
def test_the_metrics_listener_is_recognised_by_its_local_address(bind, environ, expected):
    assert on_metrics_listener(_Request(environ), bind) is expected  # type: ignore[arg-type]


def test_a_bad_metrics_bind_is_refused():
    assert split_bind("[::]:9100") == ("::", 9100)
    with pytest.raises(ValueError, match="host:port"):
        split_bind("localhost")
