"""A member's view of its own reports (issue 12): find them by token, see the server's
limits before sending, and see what the council suspended.

``POST /v1/reports/search`` answers only about the caller's reports, with tokens in the
body (never in the URL); ``GET /v1/limits`` publishes what the server accepts; a report
suspended after a missed dispute deadline stays visible to its owner, and so does the
dispute that suspended it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import func, select, update

from clue_client import ReportInput
from clue_client.tokens import encode_token
from clue_server import db
from clue_server.disputes import services as disputes
from clue_server.disputes.models import Dispute
from clue_server.quotas import services as quotas
from clue_server.quotas import settings as council
from clue_server.reports.models import Report
from clue_server.stats.models import DailyUsage
from tests.helpers import signed

PHONE = "090-1234-5678"
TOKEN = encode_token(bytes(range(32)))


def _item(**fields: Any) -> dict[str, Any]:
    item = {"type": "phone", "key_version": 1, "token": TOKEN}
    return {k: v for k, v in {**item, **fields}.items() if v is not ...}


# -- finding one's own reports ------------------------------------------------------------


def test_search_finds_only_the_callers_reports_under_every_type_and_form(
        app: Any, make_member: Any, make_client: Any) -> None:
    mine, theirs = make_member("Mine Pay"), make_member("Their Bank")
    client, adapter = make_client(mine)
    other, _ = make_client(theirs)
    created = client.register_many([
        ReportInput("phone", PHONE, "card_theft"),
        ReportInput("phone", PHONE, "phishing"),
        ReportInput("email", "J.Doe+shop@gmail.com", "phishing"),
        ReportInput("ip", "8.8.4.7", "phishing", expires_in_days=3)])
    other.register("phone", PHONE, "card_theft")
    other.register("device_id", "dev-1", "other")

    found = client.find_reports([("phone", "+81 90 1234 5678"), ("email", "jdoe@gmail.com"),
                                 ("email", "j.doe+shop@gmail.com"), ("device_id", "dev-1"),
                                 ("ip", "8.8.4.7"), ("phone", "03-1234-5678")])
    exact = [[r.id for r in e] for e, _ in found]
    folded = [[r.id for r in f] for _, f in found]
    assert exact == [sorted([created[0].id, created[1].id]), [], [created[2].id], [],
                     [created[3].id], []]
    # Only the folded address matches: listed apart, so a withdrawal by value never
    # takes it by accident.
    assert folded == [[], [created[2].id], [], [], [], []]
    assert {r.category for r in found[0][0]} == {"card_theft", "phishing"}
    # The other member's identical phone and its device are never disclosed.
    # Tokens travelled in the body only; the URL is the bare path.
    searches = [r for r in adapter.captured if r.path_url.startswith("/v1/reports/search")]
    assert searches and all(r.path_url == "/v1/reports/search" for r in searches)
    assert all(r.method == "POST" for r in searches)


def test_search_lists_expired_and_suspended_reports_flagged(
        app: Any, make_member: Any, make_client: Any) -> None:
    creds = make_member()
    client, _ = make_client(creds)
    report = client.register("phone", PHONE, "card_theft")
    with db.session_scope(app) as session:
        session.execute(update(Report).where(Report.id == report.id).values(
            suspended_at=db.utcnow(), expires_at=db.utcnow() - dt.timedelta(seconds=1)))
    (exact, _), = client.find_reports([("phone", PHONE)])
    assert [(r.id, r.expired, r.suspended) for r in exact] == [(report.id, True, True)]
    assert exact[0].suspended_at is not None


def test_search_finds_reports_made_under_an_older_network_key_version(
        app: Any, make_member: Any, make_client: Any) -> None:
    import keys

    creds = make_member()
    v1 = keys.new_symmetric_key("network", 1)
    old, _ = make_client(creds, keys.Keyring([v1]))
    report = old.register("phone", PHONE, "card_theft")
    both, _ = make_client(creds, keys.Keyring([keys.new_symmetric_key("network", 2), v1]))
    (exact, _), = both.find_reports([("phone", PHONE)])
    assert [r.id for r in exact] == [report.id]


BAD_SEARCHES: list[tuple[str, Any, int]] = [
    ("root is an array", [_item()], 400),
    ("items missing", {}, 400),
    ("unknown root field", {"items": [_item()], "member_id": "m_x"}, 400),
    ("items empty", {"items": []}, 422),
    ("1001 items", {"items": [_item()] * 1001}, 422),
    ("item not an object", {"items": ["x"]}, 400),
    ("unknown item field", {"items": [_item(member_id="m_x")]}, 400),
    ("token missing", {"items": [_item(token=...)]}, 400),
    ("token short", {"items": [_item(token=TOKEN[:42])]}, 422),
    ("token padded", {"items": [_item(token=TOKEN[:42] + "=")]}, 422),
    ("token not a string", {"items": [_item(token=7)]}, 400),
    ("unknown type", {"items": [_item(type="fax")]}, 422),
    ("key_version zero", {"items": [_item(key_version=0)]}, 422),
    ("key_version a string", {"items": [_item(key_version="1")]}, 400),
    ("folded_token on a phone", {"items": [_item(folded_token=TOKEN)]}, 422),
    ("hostile field name", {"items": [_item(**{"x" * 5000: 1})]}, 400),
]


@pytest.mark.parametrize(("name", "body", "status"), BAD_SEARCHES,
                         ids=[c[0] for c in BAD_SEARCHES])
def test_malformed_searches_are_refused_with_a_problem(http: Any, make_member: Any, name: str,
                                                       body: Any, status: int) -> None:
    answer = signed(http, make_member(), "POST", "/v1/reports/search", body)
    assert answer.status_code == status, answer.get_data()
    assert answer.mimetype == "application/problem+json"
    assert len(answer.get_data()) < 2000  # a hostile name is cut, never echoed whole


def test_search_refuses_oversized_non_json_and_unsigned_bodies(http: Any,
                                                                make_member: Any) -> None:
    creds = make_member()
    huge = signed(http, creds, "POST", "/v1/reports/search", raw=b"{" + b" " * (1 << 20) + b"}")
    assert huge.status_code == 413
    not_json = signed(http, creds, "POST", "/v1/reports/search", raw=b"\xff\xfe{",)
    assert not_json.status_code == 400
    as_text = signed(http, creds, "POST", "/v1/reports/search", raw=b"{}",
                     headers={"Content-Type": "text/plain"})
    assert as_text.status_code == 415
    unsigned = http.post("/v1/reports/search", json={"items": [_item()]})
    assert unsigned.status_code == 401
    assert signed(http, creds, "GET", "/v1/reports/search").status_code == 405


def test_search_counts_against_no_quota_and_writes_nothing(app: Any, http: Any,
                                                           make_member: Any) -> None:
    creds = make_member()
    with db.session_scope(app) as session:
        quotas.set_member_quota(session, creds.member_id, 0, 0, actor="test")
    answer = signed(http, creds, "POST", "/v1/reports/search", {"items": [_item()] * 1000})
    assert answer.status_code == 200
    assert answer.get_json() == {"results": [{"exact": [], "folded": []}] * 1000}
    with db.session_scope(app) as session:
        assert session.scalar(select(func.count()).select_from(DailyUsage)) == 0


# -- limits ------------------------------------------------------------------------------


def test_limits_publish_batch_body_retention_and_todays_quota(app: Any, make_member: Any,
                                                             make_client: Any) -> None:
    creds = make_member()
    client, _ = make_client(creds)
    with db.session_scope(app) as session:
        council.set_int(session, "retention_days.ip", 14)
        quotas.set_member_quota(session, creds.member_id, 100, 5, actor="test")
    client.register_many([ReportInput("phone", PHONE, "card_theft"),
                          ReportInput("ip", "8.8.4.1", "phishing")])
    client.lookup(phone=PHONE)
    limits = client.limits()
    assert limits["max_batch_items"] == 1000 and limits["max_body_bytes"] == 1 << 20
    assert limits["max_sealed_note_bytes"] == 1028
    assert limits["retention_days"]["ip"] == 14 and limits["retention_days"]["phone"] == 365
    assert limits["quotas"]["registrations"] == {"limit": 5, "used": 2, "remaining": 3}
    assert limits["quotas"]["lookups"] == {"limit": 100, "used": 1, "remaining": 99}
    assert limits["quotas"]["resets_at"].endswith("T00:00:00Z")


def test_limits_refuse_query_parameters_and_unsigned_requests(http: Any,
                                                              make_member: Any) -> None:
    creds = make_member()
    assert signed(http, creds, "GET", "/v1/limits?member=m_x").status_code == 400
    assert http.get("/v1/limits").status_code == 401
    assert signed(http, creds, "POST", "/v1/limits", {}).status_code == 405


# -- suspended reports stay visible to their owner ----------------------------------------


def test_a_suspended_report_and_its_dispute_stay_visible_to_the_silent_reporter(
        app: Any, make_member: Any, make_client: Any) -> None:
    reporter, filer = make_member("Silent Pay"), make_member("Filer Bank")
    client, _ = make_client(reporter)
    filer_client, _ = make_client(filer)
    report = client.register("phone", PHONE, "card_theft")
    kept = client.register("email", "x@example.com", "phishing")
    filed = filer_client.open_dispute("phone", PHONE, "The customer says the number is new.")
    with db.session_scope(app) as session:
        session.execute(update(Dispute).values(deadline=db.utcnow() - dt.timedelta(days=1)))
    with db.session_scope(app) as session:
        assert disputes.suspend_overdue(session, db.utcnow(), "staff:alice") == 1

    listed = {r.id: r for r in client.reports()}
    assert listed[report.id].suspended and not listed[kept.id].suspended
    assert listed[report.id].suspended_at is not None
    incoming = client.incoming_disputes()
    assert [(d.id, d.status) for d in incoming] == [(filed.id, "expired")]
    assert incoming[0].reports[0].id == report.id
    assert incoming[0].reports[0].suspended_at is not None and incoming[0].reports[0].suspended
    # Withdrawn, it is gone from both views.
    client.withdraw(report.id)
    assert client.incoming_disputes() == []
    assert report.id not in {r.id for r in client.reports()}


def test_an_expired_dispute_the_reporter_answered_does_not_come_back(
        app: Any, make_member: Any, make_client: Any) -> None:
    answered, silent, filer = (make_member(n) for n in ("Answered", "Silent", "Filer"))
    client_answered, _ = make_client(answered)
    client_silent, _ = make_client(silent)
    client_filer, _ = make_client(filer)
    client_answered.register("phone", PHONE, "card_theft")
    client_silent.register("phone", PHONE, "phishing")
    filed = client_filer.open_dispute("phone", PHONE, "Reassigned number.")
    client_answered.answer_dispute(filed.id, "uphold", "Confirmed.")
    with db.session_scope(app) as session:
        disputes.suspend_overdue(session, db.utcnow() + dt.timedelta(days=30), "staff:alice")
    assert client_answered.incoming_disputes() == []
    assert [d.status for d in client_silent.incoming_disputes()] == ["expired"]
    assert json.dumps([d.to_json() for d in client_silent.incoming_disputes()]
                      ).count(filer.member_id) == 0
