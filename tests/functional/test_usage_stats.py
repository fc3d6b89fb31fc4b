"""Usage statistics: daily counts per member and type and nothing else (no row per request,
no report ids, nothing of a lookup that matched nothing), and the console's summaries
(series, anomalies)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select, text

from clue_client import ReportInput
from clue_server import db
from clue_server.members import services as members
from clue_server.stats import services as stats
from clue_server.stats.models import DailyUsage

PHONE, OTHER_PHONE, INNOCENT = "090-1234-5678", "080-2345-6789", "070-9999-0000"


def _reporter_and_asker(make_member: Any, make_client: Any, email: str
                        ) -> tuple[Any, Any, Any, Any]:
    """Alice reports PHONE twice (two categories) and ``email``; Bob will ask. Returns
    (alice, bob, alice's client, bob's client)."""
    alice, bob = make_member("Alice Pay"), make_member("Bob Pay")
    alice_client, _ = make_client(alice)
    bob_client, _ = make_client(bob)
    alice_client.register_many([ReportInput("phone", PHONE, "phishing"),
                                ReportInput("phone", PHONE, "card_theft"),
                                ReportInput("email", email, "phishing")])
    return alice, bob, alice_client, bob_client


def _rows(app: Any, model: Any) -> list[Any]:
    with db.session_scope(app) as session:
        return list(session.scalars(select(model)))


def test_lookups_and_hits_are_counted_per_day_member_and_type_and_nothing_else(
        app, make_member, make_client):
    alice, bob, alice_client, bob_client = _reporter_and_asker(
        make_member, make_client, "a@example.com")
    alice_client.register("phone", OTHER_PHONE, "phishing")

    bob_client.lookup_many([("phone", PHONE), ("phone", INNOCENT), ("email", "a@example.com"),
                            ("ip", "9.9.9.9")])

    today = dt.datetime.now(dt.UTC).date()
    usage = {(r.member_id, r.id_type): (r.lookups, r.hits, r.registrations, r.quota_rejections)
             for r in _rows(app, DailyUsage) if r.day == today}
    assert usage == {
        (alice.member_id, "phone"): (0, 0, 3, 0),
        (alice.member_id, "email"): (0, 0, 1, 0),
        (bob.member_id, "phone"): (2, 1, 0, 0),
        (bob.member_id, "email"): (1, 1, 0, 0),
        (bob.member_id, "ip"): (1, 0, 0, 0),
    }
    with db.session_scope(app) as session:
        tables = set(session.connection().dialect.get_table_names(session.connection()))
    assert "lookup_hits" not in tables  # no row per matched item (it grew without bound)


def test_hits_count_each_matched_item_once_exact_or_folded_and_repeats_too(
        app, make_member, make_client):
    """The day's hits are the items a live report matched (on PostgreSQL counted in the
    look-up's own statement, elsewhere after it): one per item, however many reports or
    hashes it matched, by its exact or its folded form, each repeat in the batch again."""
    _alice, bob, _alice_client, bob_client = _reporter_and_asker(
        make_member, make_client, "J.Doe+shop@googlemail.com")

    results = bob_client.lookup_many([
        ("phone", PHONE), ("phone", PHONE), ("phone", INNOCENT),
        ("email", "J.Doe+shop@googlemail.com"), ("email", "jdoe@gmail.com"),
        ("email", "john.doe@gmail.com")])
    assert [r.matched for r in results] == [True, True, False, True, True, False]

    today = dt.datetime.now(dt.UTC).date()
    usage = {r.id_type: (r.lookups, r.hits) for r in _rows(app, DailyUsage)
             if r.day == today and r.member_id == bob.member_id}
    assert usage == {"phone": (3, 2), "email": (3, 2)}


def test_a_lookup_that_matches_nothing_leaves_no_token_anywhere(app, make_member, make_client):
    member = make_member()
    client, adapter = make_client(member)
    client.lookup(phone=INNOCENT)

    sent = json.loads(adapter.captured[-1].body)["items"][0]["token"]
    with db.session_scope(app) as session:
        dump = "\n".join(str(row) for table in ("daily_usage", "quota_usage", "audit_events")
                         for row in session.execute(text(f"SELECT * FROM {table}")))
    assert sent not in dump
    with db.session_scope(app) as session:
        row = session.scalars(select(DailyUsage)).one()
        assert (row.member_id, row.id_type, row.lookups, row.hits) == (member.member_id, "phone",
                                                                       1, 0)


def test_daily_series_and_member_activity_add_up(app, make_member):
    alice, bob = make_member("Alice Pay"), make_member("Bob Pay")
    today = dt.date(2026, 3, 10)
    with db.session_scope(app) as session:
        stats.add_usage(session, alice.member_id, today, {"phone": {"lookups": 10, "hits": 2},
                                                          "email": {"registrations": 3}})
        stats.add_usage(session, bob.member_id, today - dt.timedelta(days=2),
                        {"ip": {"lookups": 5, "hits": 1}})
        stats.add_usage(session, alice.member_id, today, {"phone": {"lookups": 1}})
        members.set_status(session, bob.member_id, "suspended")
    with db.session_scope(app) as session:
        series = stats.daily_series(session, days=3, today=today)
        activity = {a.member_id: a for a in stats.member_activity(session, today=today)}
        by_status = stats.members_by_status(session)

    assert series == [(today - dt.timedelta(days=2), 0, 5, 1),
                      (today - dt.timedelta(days=1), 0, 0, 0), (today, 3, 11, 2)]
    assert activity[alice.member_id][3:] == (today, 11, 2, 3)
    assert activity[bob.member_id][3:] == (today - dt.timedelta(days=2), 5, 1, 0)
    assert by_status == {"active": 1, "suspended": 1}


def test_active_reports_are_counted_by_type_and_category(app, make_member, make_client):
    member = make_member()
    client, _ = make_client(member)
    client.register_many([ReportInput("phone", PHONE, "phishing"),
                          ReportInput("phone", OTHER_PHONE, "phishing"),
                          ReportInput("phone", PHONE, "card_theft"),
                          ReportInput("ip", "1.1.1.1", "other", 1)])
    with db.session_scope(app) as session:
        now = db.utcnow()
        assert stats.active_reports_by_type_and_category(session, now) == [
            ("ip", "other", 1), ("phone", "card_theft", 1), ("phone", "phishing", 2)]
        later = now + dt.timedelta(days=2)  # the ip report has expired
        assert [r.id_type for r in stats.active_reports_by_type_and_category(session, later)] \
            == ["phone", "phone"]


def test_a_jump_far_above_a_members_own_baseline_is_flagged(app, make_member):
    steady, jumpy, tiny, newcomer = (make_member(n) for n in ("Steady", "Jumpy", "Tiny", "New"))
    today = dt.date(2026, 3, 20)
    with db.session_scope(app) as session:
        for back in range(2, 16):
            day = today - dt.timedelta(days=back)
            stats.add_usage(session, steady.member_id, day, {"phone": {"lookups": 1000}})
            stats.add_usage(session, jumpy.member_id, day, {"phone": {"lookups": 600},
                                                             "email": {"lookups": 400}})
            stats.add_usage(session, tiny.member_id, day, {"phone": {"lookups": 2}})
        for back in (2, 3):
            stats.add_usage(session, newcomer.member_id, today - dt.timedelta(days=back),
                            {"phone": {"lookups": 10}})
        stats.add_usage(session, steady.member_id, today, {"phone": {"lookups": 3000}})
        stats.add_usage(session, jumpy.member_id, today, {"phone": {"lookups": 8000}})
        stats.add_usage(session, tiny.member_id, today, {"phone": {"lookups": 900}})
        stats.add_usage(session, newcomer.member_id, today, {"phone": {"lookups": 50000}})
    with db.session_scope(app) as session:
        flagged = stats.volume_anomalies(session, today)
        strict = stats.volume_anomalies(session, today, factor=2.0)

    assert [(a.member_id, a.name, a.day, a.lookups, a.baseline, a.ratio) for a in flagged] == [
        (jumpy.member_id, "Jumpy", today, 8000, 1000.0, 8.0)]
    assert {a.member_id for a in strict} == {jumpy.member_id, steady.member_id}
