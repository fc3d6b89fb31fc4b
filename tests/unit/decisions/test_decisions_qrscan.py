"""Reading a scanned payload into QR identifiers and local flags (no network)."""

from __future__ import annotations

import builtins

import pytest

from clue_client.decisions.qrscan import QrUnavailable, read_qr
from clue_client.qr import JPQR_GUID, build_mpm

# The published JPQR example from the sticker-swap issue (a static code).
PUBLISHED = (
    "0002016003xxx01021129300012D156000000000510A93FO3230Q31280012D1560000000103081234567826"
    "680019jp.or.paymentsjapan01130000000000001020400010306000001040600000153033925903xxx6418"
    "0002JA0108メルペイ カフェ520441115802JP610710661436304DEE9"
)
STORE_ID = "00000000000010001000001000001"


def test_a_published_static_jpqr_code():
    scan = read_qr(PUBLISHED)
    assert scan.flags == frozenset()
    assert scan.store_id == STORE_ID
    assert f"{JPQR_GUID}|{STORE_ID}" in scan.payees
    assert all("|" in p for p in scan.payees)


def test_an_invalid_payload_is_a_flag_with_the_parser_code():
    scan = read_qr(PUBLISHED[:-1] + "0")
    assert scan.flags == {"invalid_payload"}
    assert scan.error_code == "crc_mismatch"
    assert (scan.store_id, scan.payees) == (None, ())
    assert read_qr("hello").flags == {"invalid_payload"}


def test_a_dynamic_non_jpqr_code():
    payload = build_mpm([("01", "12"), ("26", [("00", "com.example.pay"), ("01", "acct-42")]),
                         ("52", "5812"), ("53", "392"), ("54", "1000"), ("58", "JP"),
                         ("59", "SHOP"), ("60", "TOKYO")])
    scan = read_qr(payload)
    assert scan.flags == {"not_static", "not_jpqr"}
    assert scan.store_id is None
    assert scan.payees == ("com.example.pay|01=acct-42",)


def test_without_the_parser_the_hook_says_so(monkeypatch):
    real_import = builtins.__import__

    def no_qr(name, *args, **kwargs):
        if name == "clue_client.qr":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_qr)
    with pytest.raises(QrUnavailable, match=r"clue_client\.qr is not available"):
        read_qr(PUBLISHED)
