"""Look-ups through the real SDK: what a result says, and what it never says.

DESIGN property 7 (least disclosure) and issue 2's look-up contract: matched,
categories, distinct reporters, first/last dates, reported_by_me, exact or
folded e-mail match, input order kept, types and networks kept apart.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

import keys
from clue_client import ReportInput
from clue_client.canonical import canonicalize
from clue_client.tokens import derive_token, encode_token
from clue_server import db
from clue_server.reports.models import Report
from tests.helpers import signed

PHONE = "090-1234-5678"


def _set_created(app, report_id, when):
    with db.session_scope(app) as session:
        session.execute(update(Report).where(Report.id == report_id).values(created_at=when))


def test_a_result_counts_distinct_reporters_and_says_whether_i_reported(app, make_member,
                                                                       make_client):
    alice = make_member("Alice Pay")
    bob = make_member("Bob Pay")
    carol = make_member("Carol Pay")
    alice_client, _ = make_client(alice)
    bob_client, _ = make_client(bob)
    carol_client, _ = make_client(carol)
    first = alice_client.register("phone", PHONE, "phishing")
    bob_client.register("phone", PHONE, "card_theft")
    last = bob_client.register("phone", PHONE, "remittance_scam")
    bob_client.register("phone", "+81 80 2345 6789", "card_theft")  # another number
    forty_days_ago = last.created_at - dt.timedelta(days=40)
    _set_created(app, first.id, forty_days_ago)

    mine = alice_client.lookup(phone=PHONE)["phone"]
    theirs = carol_client.lookup(phone=PHONE)["phone"]

    assert mine.matched and mine.match == "exact"
    assert mine.categories == ("card_theft", "phishing", "remittance_scam")  # sorted, distinct
    assert mine.reporters == 2
    assert mine.first_reported == forty_days_ago.date()
    assert mine.last_reported == last.created_at.date()
    assert mine.reported_by_me is True
    assert theirs.reported_by_me is False
    assert (theirs.matched, theirs.categories, theirs.reporters, theirs.first_reported,
            theirs.last_reported) == (True, mine.categories, 2, mine.first_reported,
                                      mine.last_reported)
    assert bob_client.lookup(phone=PHONE)["phone"].reported_by_me is True


def test_one_member_reporting_twice_counts_once(make_member, make_client):
    client, _ = make_client(make_member("Alice Pay"))
    other, _ = make_client(make_member("Bob Pay"))
    client.register("phone", PHONE, "card_theft")
    client.register("phone", PHONE, "phishing")
    client.register("phone", PHONE, "card_theft", idempotency_key="again")  # no new row

    result = other.lookup(phone=PHONE)["phone"]

    assert result.reporters == 1
    assert result.categories == ("card_theft", "phishing")
    assert result.reported_by_me is False


def test_no_match_is_empty(make_member, make_client):
    client, _ = make_client(make_member())
    result = client.lookup(phone=PHONE)["phone"]
    assert (result.matched, result.match, result.categories, result.reporters,
            result.first_reported, result.last_reported, result.reported_by_me) == (
        False, None, (), 0, None, None, False)


def test_phone_formats_fold_to_one_match(make_member, make_client):
    reporter, _ = make_client(make_member("Alice Pay"))
    asker, _ = make_client(make_member("Bob Pay"))
    reporter.register("phone", PHONE, "card_theft")

    formats = ["+81 90 1234 5678", "０９０－１２３４－５６７８", "+819012345678", "09012345678",
               "(090) 1234-5678", "＋８１ ９０ １２３４ ５６７８"]
    results = asker.lookup_many([("phone", f) for f in formats])

    assert [(r.matched, r.match) for r in results] == [(True, "exact")] * len(formats)
    assert not asker.lookup(phone="090-1234-5679")["phone"].matched


def test_email_exact_and_folded_matches(make_member, make_client):
    reporter, _ = make_client(make_member("Alice Pay"))
    asker, _ = make_client(make_member("Bob Pay"))
    reporter.register("email", "J.Doe+shop@googlemail.com", "phishing")

    results = asker.lookup_many([
        ("email", "J.Doe+shop@googlemail.com"),
        ("email", "  j.doe+SHOP@GoogleMail.com "),
        ("email", "jdoe@gmail.com"),
        ("email", "j.d.o.e+other@gmail.com"),
        ("email", "john.doe@gmail.com"),
        ("email", "j.doe+shop@example.com"),
    ])

    assert [(r.matched, r.match) for r in results] == [
        (True, "exact"), (True, "exact"), (True, "folded"), (True, "folded"),
        (False, None), (False, None)]
    assert results[2].categories == ("phishing",) and results[2].reporters == 1


def test_a_folded_report_matches_a_tagged_lookup(make_member, make_client):
    reporter, _ = make_client(make_member("Alice Pay"))
    asker, _ = make_client(make_member("Bob Pay"))
    reporter.register("email", "jdoe@gmail.com", "phishing")

    tagged = asker.lookup(email="J.Doe+shop@googlemail.com")["email"]
    plain = asker.lookup(email="jdoe@gmail.com")["email"]

    assert (tagged.matched, tagged.match) == (True, "folded")
    assert (plain.matched, plain.match) == (True, "exact")


def test_lookup_many_keeps_input_order(make_member, make_client):
    reporter, _ = make_client(make_member("Alice Pay"))
    asker, _ = make_client(make_member("Bob Pay"))
    categories = ["card_theft", "phishing", "remittance_scam", "account_takeover", "other"]
    asked = []
    registered = []
    for n in range(50):
        kind = n % 5
        if kind == 0:
            pair = ("phone", f"090-1234-{n:04d}")
        elif kind == 1:
            pair = ("email", f"user{n}@example.com")
        elif kind == 2:
            pair = ("ip", f"1.1.1.{n}")
        elif kind == 3:
            pair = ("device_id", f"device-{n}")
        else:
            pair = ("bank_account", f"0001-001-1-{n:07d}")
        asked.append(pair)
        if n % 3 == 0:
            # The category says which input it belongs to.
            registered.append(ReportInput(*pair, categories[(n // 3) % 5]))
    reporter.register_many(registered)
    by_value = {r.value: r.category for r in registered}

    results = asker.lookup_many(asked)

    assert [(r.id_type, r.value) for r in results] == asked
    assert [r.matched for r in results] == [n % 3 == 0 for n in range(50)]
    assert [r.categories for r in results] == [
        (by_value[value],) if value in by_value else () for _, value in asked]
    dict_results = asker.lookup_many([{"type": t, "value": v} for t, v in asked])
    assert dict_results == results


def test_lookup_returns_results_keyed_by_type(make_member, make_client):
    reporter, _ = make_client(make_member("Alice Pay"))
    asker, _ = make_client(make_member("Bob Pay"))
    reporter.register("ip", "2606:4700:4700:1:2:3:4:5", "account_takeover")

    results = asker.lookup(phone=PHONE, ip="2606:4700:4700:1:ffff::1", device_id="dev-1")

    assert set(results) == {"phone", "ip", "device_id"}
    assert results["ip"].matched  # same /64
    assert not results["phone"].matched and not results["device_id"].matched


def test_the_same_string_under_another_type_does_not_match(make_member, make_client):
    value = "0001-001-1-0000123"  # a canonical bank account and a valid device id alike
    assert canonicalize("bank_account", value) == canonicalize("device_id", value)
    reporter, _ = make_client(make_member("Alice Pay"))
    asker, _ = make_client(make_member("Bob Pay"))
    reporter.register("device_id", value, "other")

    results = asker.lookup_many([("bank_account", value), ("device_id", value)])

    assert [r.matched for r in results] == [False, True]


def test_server_keeps_types_apart_even_for_the_same_token(app, http, make_member, make_client,
                                                         network_keys):
    # A client that (wrongly) labels a device token as a bank account finds nothing:
    # the server matches on the type as well as the token.
    reporter, _ = make_client(make_member("Alice Pay"))
    asker = make_member("Bob Pay")
    reporter.register("device_id", "dev-1", "other")
    token = encode_token(derive_token(network_keys.current.secret, "device_id", "dev-1"))

    def ask(id_type):
        response = signed(http, asker, "POST", "/v1/lookups",
                          {"items": [{"type": id_type, "key_version": 1, "token": token}]})
        assert response.status_code == 200
        return response.get_json()["results"][0]["matched"]

    assert ask("device_id") is True
    assert ask("bank_account") is False


def test_lookup_responses_never_name_a_reporter(app, make_member, make_client):
    members = [make_member(f"Member {n} Pay") for n in range(3)]
    clients = [make_client(m) for m in members]
    for n, (client, _) in enumerate(clients):
        client.register("phone", PHONE, "card_theft")
        client.register("email", "fraud@example.com", ["phishing", "other", "card_theft"][n])
    asker = make_member("Asker Pay")
    client, adapter = make_client(asker)
    seen = []
    adapter.tamper = seen.append

    client.lookup(phone=PHONE, email="fraud@example.com")
    client.lookup_many([("phone", PHONE), ("email", "Fraud@Example.com"), ("ip", "1.1.1.1")])
    # The reporters ask too: their answers must not name the others either.
    for reporter_client, reporter_adapter in clients:
        reporter_adapter.tamper = seen.append
        reporter_client.lookup(phone=PHONE)

    assert len(seen) == 5
    assert all(r.status_code == 200 for r in seen)
    secrets_of_members = [s for m in members for s in (m.member_id, m.key_id)]
    secrets_of_members += [f"Member {n} Pay" for n in range(3)]
    for response in seen:
        everything = response.content + repr(sorted(response.headers.items())).encode()
        assert b'"reporters": 3' in response.content or b'"reporters":3' in response.content
        for secret in secrets_of_members:
            assert secret.encode() not in everything


def test_another_networks_key_finds_nothing(make_member, make_client, network_keys):
    reporter, _ = make_client(make_member("Alice Pay"))
    reporter.register("phone", PHONE, "card_theft")
    stranger_ring = keys.Keyring([keys.new_symmetric_key("network", 1)])
    stranger, _ = make_client(make_member("Stranger Pay"), ring=stranger_ring)
    colleague, _ = make_client(make_member("Bob Pay"))

    assert not stranger.lookup(phone=PHONE)["phone"].matched
    assert colleague.lookup(phone=PHONE)["phone"].matched


def test_lookups_ask_under_every_network_key_version(make_member, make_client, network_keys):
    # After a rotation, reports made under v1 still match for a member holding v1 and v2.
    reporter, _ = make_client(make_member("Alice Pay"))
    old = reporter.register("phone", PHONE, "card_theft")
    rotated = keys.Keyring([network_keys.current, keys.new_symmetric_key("network", 2)])
    rotated_client, _ = make_client(make_member("Bob Pay"), ring=rotated)

    newer = rotated_client.register("email", "fraud@example.com", "phishing")
    results = rotated_client.lookup(phone=PHONE, email="fraud@example.com")

    assert old.key_version == 1 and newer.key_version == 2
    assert results["phone"].matched and results["email"].matched
    assert results["phone"].reported_by_me is False and results["email"].reported_by_me is True
    # The v1-only member does not see the v2 report.
    assert not reporter.lookup(email="fraud@example.com")["email"].matched
