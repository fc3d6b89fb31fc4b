"""Issue 3: reporting a swapped static QR sticker protects every member; scans are flagged.

Issue 12: genuine foreign codes are not called forged, a disputed payee softens the
answer, and a scan while CLUE is down falls back like check_signup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import shlex
import time
from pathlib import Path

import pytest
import requests
import zxingcpp
from click import ClickException
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import select

import keys
from clue_client import (
    ClueClient,
    InvalidIdentifier,
    ResponseVerificationError,
    TransportError,
)
from clue_client import cli as clue_cli
from clue_client.canonical import canonicalize
from clue_client.cli import _payload
from clue_client.decisions import Fallback, LookupCache
from clue_client.qr import build_mpm, jpqr_view, parse_mpm, payee_key, payees_of
from clue_server import db
from clue_server.devserver import free_port
from clue_server.keystore import load_server_keys
from clue_server.reports.models import Report
from tests.functional.test_decisions import StaticAdapter
from tests.helpers import BASE_URL, WSGIAdapter
from tests.unit.qr.test_qr_known_answers import (
    DUITNOW_SAMPLE,
    JPQR_MERPAY,
    PIX_BCB,
    PROMPTPAY_STATIC,
    QRIS_SUNARY,
    VIETQR_SUBIZ,
)

STORE = "0000000000001" "0001" "000001" "000001"
OTHER_STORE = "0000000000002" "0001" "000001" "000007"


def jpqr(store: str, *, extra_account: tuple[str, str] | None = None, dynamic: bool = False
         ) -> str:
    fields: list = [
        ("01", "12" if dynamic else "11"),
        ("26", [("00", "jp.or.paymentsjapan"), ("01", store[:13]), ("02", store[13:17]),
                ("03", store[17:23]), ("04", store[23:])]),
    ]
    if extra_account:
        fields.append(("29", [("00", extra_account[0]), ("01", extra_account[1])]))
    fields += [("52", "5812"), ("53", "392"), ("58", "JP"), ("59", "CAFE MERPAY"),
               ("60", "TOKYO"), ("61", "1066143"),
               ("64", [("00", "JA"), ("01", "メルペイ カフェ")])]
    return build_mpm(fields)


GENUINE = jpqr(STORE, extra_account=("com.example.wallet", "shop-0001"))
# The forger reuses the store's JPQR block but routes the money to their own account.
FORGED = jpqr(STORE, extra_account=("com.example.wallet", "forger-9999"))
GENEROUS = Fallback("watch", 10_000)  # these tests must not degrade by accident


@pytest.fixture
def make_scanner(app, network_keys, server_keys_dir):
    """A client with the decision keywords (a generous budget unless told otherwise)."""
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


def test_report_then_every_member_sees_the_swap(make_member, make_client, make_scanner):
    reporter, _ = make_client(make_member("Alpha Pay"))
    reporter.notes_key = keys.new_symmetric_key("member-notes", 1)
    checker, adapter = make_scanner(make_member("Beta Bank"))
    reports = reporter.report_sticker_swap(FORGED, genuine_store_id=STORE,
                                           note="sticker over the till, 2026-11-20")
    assert {r.id_type for r in reports} == {"qr_payee", "jpqr_store"}
    assert {r.category for r in reports} == {"sticker_swap"}

    before = len(adapter.captured)
    forged = checker.check_static_qr(FORGED)
    assert len(adapter.captured) == before + 1  # one round trip
    assert "payee_reported" in forged.flags and forged.block
    assert "store_swap_reported" in forged.flags
    assert forged.store_id == STORE

    genuine = checker.check_static_qr(GENUINE)
    # The genuine sticker's payee is clean, but its store had a swap: confirm the merchant.
    assert "payee_reported" not in genuine.flags and not genuine.block
    assert genuine.confirm_merchant
    assert any("your own registry" in reason for reason in genuine.reasons)

    clean = checker.check_static_qr(jpqr(OTHER_STORE))
    assert clean.flags == frozenset() and not clean.block and not clean.confirm_merchant
    assert (clean.tier, clean.degraded, clean.warnings) == ("clear", False, ())


def test_local_flags_need_no_network(make_member, make_scanner):
    client, adapter = make_scanner(make_member())
    broken = FORGED[:-4] + ("0000" if not FORGED.endswith("0000") else "1111")
    check = client.check_static_qr(broken)
    assert check.flags == {"invalid_payload"} and check.error_code == "crc_mismatch"
    assert check.block
    assert adapter.captured == []
    dynamic = client.check_static_qr(jpqr(STORE, dynamic=True))
    assert "not_static" in dynamic.flags


def test_payload_never_leaves_the_member(make_member, make_scanner):
    client, adapter = make_scanner(make_member())
    client.report_sticker_swap(FORGED, genuine_store_id=STORE)
    client.check_static_qr(FORGED)
    sent = b"".join((r.body or b"") + r.url.encode() + str(r.headers).encode()
                    for r in adapter.captured)
    for secret in (FORGED, "forger-9999", STORE, "jp.or.paymentsjapan", "com.example.wallet"):
        assert secret.encode() not in sent


def test_a_forged_jpqr_with_a_fake_store_id_reports_that_id(make_member, make_scanner):
    client, _ = make_scanner(make_member())
    fake = jpqr(OTHER_STORE)
    reports = client.report_sticker_swap(fake, genuine_store_id=STORE)
    assert [r.id_type for r in reports] == ["qr_payee", "jpqr_store"]
    assert "payee_reported" in client.check_static_qr(fake).flags
    # A code that only carries the genuine store's ID names no forged payee at all.
    with pytest.raises(InvalidIdentifier, match="no payee other than the genuine store"):
        client.report_sticker_swap(jpqr(STORE), genuine_store_id=STORE)


def test_unparseable_forged_payload_is_refused_before_sending(make_member, make_client):
    client, adapter = make_client(make_member())
    with pytest.raises(InvalidIdentifier, match="does not parse"):
        client.report_sticker_swap("000201" + "x" * 40)
    assert adapter.captured == []


def test_notes_are_readable_only_by_their_reporter(app, make_member, make_client):
    alpha_creds = make_member("Alpha Pay")
    alpha, _ = make_client(alpha_creds)
    alpha.notes_key = keys.new_symmetric_key("member-notes", 1)
    report = alpha.register("phone", "090-1234-5678", "card_theft", note="call centre case 42")
    assert report.note == "call centre case 42"
    assert [r.note for r in alpha.reports()] == ["call centre case 42"]
    with db.session_scope(app) as session:
        stored = session.scalar(select(Report.note))
    assert stored is not None and b"case 42" not in stored
    # Another notes key (or a tampered blob) reads nothing rather than garbage.
    alpha.notes_key = keys.new_symmetric_key("member-notes", 1)
    assert [r.note for r in alpha.reports()] == [None]
    beta, beta_adapter = make_client(make_member("Beta Bank"))
    beta.lookup(phone="090-1234-5678")
    assert b"note" not in beta_adapter.captured[-1].body


def test_payload_from_an_image(tmp_path):
    image = zxingcpp.write_barcode_to_image(
        zxingcpp.create_barcode(FORGED, zxingcpp.BarcodeFormat.QRCode), scale=4)
    path = tmp_path / "sticker.png"
    Image.frombytes("L", (image.shape[1], image.shape[0]), bytes(image)).save(path)
    assert _payload(str(path)) == FORGED
    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    with pytest.raises(ClickException, match="no QR code"):
        _payload(str(blank))
    junk = tmp_path / "junk.png"
    junk.write_bytes(base64.b64decode("aGVsbG8="))
    with pytest.raises(ClickException, match="not a readable image"):
        _payload(str(junk))
    assert _payload("000201not-a-file") == "000201not-a-file"


# -- issue 12: genuine foreign codes, disputes, CLUE down ------------------------------------


@pytest.mark.parametrize(("payload", "flags", "warnings"), [
    (PROMPTPAY_STATIC, {"not_jpqr"},
     ("no_merchant_category", "no_merchant_name", "no_merchant_city")),
    (VIETQR_SUBIZ, {"not_static", "not_jpqr"},
     ("no_merchant_category", "no_merchant_name", "no_merchant_city")),
    (QRIS_SUNARY, {"not_static", "not_jpqr"}, ("no_merchant_category",)),
    (DUITNOW_SAMPLE, {"not_jpqr"}, ("payload_format_02",)),
    (PIX_BCB, {"not_jpqr"}, ("no_point_of_initiation",)),  # no ID 01: not called dynamic
])
def test_genuine_foreign_codes_are_not_called_forged(make_member, make_scanner, payload, flags,
                                                     warnings):
    client, adapter = make_scanner(make_member())
    check = client.check_static_qr(payload)
    assert check.flags == flags and check.warnings == warnings
    assert not check.block and not check.confirm_merchant and check.tier == "clear"
    assert check.error_code is None and not check.degraded
    assert len(adapter.captured) == 1  # its payee was still looked up
    assert [p.value for p in check.payees] == [payee_key(parse_mpm(payload))]
    assert any(reason.startswith("QR code warning: ") for reason in check.reasons)


def test_a_disputed_payee_asks_instead_of_blocking(make_member, make_client, make_scanner):
    reporter, _ = make_client(make_member("Alpha Pay"))
    reporter.report_sticker_swap(FORGED, genuine_store_id=STORE)
    checker, _ = make_scanner(make_member("Beta Bank"))
    assert checker.check_static_qr(FORGED).block
    # The payee's own provider files a dispute for its merchant.
    provider, _ = make_client(make_member("Gamma Pay"))
    provider.open_dispute("qr_payee", payee_key_of_forged(), "The merchant says the "
                          "account is theirs and the sticker is genuine.")
    check = checker.check_static_qr(FORGED)
    reported = [p for p in check.payees if p.matched]
    assert "payee_reported" in check.flags and [p.disputed for p in reported] == [True]
    assert check.tier == "high" and not check.block and check.confirm_merchant
    assert any("capped at high" in reason for reason in check.reasons)
    assert any("disputed (an open dispute contests it)" in reason for reason in check.reasons)


def payee_key_of_forged() -> str:
    # FORGED names two payees; the reported one is the forger's wallet account.
    return "com.example.wallet|01=forger-9999"


@pytest.mark.parametrize(("fallback", "block", "confirm"), [
    ("watch", False, True), ("high", False, True), ("block", True, False),
    ("clear", False, False),
])
def test_clue_down_gives_local_checks_and_the_fallback(make_member, make_scanner, fallback,
                                                       block, confirm):
    client, adapter = make_scanner(make_member(), adapter=StaticAdapter(503),
                                   fallback=Fallback(fallback, 1000))
    check = client.check_static_qr(FORGED)
    # A proxy's unsigned 503 is a GatewayError, a ResponseVerificationError (docs/sdk.md).
    assert check.degraded and check.error.startswith("GatewayError: an unsigned 503")
    assert check.tier == fallback and (check.block, check.confirm_merchant) == (block, confirm)
    # the reported-payee and store flags are unknown, not "clean"
    assert check.flags == frozenset() and check.payees == () and check.store is None
    assert check.reasons[0].startswith("CLUE unavailable (GatewayError")
    assert "qr_payee not checked: CLUE unavailable" in check.reasons
    assert "jpqr_store not checked: CLUE unavailable" in check.reasons
    assert len(adapter.captured) == 1  # one try, no retries inside the budget


def test_clue_down_still_refuses_an_unreadable_code_and_flags_a_dynamic_one(make_member,
                                                                            make_scanner):
    client, adapter = make_scanner(make_member(), adapter=StaticAdapter(503),
                                   fallback=Fallback("clear", 1000))
    broken = client.check_static_qr(FORGED[:-4] + ("0000" if not FORGED.endswith("0000")
                                                   else "1111"))
    assert broken.block and broken.error_code == "crc_mismatch" and not broken.degraded
    assert adapter.captured == []
    dynamic = client.check_static_qr(jpqr(STORE, dynamic=True))
    assert dynamic.degraded and "not_static" in dynamic.flags and not dynamic.block


def test_a_slow_or_stopped_clue_answers_within_the_budget(make_member, make_scanner):
    slow, _ = make_scanner(make_member(), adapter=StaticAdapter(200, delay=1.5),
                           fallback=Fallback("watch", 150))
    started = time.monotonic()
    check = slow.check_static_qr(FORGED)
    assert time.monotonic() - started < 0.6
    assert check.degraded and check.confirm_merchant
    # DeadlineExceeded is a TransportError (and a TimeoutError).
    assert check.error.startswith("DeadlineExceeded: no answer from CLUE")
    assert check.error.endswith("within 150 ms")
    stopped = ClueClient(f"http://127.0.0.1:{free_port()}",
                         signing_key=keys.generate_signing_key(),
                         server_public_key=keys.generate_signing_key().public_key(),
                         server_key_id="server-1",
                         network_keys=keys.Keyring([keys.new_symmetric_key("network", 1)]))
    check = stopped.check_static_qr(FORGED)
    assert check.degraded and check.error.startswith("TransportError: cannot reach CLUE")


def test_strict_clients_raise_instead(make_member, make_scanner):
    client, _ = make_scanner(make_member(), adapter=StaticAdapter(503, delay=0.0),
                             fallback=Fallback("watch", 1000), strict=True)
    with pytest.raises(ResponseVerificationError):
        client.check_static_qr(FORGED)
    slow, _ = make_scanner(make_member("Strict Pay"), adapter=StaticAdapter(200, delay=1.0),
                           fallback=Fallback("watch", 100), strict=True)
    with pytest.raises(TransportError, match="within 100 ms"):
        slow.check_static_qr(FORGED)


def test_cached_answers_still_block_while_clue_is_down(make_member, make_client,
                                                       make_scanner):
    reporter, _ = make_client(make_member("Alpha Pay"))
    reporter.report_sticker_swap(FORGED, genuine_store_id=STORE)
    cache = LookupCache(ttl=60)
    creds = make_member("Cached Pay")
    up, _ = make_scanner(creds, cache=cache)
    assert up.check_static_qr(FORGED).block
    down, _ = make_scanner(creds, cache=cache, adapter=StaticAdapter(503),
                           fallback=Fallback("clear", 1000))
    check = down.check_static_qr(FORGED)
    assert not check.degraded  # every answer came from the cache: nothing was asked
    assert check.block and "payee_reported" in check.flags


# -- docs/sticker-swaps.md: the sample payload and the tour, byte for byte ----------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "sticker-swaps.md"
_BLOCK = re.compile(r"<!-- example:([a-z0-9-]+) -->\n```[a-z]*\n(.*?)\n```", re.DOTALL)
EX = dict(_BLOCK.findall(DOC.read_text(encoding="utf-8")))
TEST_NETWORK_KEY = bytes(range(32))  # docs/protocol.md §14.1, test only


def test_the_documented_sample_is_the_published_one_and_its_values_are_right():
    sample = EX["jpqr-sample"]
    assert sample == JPQR_MERPAY  # github.com/mercari/go-emv-code, mpm/jpqr/jpqr_test.go
    code = parse_mpm(sample)  # the CRC is right, the code is valid
    assert code.is_static and code.warnings == ()
    info = jpqr_view(code, strict=True)
    assert info is not None and info.store_id == "00000000000010001000001000001"
    payees = [f"{g}|{a}" for g, a in payees_of(code)]
    assert payees == EX["jpqr-sample-payees"].splitlines()
    assert all(canonicalize("qr_payee", p) == p for p in payees)
    by_hand = [hmac.new(TEST_NETWORK_KEY, b"clue/v1\0" + t.encode() + b"\0" + v.encode(),
                        hashlib.sha256).digest()
               for t, v in [*(("qr_payee", p) for p in payees), ("jpqr_store", info.store_id)]]
    assert [base64.urlsafe_b64encode(d).rstrip(b"=").decode() for d in by_hand] == \
        EX["jpqr-sample-tokens"].splitlines()


def test_the_documented_tour_works(make_member, make_client, make_scanner, monkeypatch):
    report_line, check_line = EX["jpqr-sample-tour"].splitlines()
    report_args, check_args = shlex.split(report_line), shlex.split(check_line)
    assert report_args[:2] == ["clue", "report-sticker"] and check_args[:2] == ["clue",
                                                                               "check-qr"]
    assert report_args[2] == check_args[2] == EX["jpqr-sample"]
    store_id = report_args[report_args.index("--genuine-store-id") + 1]
    assert re.fullmatch(r"[0-9]{29}", store_id)

    reporter, _ = make_client(make_member("Alpha Pay"))
    monkeypatch.setattr(clue_cli, "_client", lambda ctx: reporter)
    result = CliRunner().invoke(clue_cli.main, report_args[1:])
    assert result.exit_code == 0, result.output
    assert [line.split(" ", 1)[1] for line in result.output.splitlines()] == [
        "registered (qr_payee, sticker_swap)", "registered (qr_payee, sticker_swap)",
        "registered (jpqr_store, sticker_swap)"]

    checker, _ = make_scanner(make_member("Beta Bank"))
    check = checker.check_static_qr(EX["jpqr-sample"])
    assert [p.value for p in check.payees if p.matched] == \
        EX["jpqr-sample-payees"].splitlines()[1:]
    monkeypatch.setattr(clue_cli, "_client", lambda ctx: checker)
    result = CliRunner().invoke(clue_cli.main, check_args[1:])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "BLOCK: payee_reported, store_swap_reported"
