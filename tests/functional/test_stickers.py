"""Issue 3: reporting a swapped static QR sticker protects every member; scans are flagged."""

from __future__ import annotations

import base64

import pytest
import zxingcpp
from click import ClickException
from PIL import Image
from sqlalchemy import select

import keys
from clue_client import InvalidIdentifier
from clue_client.cli import _payload
from clue_client.qr import build_mpm
from clue_server import db
from clue_server.reports.models import Report

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


def test_report_then_every_member_sees_the_swap(make_member, make_client):
    reporter, _ = make_client(make_member("Alpha Pay"))
    reporter.notes_key = keys.new_symmetric_key("member-notes", 1)
    checker, adapter = make_client(make_member("Beta Bank"))
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


def test_local_flags_need_no_network(make_member, make_client):
    client, adapter = make_client(make_member())
    broken = FORGED[:-4] + ("0000" if not FORGED.endswith("0000") else "1111")
    check = client.check_static_qr(broken)
    assert check.flags == {"invalid_payload"} and check.error_code == "crc_mismatch"
    assert check.block
    assert adapter.captured == []
    dynamic = client.check_static_qr(jpqr(STORE, dynamic=True))
    assert "not_static" in dynamic.flags


def test_payload_never_leaves_the_member(make_member, make_client):
    client, adapter = make_client(make_member())
    client.report_sticker_swap(FORGED, genuine_store_id=STORE)
    client.check_static_qr(FORGED)
    sent = b"".join((r.body or b"") + r.url.encode() + str(r.headers).encode()
                    for r in adapter.captured)
    for secret in (FORGED, "forger-9999", STORE, "jp.or.paymentsjapan", "com.example.wallet"):
        assert secret.encode() not in sent


def test_a_forged_jpqr_with_a_fake_store_id_reports_that_id(make_member, make_client):
    client, _ = make_client(make_member())
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
