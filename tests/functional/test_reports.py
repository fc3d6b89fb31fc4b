"""Registering, withdrawing, listing and expiring reports through the real SDK.

Issue 2, musts 4-7: a batch is one transaction, Idempotency-Key makes retries
safe, a member withdraws only its own reports, reports expire, and every write
is audited.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import secrets

import pytest
from sqlalchemy import func, select, update

from clue_client import InvalidIdentifier, NotFoundError, ReportInput, ValidationError
from clue_client.tokens import encode_token
from clue_server import db
from clue_server.audit.models import AuditEvent
from clue_server.reports import services as report_services
from clue_server.reports.models import Report
from tests.helpers import signed

PHONE = "090-1234-5678"
DAY = dt.timedelta(days=1)


# -- helpers -------------------------------------------------------------------


def _rows(app, member_id=None):
    with db.session_scope(app) as session:
        query = select(Report).order_by(Report.id)
        if member_id is not None:
            query = query.where(Report.member_id == member_id)
        return list(session.scalars(query))


def _count(app):
    with db.session_scope(app) as session:
        return session.scalar(select(func.count()).select_from(Report))


def _audit(app, action=None):
    with db.session_scope(app) as session:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        return [(e.actor, e.action, e.subject, e.details) for e in session.scalars(query)]


def _expire(app, report_id, ago=dt.timedelta(seconds=1)):
    with db.session_scope(app) as session:
        session.execute(update(Report).where(Report.id == report_id)
                        .values(expires_at=db.utcnow() - ago))


def _token():
    return encode_token(secrets.token_bytes(32))


def _item(**overrides):
    item = {"type": "phone", "category": "card_theft", "key_version": 1, "token": _token()}
    item.update(overrides)
    return item


def _record_responses(adapter):
    seen = []
    adapter.tamper = seen.append
    return seen


# -- registering -----------------------------------------------------------------


def test_register_one(app, make_member, make_client):
    creds = make_member()
    client, _ = make_client(creds)

    report = client.register("phone", PHONE, "card_theft")

    assert report.id.startswith("r_")
    assert (report.id_type, report.category, report.key_version) == ("phone", "card_theft", 1)
    assert report.created is True and report.expired is False
    [row] = _rows(app)
    assert (row.id, row.member_id, row.id_type, row.category) == (
        report.id, creds.member_id, "phone", "card_theft")


def test_register_many_returns_one_report_per_item_in_order(app, make_member, make_client):
    creds = make_member()
    client, adapter = make_client(creds)
    items = [ReportInput("phone", PHONE, "card_theft"),
             ReportInput("email", "fraud@example.com", "phishing"),
             ReportInput("ip", "8.8.8.8", "account_takeover"),
             ReportInput("device_id", "dev-42", "other"),
             ReportInput("bank_account", "0001-001-1-1234567", "bank_account_theft")]

    reports = client.register_many(items)

    assert [(r.id_type, r.category) for r in reports] == [(i.id_type, i.category) for i in items]
    assert all(r.created for r in reports)
    assert len({r.id for r in reports}) == 5
    assert {r.id for r in _rows(app, creds.member_id)} == {r.id for r in reports}
    assert len([r for r in adapter.captured if r.method == "POST"]) == 1  # one request


def test_invalid_identifier_in_a_batch_is_refused_before_sending(app, make_member, make_client):
    client, adapter = make_client(make_member())
    with pytest.raises(InvalidIdentifier):
        client.register_many([ReportInput("phone", PHONE, "card_theft"),
                              ReportInput("phone", "12", "card_theft")])
    assert adapter.captured == []
    assert _count(app) == 0


@pytest.mark.parametrize(("bad", "status", "field"), [
    ({"token": "A" * 42}, 422, "token"),
    ({"token": "+" * 43}, 422, "token"),
    ({"category": "shoplifting"}, 422, "category"),
    ({"type": "passport"}, 422, "type"),
    ({"folded_token": "B" * 43}, 422, "folded_token"),  # folded only for e-mail
    ({"expires_in_days": 366}, 422, "expires_in_days"),
    ({"key_version": 0}, 422, "key_version"),
    ({"colour": "red"}, 400, "colour"),
])
def test_a_bad_row_rejects_the_whole_batch_and_names_its_index(app, http, make_member, bad,
                                                             status, field):
    creds = make_member()
    rows = [_item() for _ in range(5)]
    rows[3] = _item(**bad)

    response = signed(http, creds, "POST", "/v1/reports", {"reports": rows})

    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["index"] == 3
    assert problem["field"] == field
    assert problem["pointer"] == f"/reports/3/{field}"
    assert problem["detail"].startswith(f"item 3: {field} ")
    assert problem["type"] in ("urn:clue:problem:validation", "urn:clue:problem:bad-request")
    assert _count(app) == 0
    assert _audit(app, "report.register") == []


def test_a_good_batch_of_the_same_shape_is_stored(app, http, make_member):
    # The control for the test above: the same request without the bad row lands.
    creds = make_member()
    response = signed(http, creds, "POST", "/v1/reports", {"reports": [_item() for _ in range(5)]})
    assert response.status_code == 201
    assert _count(app) == 5


# -- idempotency -------------------------------------------------------------------


def test_same_key_same_body_replays_the_first_answer(app, make_member, make_client):
    creds = make_member()
    client, adapter = make_client(creds)
    responses = _record_responses(adapter)
    items = [ReportInput("phone", PHONE, "card_theft"),
             ReportInput("email", "a@example.com", "phishing")]

    first = client.register_many(items, idempotency_key="import-2024-07-01")
    again = client.register_many(items, idempotency_key="import-2024-07-01")

    assert [r.id for r in again] == [r.id for r in first]
    assert again == first  # byte-for-byte the first answer, created flags included
    assert "Idempotent-Replayed" not in responses[0].headers
    assert responses[1].headers["Idempotent-Replayed"] == "true"
    assert responses[1].status_code == responses[0].status_code == 201
    assert len(_rows(app)) == 2
    assert len(_audit(app, "report.register")) == 1


def test_a_plain_sdk_retry_never_duplicates(app, make_member, make_client):
    client, adapter = make_client(make_member())
    responses = _record_responses(adapter)
    first = client.register("phone", PHONE, "card_theft")
    again = client.register("phone", PHONE, "card_theft")
    assert (again.id, first.created, again.created) == (first.id, True, False)
    assert [r.status_code for r in responses] == [201, 200]
    assert "Idempotent-Replayed" not in responses[1].headers
    assert _count(app) == 1


def test_reregistering_after_a_withdrawal_registers_again(app, make_member, make_client):
    # A retry must never answer with a report that is gone (nothing would be stored).
    client, _ = make_client(make_member())
    first = client.register("phone", PHONE, "card_theft")
    client.withdraw(first.id)

    second = client.register("phone", PHONE, "card_theft")

    assert second.created is True and second.id != first.id
    assert [r.id for r in _rows(app)] == [second.id]
    assert client.lookup(phone=PHONE)["phone"].matched


def test_same_key_different_body_is_refused(app, make_member, make_client):
    client, _ = make_client(make_member())
    client.register("phone", PHONE, "card_theft", idempotency_key="k-1")

    with pytest.raises(ValidationError) as caught:
        client.register("phone", "090-9999-0000", "card_theft", idempotency_key="k-1")

    assert caught.value.status == 422
    assert caught.value.type == "urn:clue:problem:idempotency-key-reused"
    assert _count(app) == 1


def test_idempotency_keys_are_per_member(app, make_member, make_client):
    alice, _ = make_client(make_member("Alice Pay"))
    bob, _ = make_client(make_member("Bob Pay"))
    a = alice.register("phone", PHONE, "card_theft", idempotency_key="shared-key")
    b = bob.register("phone", "090-9999-0000", "phishing", idempotency_key="shared-key")
    assert a.id != b.id and b.created is True
    assert _count(app) == 2


def test_reregistering_without_a_key_returns_the_existing_report(app, http, make_member):
    creds = make_member()
    body = {"reports": [_item()]}

    first = signed(http, creds, "POST", "/v1/reports", body)
    second = signed(http, creds, "POST", "/v1/reports", body)

    assert first.status_code == 201
    assert second.status_code == 200
    assert "Idempotent-Replayed" not in second.headers
    [one] = first.get_json()["reports"]
    [two] = second.get_json()["reports"]
    assert one["created"] is True and two["created"] is False
    assert two["id"] == one["id"]
    assert _count(app) == 1
    assert len(_audit(app, "report.register")) == 1


def test_reregistering_through_the_sdk_with_a_new_key_stores_no_duplicate(app, make_member,
                                                                          make_client):
    client, _ = make_client(make_member())
    first = client.register("phone", PHONE, "card_theft", idempotency_key="run-1")
    # Another format of the same number: same token, so the same report.
    second = client.register("phone", "+81 90 1234 5678", "card_theft", idempotency_key="run-2")
    other_category = client.register("phone", PHONE, "phishing", idempotency_key="run-3")
    assert (second.id, second.created) == (first.id, False)
    assert other_category.created is True and other_category.id != first.id
    assert _count(app) == 2


def test_a_batch_repeating_one_identifier_stores_it_once(app, make_member, make_client):
    client, _ = make_client(make_member())
    reports = client.register_many([ReportInput("phone", PHONE, "card_theft"),
                                    ReportInput("phone", "09012345678", "card_theft")])
    assert reports[0].id == reports[1].id
    assert (reports[0].created, reports[1].created) == (True, False)
    assert _count(app) == 1


# -- withdrawing -------------------------------------------------------------------


def test_withdraw_own_report(app, make_member, make_client):
    creds = make_member()
    client, _ = make_client(creds)
    report = client.register("phone", PHONE, "card_theft")
    assert client.lookup(phone=PHONE)["phone"].matched

    client.withdraw(report.id)

    assert _rows(app) == []
    assert not client.lookup(phone=PHONE)["phone"].matched
    with pytest.raises(NotFoundError):  # withdrawing twice: it is gone
        client.withdraw(report.id)


def test_withdrawing_anothers_report_looks_exactly_like_an_absent_one(app, http, make_member,
                                                                    make_client):
    owner = make_member("Owner Pay")
    intruder = make_member("Intruder Pay")
    owner_client, _ = make_client(owner)
    report = owner_client.register("phone", PHONE, "card_theft")
    absent = report_services.new_report_id(db.utcnow())

    others = signed(http, intruder, "DELETE", f"/v1/reports/{report.id}")
    missing = signed(http, intruder, "DELETE", f"/v1/reports/{absent}")

    assert others.status_code == missing.status_code == 404
    assert others.mimetype == missing.mimetype == "application/problem+json"
    theirs, nothing = others.get_json(), missing.get_json()
    assert theirs["type"] == nothing["type"] == "urn:clue:problem:not-found"
    assert sorted(theirs) == sorted(nothing)
    assert theirs["title"] == nothing["title"]
    assert theirs["detail"].replace(report.id, "ID") == nothing["detail"].replace(absent, "ID")
    assert [r.id for r in _rows(app)] == [report.id]  # still there
    assert _audit(app, "report.withdraw") == []

    intruder_client, _ = make_client(intruder)
    with pytest.raises(NotFoundError) as caught:
        intruder_client.withdraw(report.id)
    assert caught.value.type == "urn:clue:problem:not-found"


# -- listing ------------------------------------------------------------------------


def test_reports_lists_only_own_reports_in_registration_order_across_pages(app, make_member,
                                                                         make_client):
    me = make_member("Me Pay")
    client, adapter = make_client(me)
    other, _ = make_client(make_member("Other Pay"))
    registered = []
    for n in range(4):
        registered.append(client.register("phone", f"090-1234-000{n}", "card_theft").id)
        other.register("phone", f"090-1234-000{n}", "card_theft")
    batch = client.register_many([ReportInput("device_id", f"device-{n}", "other")
                                  for n in range(5)])
    registered += [r.id for r in batch]
    adapter.captured.clear()

    listed = list(client.reports(page_size=3))

    assert [r.id for r in listed] == registered
    gets = [r for r in adapter.captured if r.method == "GET"]
    assert len(gets) == 3  # 9 reports, 3 per page
    assert all("limit=3" in r.url for r in gets)


def test_reports_of_a_member_without_any(make_member, make_client):
    client, _ = make_client(make_member())
    assert list(client.reports(page_size=2)) == []


# -- expiry -------------------------------------------------------------------------


@pytest.mark.parametrize(("id_type", "value", "days"), [
    ("ip", "8.8.8.8", 30),
    ("phone", PHONE, 365),
    ("email", "fraud@example.com", 365),
    ("device_id", "dev-1", 365),
])
def test_default_expiry_per_type(make_member, make_client, id_type, value, days):
    client, _ = make_client(make_member())
    report = client.register(id_type, value, "other")
    assert report.expires_at - report.created_at == days * DAY


def test_shorter_expiry_is_honoured_longer_is_refused(app, make_member, make_client):
    client, _ = make_client(make_member())
    short = client.register("phone", PHONE, "card_theft", expires_in_days=7)
    at_max = client.register("ip", "8.8.8.8", "other", expires_in_days=30)
    assert short.expires_at - short.created_at == 7 * DAY
    assert at_max.expires_at - at_max.created_at == 30 * DAY

    for id_type, value, days in (("ip", "8.8.4.4", 31), ("phone", "080-2345-6789", 366)):
        with pytest.raises(ValidationError) as caught:
            client.register(id_type, value, "other", expires_in_days=days)
        assert caught.value.status == 422
        assert caught.value.type == "urn:clue:problem:validation"
        assert "expires_in_days" in caught.value.detail
    assert _count(app) == 2


def test_council_maximum_bounds_the_default_and_the_request(app, make_member, make_client):
    settings = app.extensions["clue_settings"]
    app.extensions["clue_settings"] = dataclasses.replace(
        settings, max_retention_days={**settings.max_retention_days, "phone": 90})
    client, _ = make_client(make_member())

    report = client.register("phone", PHONE, "card_theft")

    assert report.expires_at - report.created_at == 90 * DAY
    with pytest.raises(ValidationError):
        client.register("phone", "080-2345-6789", "card_theft", expires_in_days=91)


def test_expired_reports_never_match(app, make_member, make_client):
    alice = make_member("Alice Pay")
    alice_client, _ = make_client(alice)
    bob_client, _ = make_client(make_member("Bob Pay"))
    expired = alice_client.register("phone", PHONE, "card_theft")
    alice_client.register("email", "fraud@example.com", "phishing")
    _expire(app, expired.id)

    result = bob_client.lookup(phone=PHONE, email="fraud@example.com")
    assert not result["phone"].matched
    assert result["email"].matched

    # Another member's live report of the same phone matches; the expired one is not counted.
    bob_client.register("phone", PHONE, "remittance_scam")
    phone = alice_client.lookup(phone=PHONE)["phone"]
    assert phone.matched and phone.reporters == 1
    assert phone.categories == ("remittance_scam",) and phone.reported_by_me is False

    listed = {r.id: r for r in alice_client.reports()}
    assert listed[expired.id].expired is True


def test_reregistering_an_expired_report_creates_a_fresh_one(app, make_member, make_client):
    client, _ = make_client(make_member())
    old = client.register("phone", PHONE, "card_theft", idempotency_key="first")
    _expire(app, old.id)

    new = client.register("phone", PHONE, "card_theft", idempotency_key="second")

    assert new.created is True and new.id != old.id
    assert [r.id for r in _rows(app)] == [new.id]
    assert client.lookup(phone=PHONE)["phone"].matched


def test_purge_expired_deletes_expired_and_keeps_live(app, make_member, make_client):
    client, _ = make_client(make_member())
    reports = client.register_many([ReportInput("phone", f"090-1234-000{n}", "card_theft")
                                    for n in range(4)])
    _expire(app, reports[0].id)
    _expire(app, reports[2].id, ago=dt.timedelta(days=400))

    with db.session_scope(app) as session:
        purged = report_services.purge_expired(session, now=db.utcnow())

    assert purged == 2
    assert {r.id for r in _rows(app)} == {reports[1].id, reports[3].id}
    with db.session_scope(app) as session:
        assert report_services.purge_expired(session, now=db.utcnow()) == 0
    # A clock far enough ahead expires the rest.
    with db.session_scope(app) as session:
        later = db.utcnow() + 366 * DAY
        assert report_services.purge_expired(session, now=later) == 2
    assert _rows(app) == []


# -- audit ----------------------------------------------------------------------------


def test_every_write_is_audited(app, make_member, make_client):
    from clue_server.members import services as member_services

    alice = make_member("Alice Pay")
    client, _ = make_client(alice)
    one = client.register("phone", PHONE, "card_theft")
    batch = client.register_many([ReportInput("ip", "8.8.8.8", "other"),
                                  ReportInput("device_id", "dev-1", "other")])
    client.withdraw(one.id)
    _expire(app, batch[0].id)
    with db.session_scope(app) as session:
        report_services.purge_expired(session, now=db.utcnow())
    with db.session_scope(app) as session:
        member_services.set_status(session, alice.member_id, "suspended")
    with db.session_scope(app) as session:
        member_services.set_status(session, "Alice Pay", "active")

    events = _audit(app)

    assert [(actor, action, subject) for actor, action, subject, _ in events] == [
        ("council", "member.add", alice.member_id),
        (alice.member_id, "report.register", one.id),
        (alice.member_id, "report.register", "2 reports"),
        (alice.member_id, "report.withdraw", one.id),
        ("council", "report.purge_expired", "reports"),
        ("council", "member.suspend", alice.member_id),
        ("council", "member.resume", alice.member_id),
    ]
    details = [d for *_, d in events]
    assert details[0]["name"] == "Alice Pay" and details[0]["key_id"] == alice.key_id
    assert details[1] == report_services.batch_digest([one.id])
    # A batch is recorded by its count, first and last id and a digest of all its ids,
    # not by the list (a 1,000-item import would write 23 KB into the chain).
    ids = [r.id for r in batch]
    assert details[2] == {"count": 2, "first_id": ids[0], "last_id": ids[1],
                          "report_ids_sha256": hashlib.sha256(
                              "\n".join(ids).encode()).hexdigest()}
    assert details[3]["id_type"] == "phone"
    assert details[4]["count"] == 1
    # Nothing in the audit trail reveals an identifier or a token.
    assert PHONE not in json.dumps(details)
