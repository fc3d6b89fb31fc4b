"""Risk decisions through the real SDK and the real app (SQLite and PostgreSQL).

check_signup / check_payment: tiers from real reports, one request per check, the
QR payload's payee and store in that same request, the cache (TTL, withdrawals),
and the fallback when CLUE is stopped, answers 503, answers unsigned or tampered,
or is too slow.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from sqlalchemy import select

import keys
from clue_client import (
    ClueClient,
    ForbiddenError,
    InvalidIdentifier,
    ResponseVerificationError,
    TransportError,
)
from clue_client import cli as clue_cli
from clue_client.canonical import canonicalize
from clue_client.decisions import Fallback, LookupCache, PolicyError
from clue_client.qr import JPQR_GUID, build_mpm, parse_mpm, payee_key
from clue_server import db
from clue_server.devserver import free_port
from clue_server.keystore import load_server_keys
from clue_server.members import services as members_services
from clue_server.reports.models import Report
from tests.helpers import BASE_URL, WSGIAdapter
from tests.unit.decisions.test_decisions_policy import TIERS_TOML

PHONE = "090-1234-5678"
EMAIL = "Taro.Yamada+shop@Gmail.com"
DEVICE = "dev-fp-4f1c9a"
GENEROUS = Fallback("watch", 10_000)  # functional tests must not degrade by accident

STORE = [("01", "1234567890123"), ("02", "0042"), ("03", "000777"), ("04", "000009")]
STORE_ID = "12345678901230042000777000009"
GENUINE = build_mpm([("01", "11"), ("26", [("00", JPQR_GUID), *STORE]), ("52", "5812"),
                     ("53", "392"), ("58", "JP"), ("59", "KISSA HANA"), ("60", "SHINAGAWA"),
                     ("61", "1400001"), ("64", [("00", "JA"), ("01", "喫茶 花")])])
FORGED = build_mpm([("01", "11"), ("26", [("00", "com.example.p2p"), ("01", "mule-0042")]),
                    ("52", "5812"), ("53", "392"), ("58", "JP"), ("59", "KISSA HANA"),
                    ("60", "SHINAGAWA")])


@pytest.fixture
def make_checker(app, network_keys, server_keys_dir):
    """A client built with the decision keywords, talking to the in-process app."""
    server = load_server_keys(server_keys_dir)

    def make(creds, *, adapter=None, **options):
        adapter = adapter or WSGIAdapter(app)
        session = requests.Session()
        session.mount(BASE_URL, adapter)
        options.setdefault("fallback", GENEROUS)
        options.setdefault("private_lookups", False)  # one request per check: protocol 1
        client = ClueClient(BASE_URL, signing_key=creds.signing_key,
                            server_public_key=server.public_key,
                            server_key_id=server.signing_key_id, network_keys=network_keys,
                            session=session, retries=0, **options)
        return client, adapter

    return make


@pytest.fixture
def members(make_member, make_client, make_checker):
    """Two reporting members and a checking one."""
    alice, _ = make_client(make_member("Alice Pay"))
    carol, _ = make_client(make_member("Carol Pay"))
    checker, adapter = make_checker(make_member("Bob Pay"))
    return alice, carol, checker, adapter


def age_reports(app, days: int) -> None:
    """Move every report ``days`` into the past."""
    with db.session_scope(app) as session:
        for report in session.scalars(select(Report)):
            report.created_at = report.created_at - dt.timedelta(days=days)


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


# -- decisions from real reports ------------------------------------------------------------


def test_signup_tiers_follow_the_reports(app, members):
    alice, carol, bob, _ = members
    assert bob.check_signup(phone=PHONE, email=EMAIL).tier == "clear"

    alice.register("phone", PHONE, "fictitious_transaction")
    age_reports(app, 200)
    decision = bob.check_signup(phone=PHONE, email=EMAIL)
    assert (decision.tier, decision.rules_fired) == ("watch", ("identifier-reported",))
    assert decision.reasons == (
        "phone reported by 1 member for fictitious_transaction, last 200 days ago",)
    assert decision.limits == bob.decisions.policy.tiers["watch"]

    carol.register("phone", PHONE, "card_theft")
    decision = bob.check_signup(phone=PHONE, email=EMAIL)
    assert decision.tier == "high"
    assert decision.rules_fired[:2] == ("account-fraud-recent", "corroborated")
    assert decision.reasons == (
        "phone reported by 2 members for card_theft, fictitious_transaction, last today",)

    carol.register("device_id", DEVICE, "account_takeover")
    decision = bob.check_signup(phone=PHONE, email=EMAIL, device_id=DEVICE)
    assert decision.tier == "block"
    assert decision.rules_fired[0] == "several-identifiers-recent"
    assert decision.limits.per_transaction_jpy == 0
    assert [e.id_type for e in decision.evidence.identifiers] == ["phone", "email", "device_id"]
    assert not decision.degraded


def test_the_clock_is_injectable(members):
    alice, _, bob, _ = members
    alice.register("phone", PHONE, "card_theft")
    assert bob.check_signup(phone=PHONE).tier == "high"  # reported today
    later = dt.datetime.combine(today() + dt.timedelta(days=120), dt.time(9), tzinfo=dt.UTC)
    decision = bob.check_signup(phone=PHONE, now=later)
    assert decision.tier == "watch"
    assert decision.reasons == ("phone reported by 1 member for card_theft, last 120 days ago",)
    assert decision.evidence.today == later.date()


def test_folded_email_and_own_reports(members):
    alice, _, bob, _ = members
    alice.register("email", "taroyamada@gmail.com", "phishing")
    decision = bob.check_signup(email=EMAIL)
    assert decision.tier == "watch"  # folded only: the default's exact-match rules hold off
    assert decision.evidence.identifiers[0].match == "folded"
    assert "folded match" in decision.reasons[0]
    mine = alice.check_signup(email="taroyamada@gmail.com")
    assert mine.tier == "high" and mine.reasons[0].endswith("; you reported it")


def test_one_signed_request_per_check_and_no_raw_identifier_sent(members):
    alice, _, bob, adapter = members
    alice.register("phone", PHONE, "card_theft")
    before = len(adapter.captured)
    bob.check_signup(phone=PHONE, email=EMAIL, ip="8.8.8.8", device_id=DEVICE,
                     bank_account="0001-001-1-1234567")
    sent = adapter.captured[before:]
    assert len(sent) == 1 and sent[0].path_url == "/v1/lookups"
    body = sent[0].body if isinstance(sent[0].body, bytes) else sent[0].body.encode()
    assert len(json.loads(body)["items"]) == 5
    wire = body + str(sent[0].headers).encode()
    for raw in (PHONE, canonicalize("phone", PHONE), EMAIL, canonicalize("email", EMAIL),
                DEVICE, "8.8.8.8", "1234567"):
        assert raw.encode() not in wire


def test_invalid_identifiers_are_reported_not_raised_unless_strict(members, make_checker,
                                                                   make_member):
    alice, _, bob, _ = members
    alice.register("email", EMAIL, "phishing")
    decision = bob.check_signup(phone="call me maybe", email=EMAIL)
    assert decision.tier == "high" and not decision.degraded
    assert any(r.startswith("phone not checked: ") for r in decision.reasons)
    assert decision.evidence.unchecked[0][0] == "phone"
    strict, _ = make_checker(make_member("Strict Pay"), strict=True)
    with pytest.raises(InvalidIdentifier):
        strict.check_signup(phone="call me maybe", email=EMAIL)
    with pytest.raises(ValueError, match="at least one identifier"):
        bob.check_signup()


# -- payments and static QR codes -------------------------------------------------------------


def test_payment_amount_against_the_tier(members):
    alice, _, bob, _ = members
    assert bob.check_payment(phone=PHONE, amount_jpy=400_000).within_limits is True
    alice.register("phone", PHONE, "other")
    decision = bob.check_payment(phone=PHONE, amount_jpy=60_000)
    assert decision.tier == "watch" and decision.within_limits is False
    assert decision.reasons[-1] == ("amount 60,000 JPY is above the watch-tier per-transaction "
                                    "limit of 50,000 JPY")
    with pytest.raises(ValueError, match="amount_jpy"):
        bob.check_payment(phone=PHONE, amount_jpy=-5)


def test_a_reported_qr_payee_blocks_in_the_same_request(members):
    alice, _, bob, adapter = members
    alice.register("qr_payee", payee_key(parse_mpm(FORGED)), "sticker_swap")
    before = len(adapter.captured)
    decision = bob.check_payment(phone=PHONE, amount_jpy=1200, qr_payload=FORGED)
    sent = adapter.captured[before:]
    assert len(sent) == 1
    items = json.loads(sent[0].body)["items"]
    assert [i["type"] for i in items] == ["phone", "qr_payee"]
    assert FORGED.encode() not in sent[0].body and b"mule-0042" not in sent[0].body
    assert decision.tier == "block"
    assert decision.rules_fired == ("qr-payee-reported",)
    assert decision.evidence.qr.flags == {"payee_reported", "not_jpqr"}
    assert decision.reasons[0] == ("QR code pays a reported payee: QR payee reported by 1 "
                                   "member for sticker_swap, last today")


def test_a_swap_reported_at_the_store_asks_to_confirm_the_merchant(members):
    alice, _, bob, adapter = members
    alice.register("jpqr_store", STORE_ID, "sticker_swap")
    before = len(adapter.captured)
    decision = bob.check_payment(phone=PHONE, qr_payload=GENUINE)
    items = json.loads(adapter.captured[before].body)["items"]
    assert [i["type"] for i in items] == ["phone", "qr_payee", "jpqr_store"]
    assert len(adapter.captured) == before + 1
    assert decision.tier == "watch" and decision.limits.step_up_auth
    assert decision.rules_fired == ("qr-store-swap-reported",)
    assert decision.evidence.qr.store_id == STORE_ID
    assert decision.reasons[0].startswith(f"sticker swap reported at store {STORE_ID}: confirm "
                                          "the merchant name from your own registry")


def test_a_clean_sticker_and_an_unreadable_one(members):
    _, _, bob, adapter = members
    assert bob.check_payment(qr_payload=GENUINE).tier == "clear"
    before = len(adapter.captured)
    decision = bob.check_payment(phone=PHONE, qr_payload=GENUINE[:-4] + "0000")
    assert decision.tier == "block" and decision.rules_fired == ("qr-invalid",)
    assert decision.evidence.qr.error_code == "crc_mismatch"
    assert [i["type"] for i in json.loads(adapter.captured[before].body)["items"]] == ["phone"]


def test_a_disputed_phone_is_capped_at_high_not_blocked(members, make_client, make_member):
    """Issue 12: the look-up said DISPUTED, yet the decision blocked."""
    alice, carol, bob, _ = members
    dave, _ = make_client(make_member("Dave Pay"))
    for reporter in (alice, carol, dave):
        reporter.register("phone", PHONE, "card_theft")
    assert bob.check_signup(phone=PHONE).tier == "block"
    bob.open_dispute("phone", PHONE, "The customer says the number was issued to them by "
                     "their carrier last month.")
    decision = bob.check_signup(phone=PHONE)
    assert decision.tier == "high" and decision.limits.manual_review
    assert decision.evidence.identifiers[0].disputed is True
    assert decision.fired[0].rule_id == "corroborated-recent"
    assert (decision.fired[0].tier, decision.fired[0].capped_from) == ("high", "block")
    assert decision.reasons == (
        "phone reported by 3 members for card_theft, last today; disputed (an open dispute "
        "contests it)",
        "corroborated-recent gives block, but only because of answers an open dispute "
        "contests: capped at high",
    )


# -- the cache -----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_cached_answers_save_round_trips_and_expire_after_a_withdrawal(members, make_checker,
                                                                       make_member):
    alice, _, _, _ = members
    clock = FakeClock()
    cache = LookupCache(ttl=30, max_entries=100, clock=clock)
    bob, adapter = make_checker(make_member("Cached Pay"), cache=cache)
    report = alice.register("phone", PHONE, "other")
    assert bob.check_payment(phone=PHONE, amount_jpy=100).tier == "watch"
    sent = len(adapter.captured)
    for _ in range(5):
        assert bob.check_payment(phone=PHONE, amount_jpy=100).tier == "watch"
    assert len(adapter.captured) == sent  # no round trip
    # A new identifier alongside a cached one: only the new one is asked.
    bob.check_payment(phone=PHONE, email=EMAIL)
    assert [i["type"] for i in json.loads(adapter.captured[-1].body)["items"]] == ["email"]

    alice.withdraw(report.id)
    clock.now += 29
    assert bob.check_payment(phone=PHONE).tier == "watch"  # still cached: within the TTL
    clock.now += 1
    assert bob.check_payment(phone=PHONE).tier == "clear"  # never longer than the TTL
    assert len(adapter.captured) == sent + 2
    # nothing the cache holds is the identifier
    assert PHONE not in repr(cache._entries) and "9012345678" not in repr(cache._entries)


# -- when CLUE cannot answer ------------------------------------------------------------------


class StaticAdapter(BaseAdapter):
    """A proxy that answers every request itself: e.g. a 503 page, never signed."""

    def __init__(self, status: int = 503, delay: float = 0.0) -> None:
        super().__init__()
        self.status = status
        self.delay = delay
        self.captured: list[requests.PreparedRequest] = []

    def send(self, request, **_):
        self.captured.append(request)
        time.sleep(self.delay)
        response = requests.Response()
        response.status_code = self.status
        response.headers = CaseInsensitiveDict({"Content-Type": "text/html"})
        response._content = b"<h1>Service Unavailable</h1>"
        response.request = request
        response.url = request.url
        return response

    def close(self) -> None:
        pass


def strip_signature(response):
    del response.headers["Signature"]


def swap_body(response):
    response._content = response._content.replace(b'"matched":false', b'"matched":true ')


@pytest.mark.parametrize(("break_it", "error"), [
    ("503", "GatewayError: an unsigned 503"),  # a proxy's page: a ResponseVerificationError
    ("unsigned", "ResponseVerificationError: refusing the server's answer"),
    ("tampered", "ResponseVerificationError"),
])
def test_a_broken_answer_gives_the_fallback_decision(make_member, make_checker, break_it,
                                                     error):
    creds = make_member()
    if break_it == "503":
        bob, _ = make_checker(creds, adapter=StaticAdapter(503))
    else:
        bob, adapter = make_checker(creds)
        adapter.tamper = strip_signature if break_it == "unsigned" else swap_body
    decision = bob.check_signup(phone=PHONE, email=EMAIL)
    assert decision.degraded is True
    assert decision.tier == "watch" and decision.limits == bob.decisions.policy.tiers["watch"]
    assert decision.rules_fired == ("fallback",)
    assert decision.error.startswith(error)
    assert decision.reasons[0].startswith("CLUE unavailable (")
    assert decision.evidence.unchecked == (("phone", "CLUE unavailable"),
                                           ("email", "CLUE unavailable"))
    strict, adapter = make_checker(creds, strict=True,
                                   adapter=StaticAdapter(503) if break_it == "503" else None)
    adapter.tamper = None if break_it == "503" else (
        strip_signature if break_it == "unsigned" else swap_body)
    with pytest.raises(ResponseVerificationError):
        strict.check_signup(phone=PHONE)


def test_a_signed_refusal_gives_the_fallback_too(app, make_member, make_checker):
    """A suspended member gets a signed 403: still a fallback, never an exception."""
    creds = make_member("Suspended Pay")
    with db.session_scope(app) as session:
        members_services.set_status(session, creds.member_id, "suspended")
    bob, _ = make_checker(creds)
    decision = bob.check_signup(phone=PHONE)
    assert decision.degraded and decision.tier == "watch"
    assert decision.error.startswith("ForbiddenError: 403")
    strict, _ = make_checker(creds, strict=True)
    with pytest.raises(ForbiddenError):
        strict.check_signup(phone=PHONE)


def test_a_slow_server_gives_the_fallback_within_the_budget(make_member, make_checker):
    slow = StaticAdapter(200, delay=1.5)
    bob, _ = make_checker(make_member(), adapter=slow, fallback=Fallback("block", 150))
    started = time.monotonic()
    decision = bob.check_signup(phone=PHONE)
    elapsed = time.monotonic() - started
    assert elapsed < 0.6
    assert decision.degraded and decision.tier == "block"  # fail-closed configured
    # DeadlineExceeded is a TransportError (and a TimeoutError); the transport's own
    # deadline or the pool's wait, whichever notices first, says the same.
    assert decision.error.startswith("DeadlineExceeded: no answer from CLUE")
    assert decision.error.endswith("within 150 ms")
    strict, _ = make_checker(make_member("Strict Pay"), adapter=StaticAdapter(200, delay=1.5),
                             fallback=Fallback("watch", 100), strict=True)
    with pytest.raises(TransportError, match="within 100 ms"):
        strict.check_signup(phone=PHONE)


def test_the_default_budget_is_300_ms(make_member, make_checker):
    bob, _ = make_checker(make_member(), adapter=StaticAdapter(200, delay=2.0), fallback=None)
    assert bob.decisions.fallback == Fallback("watch", 300)
    started = time.monotonic()
    decision = bob.check_signup(phone=PHONE)
    assert 0.25 < time.monotonic() - started < 0.8
    assert decision.degraded and decision.tier == "watch"


def test_cached_evidence_still_counts_when_clue_is_down(members, make_checker, make_member):
    alice, _, _, _ = members
    cache = LookupCache(ttl=60)
    creds = make_member("Cached Pay")
    alice.register("phone", PHONE, "card_theft")
    up, _ = make_checker(creds, cache=cache)
    assert up.check_signup(phone=PHONE).tier == "high"
    down, _ = make_checker(creds, cache=cache, adapter=StaticAdapter(503),
                           fallback=Fallback("clear", 1000))
    decision = down.check_signup(phone=PHONE, email=EMAIL)
    assert decision.degraded and decision.tier == "high"  # not relaxed to the fail-open tier
    assert decision.rules_fired[-1] == "fallback"
    assert decision.evidence.unchecked == (("email", "CLUE unavailable"),)


def test_a_custom_policy_file_is_validated_when_the_client_is_made(make_member, make_checker,
                                                                   tmp_path):
    policy = tmp_path / "policy.toml"
    text = (Path(__file__).parents[2] / "clue_client" / "decisions" / "default_policy.toml"
            ).read_text(encoding="utf-8")
    policy.write_text(text.replace('tier = "watch"\ntimeout_ms = 300',
                                   'tier = "block"\ntimeout_ms = 250'), encoding="utf-8")
    client, _ = make_checker(make_member(), policy=policy, fallback=None)
    assert client.decisions.fallback == Fallback("block", 250)
    client, _ = make_checker(make_member("Other Pay"), policy=policy, fallback="clear")
    assert client.decisions.fallback == Fallback("clear", 250)
    policy.write_text(text.replace('id = "corroborated"\ntier = "high"',
                                   'id = "corroborated"\ntier = "severe"'), encoding="utf-8")
    with pytest.raises(PolicyError, match=r"rules\[6\]\.tier \(line \d+\): unknown tier"):
        make_checker(make_member("Third Pay"), policy=policy)


# -- clue explain -----------------------------------------------------------------------------


def test_clue_explain_prints_the_decision_table(members, monkeypatch):
    alice, _, bob, _ = members
    alice.register("phone", PHONE, "card_theft")
    monkeypatch.setattr(clue_cli, "_client", lambda ctx: bob)
    result = CliRunner().invoke(clue_cli.main, ["explain", "--phone", PHONE, "--email", EMAIL,
                                                "--timeout-ms", "10000"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "decision  HIGH"
    assert lines[1].startswith("limits    per transaction 10,000 JPY, daily 20,000 JPY")
    assert any(line.startswith("account-fraud-recent") and "high" in line
               and "phone reported by 1 member for card_theft, last today" in line
               for line in lines)
    assert "  - phone reported by 1 member for card_theft, last today" in lines
    result = CliRunner().invoke(clue_cli.main, ["explain", "--phone", PHONE, "--json",
                                                "--amount-jpy", "20000", "--timeout-ms",
                                                "10000"])
    data = json.loads(result.output)
    assert (data["tier"], data["within_limits"], data["degraded"]) == ("high", False, False)
    assert PHONE not in result.output  # types and answers only


def test_clue_explain_against_a_stopped_server_and_with_policies(monkeypatch, tmp_path):
    stopped = ClueClient(f"http://127.0.0.1:{free_port()}",
                         signing_key=keys.generate_signing_key(),
                         server_public_key=keys.generate_signing_key().public_key(),
                         server_key_id="server-1",
                         network_keys=keys.Keyring([keys.new_symmetric_key("network", 1)]))
    monkeypatch.setattr(clue_cli, "_client", lambda ctx: stopped)
    runner = CliRunner()
    result = runner.invoke(clue_cli.main, ["explain", "--phone", PHONE])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("decision  WATCH  (DEGRADED: CLUE did not answer)")
    assert "fallback" in result.output
    result = runner.invoke(clue_cli.main, ["explain", "--phone", PHONE, "--strict"])
    assert result.exit_code == 1 and "cannot reach CLUE" in result.output

    bad = tmp_path / "bad.toml"
    bad.write_text(TIERS_TOML.replace("per_transaction_jpy = 300000",
                                      "per_transaction_jpy = 'lots'"), encoding="utf-8")
    result = runner.invoke(clue_cli.main, ["explain", "--policy", str(bad)])
    assert result.exit_code == 1
    assert "tiers.clear.per_transaction_jpy (line 4): must be a whole number" in result.output
    result = runner.invoke(clue_cli.main, ["explain", "--policy",
                                           str(Path(clue_cli.__file__).parent / "decisions"
                                               / "default_policy.toml")])
    assert result.exit_code == 0 and result.output.startswith("policy clue-default: 10 rule(s)")
    assert runner.invoke(clue_cli.main, ["explain"]).exit_code == 2


def test_a_stopped_server_gives_the_fallback_quickly():
    client = ClueClient(f"http://127.0.0.1:{free_port()}",
                        signing_key=keys.generate_signing_key(),
                        server_public_key=keys.generate_signing_key().public_key(),
                        server_key_id="server-1",
                        network_keys=keys.Keyring([keys.new_symmetric_key("network", 1)]))
    started = time.monotonic()
    decision = client.check_signup(phone=PHONE, email=EMAIL)
    assert time.monotonic() - started < 0.5
    assert decision.degraded and decision.tier == "watch"
    assert decision.error.startswith("TransportError: cannot reach CLUE")
    assert decision.reasons[0].startswith("CLUE unavailable (TransportError")
    with pytest.raises(TransportError):
        ClueClient(f"http://127.0.0.1:{free_port()}", signing_key=keys.generate_signing_key(),
                   server_public_key=keys.generate_signing_key().public_key(),
                   server_key_id="server-1", strict=True,
                   network_keys=keys.Keyring([keys.new_symmetric_key("network", 1)])
                   ).check_signup(phone=PHONE)
