"""Canonical forms: examples for every type, rejections with reasons, and properties.

The properties are the contract the rest of CLUE relies on: canonicalisation is
idempotent (so a canonical value re-entered by a user tokenises identically), and
nothing but InvalidIdentifier ever escapes, whatever text arrives.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clue_client.canonical import (
    ID_TYPES,
    MAX_IDENTIFIER_LENGTH,
    canonicalize,
    email_folded,
    qr_payee,
)
from clue_client.errors import ClueError, InvalidIdentifier

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- examples

VALID = [
    # phone
    ("phone", "090-1234-5678", "+819012345678"),
    ("phone", "０９０－１２３４－５６７８", "+819012345678"),
    ("phone", "+81 90 1234 5678", "+819012345678"),
    ("phone", "+81-90-1234-5678", "+819012345678"),
    ("phone", "(090) 1234 5678", "+819012345678"),
    ("phone", "09012345678", "+819012345678"),
    ("phone", "+819012345678", "+819012345678"),
    ("phone", "＋８１　９０　１２３４　５６７８", "+819012345678"),
    ("phone", "090ー1234ー5678", "+819012345678"),  # katakana prolonged mark as a dash
    ("phone", "090−1234−5678", "+819012345678"),  # U+2212 minus sign
    ("phone", " +81 (0)90 1234 5678 ", "+819012345678"),
    ("phone", "tel:+81-90-1234-5678", "+819012345678"),
    ("phone", "03-1234-5678", "+81312345678"),
    ("phone", "06-6123-4567", "+81661234567"),
    ("phone", "050-1234-5678", "+815012345678"),
    ("phone", "0120-123-456", "+81120123456"),
    ("phone", "+1 650 253 0000", "+16502530000"),
    # email
    ("email", "User@ＥＸＡＭＰＬＥ.com ", "user@example.com"),
    ("email", "a@bücher.de", "a@xn--bcher-kva.de"),
    ("email", "A@BÜCHER.DE", "a@xn--bcher-kva.de"),
    ("email", "a@xn--bcher-kva.de", "a@xn--bcher-kva.de"),
    ("email", "J.Doe+shop@GoogleMail.com", "j.doe+shop@googlemail.com"),
    ("email", "\u3000x@example.org\u3000", "x@example.org"),
    ("email", "ÄÖ@example.com", "äö@example.com"),
    # ip
    # Example addresses are well-known public resolvers (Google 8.8.8.8, Cloudflare
    # 1.1.1.1 and 2606:4700:4700::1111, Quad9 9.9.9.9): global, and safe to name.
    ("ip", "8.8.8.8", "8.8.8.8"),
    ("ip", " 8.8.8.8\n", "8.8.8.8"),
    ("ip", "８．８．８．８", "8.8.8.8"),
    ("ip", "::ffff:1.1.1.1", "1.1.1.1"),
    ("ip", "::FFFF:909:909", "9.9.9.9"),
    ("ip", "64:ff9b::8.8.8.8", "8.8.8.8"),  # NAT64 well-known prefix (RFC 6052)
    ("ip", "2002:0808:0808:1::1", "8.8.8.8"),  # 6to4 (RFC 3056)
    ("ip", "2002:808:808:1::/64", "8.8.8.8"),
    ("ip", "2001:0:4136:e378:8000:63bf:f7f7:f7f7", "8.8.8.8"),  # Teredo (RFC 4380)
    ("ip", "2606:4700:4700:1:2:3:4:5", "2606:4700:4700:1::/64"),
    ("ip", "2606:4700:4700:0001::ffff", "2606:4700:4700:1::/64"),
    ("ip", "2606:4700:4700:1::/64", "2606:4700:4700:1::/64"),
    ("ip", "2606:4700:4700:0001:0000:0000:0000:0000/64", "2606:4700:4700:1::/64"),
    # the examples of docs/protocol.md
    ("ip", "::ffff:8.8.8.8", "8.8.8.8"),
    ("ip", "64:ff9b::808:808", "8.8.8.8"),
    ("ip", "2002:808:808::1", "8.8.8.8"),
    ("ip", "2606:4700:4700:0:0:0:0:1111", "2606:4700:4700::/64"),
    ("ip", "172.32.0.1", "172.32.0.1"),  # just past 172.16.0.0/12
    ("ip", "100.128.0.1", "100.128.0.1"),  # just past 100.64.0.0/10
    # device_id
    ("device_id", "  abc-DEF-123  ", "abc-DEF-123"),
    ("device_id", "ＡＢＣ１２３", "ABC123"),
    ("device_id", "fp:9f86d081884c7d65", "fp:9f86d081884c7d65"),
    ("device_id", "x" * 256, "x" * 256),
    ("device_id", "端末 42", "端末 42"),
    # bank_account
    ("bank_account", "0001-001-1-1234567", "0001-001-1-1234567"),
    ("bank_account", "0001 001 1 1234567", "0001-001-1-1234567"),
    ("bank_account", "000100111234567", "0001-001-1-1234567"),
    ("bank_account", "0001-001-1-123", "0001-001-1-0000123"),
    ("bank_account", "０００１－００１－２－１２３４５６７", "0001-001-2-1234567"),
    ("bank_account", "0009 - 123 - 4 - 7", "0009-123-4-0000007"),
    ("bank_account", "0001\u3000001\u30001\u30001234567", "0001-001-1-1234567"),
    # jpqr_store
    ("jpqr_store", "1234567890123-1234-123456-654321", "12345678901231234123456654321"),
    ("jpqr_store", "1234567890123 1234 123456 654321", "12345678901231234123456654321"),
    ("jpqr_store", "12345678901231234123456654321", "12345678901231234123456654321"),
    (
        "jpqr_store",
        "１２３４５６７８９０１２３－１２３４－１２３４５６－６５４３２１",
        "12345678901231234123456654321",
    ),
    # qr_payee: the written form of clue_client.canonical.qr_payee (docs/protocol.md §2)
    (
        "qr_payee",
        "jp.or.paymentsjapan|12345678901231234123456654321",
        "jp.or.paymentsjapan|12345678901231234123456654321",
    ),
    (
        "qr_payee",
        " JP.OR.PaymentsJapan | 1234567890123-1234-123456-654321 ",
        "jp.or.paymentsjapan|12345678901231234123456654321",
    ),
    (
        "qr_payee",
        "JP.OR.PaymentsJapan|0000000000001-0001-000001-000001",
        "jp.or.paymentsjapan|00000000000010001000001000001",
    ),
    (  # a JPQR template written sub-field by sub-field is its store ID
        "qr_payee",
        "JP.OR.PAYMENTSJAPAN|04=654321;03=123456;02=1234;01=1234567890123",
        "jp.or.paymentsjapan|12345678901231234123456654321",
    ),
    ("qr_payee", "A0000000041010|01=ＡＣＣＴ", "a0000000041010|01=ACCT"),
    ("qr_payee", "COM.EXAMPLE%7CPAY|02=x;01=Ab%3D1", "com.example%7Cpay|01=Ab%3D1;02=x"),
    ("qr_payee", "com.example|01=カフェ 1", "com.example|01=%E3%82%AB%E3%83%95%E3%82%A7%201"),
    ("qr_payee", "com.example|01=100%25;02=", "com.example|01=100%25;02="),
    ("qr_payee", "br.gov.bcb.pix|01=a%3bb", "br.gov.bcb.pix|01=a%3Bb"),
]


@pytest.mark.parametrize(("id_type", "raw", "expected"), VALID)
def test_valid_examples(id_type: str, raw: str, expected: str) -> None:
    assert canonicalize(id_type, raw) == expected
    assert canonicalize(id_type, expected) == expected


def test_every_type_has_examples() -> None:
    assert {row[0] for row in VALID} == set(ID_TYPES)
    assert ID_TYPES == (
        "phone",
        "email",
        "ip",
        "device_id",
        "bank_account",
        "jpqr_store",
        "qr_payee",
    )


INVALID = [
    # phone
    ("phone", "12345", "not a valid number"),
    ("phone", "abc", "not a phone number"),
    ("phone", "+81 00 0000", "not a valid number"),
    ("phone", "090-1234-567", "not a valid number"),
    ("phone", "090-1234-5678 ext 12", "extension"),
    ("phone", "+999 1234 5678", "not a phone number"),
    ("phone", "9" * 300, "not a phone number"),
    # email
    ("email", "no-at-sign", "@"),
    ("email", "a@localhost", "period"),
    ("email", '"quoted local"@example.com', "Quoting"),
    ("email", "a@[192.0.2.1]", "bracketed"),
    ("email", "a..b@example.com", "period"),
    ("email", "a@-example.com", "hyphen"),
    ("email", "a b@example.com", "invalid characters"),
    # ip
    ("ip", "fe80::1%eth0", "zone"),
    ("ip", "256.1.1.1", "not an IPv4 or IPv6"),
    ("ip", "01.2.3.4", "not an IPv4 or IPv6"),
    ("ip", "1.2.3.4/32", "/64"),
    ("ip", "2606:4700::/48", "/64"),
    ("ip", "2606:4700:4700:1::1/64", "/64"),
    ("ip", "2606:4700:4700:1::/64%eth0", "zone"),
    ("ip", "example.com", "not an IPv4 or IPv6"),
    # Not one subscriber's address (issue 10, item 12): each names its range.
    *((("ip", address, f"({where}")) for address, where in (
        ("0.0.0.0", "0.0.0.0/8"), ("10.1.2.3", "10.0.0.0/8, RFC 1918"),
        ("100.64.0.1", "100.64.0.0/10, RFC 6598"), ("127.0.0.1", "127.0.0.0/8"),
        ("169.254.1.1", "169.254.0.0/16"), ("172.16.0.1", "172.16.0.0/12, RFC 1918"),
        ("172.31.255.255", "172.16.0.0/12"), ("192.0.0.9", "192.0.0.0/24"),
        ("192.0.2.1", "192.0.2.0/24, RFC 5737"), ("192.88.99.1", "192.88.99.0/24"),
        ("192.168.1.1", "192.168.0.0/16, RFC 1918"), ("198.18.0.1", "198.18.0.0/15"),
        ("198.51.100.7", "198.51.100.0/24, RFC 5737"),
        ("203.0.113.7", "203.0.113.0/24, RFC 5737"), ("224.0.0.1", "224.0.0.0/4"),
        ("239.255.255.250", "224.0.0.0/4"), ("240.0.0.1", "240.0.0.0/4"),
        ("255.255.255.255", "240.0.0.0/4"),
        ("::", "::/128"), ("::1", "::1/128"), ("::8.8.8.8", "::/8"),
        ("::ffff:10.0.0.1", "10.0.0.0/8"), ("::ffff:127.0.0.1", "127.0.0.0/8"),
        ("64:ff9b::192.168.1.1", "192.168.0.0/16"), ("64:ff9b:1::8.8.8.8", "64:ff9b:1::/48"),
        ("100::1", "100::/64"), ("2001:2::1", "2001::/23"),
        ("2001:db8::1", "2001:db8::/32, RFC 3849"), ("2001:db8:1:2::/64", "2001:db8::/32"),
        ("3fff::1", "3fff::/20, RFC 9637"), ("2002:c0a8:0101::1", "192.168.0.0/16"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.0/24"),  # Teredo to TEST-NET-1
        ("fc00::1", "fc00::/7, RFC 4193"), ("fd12:3456:789a:1::1", "fc00::/7"),
        ("fe80::1", "fe80::/10"), ("fe80::/64", "fe80::/10"), ("febf::1", "fe80::/10"),
        ("fec0::1", "fec0::/10"), ("ff02::1", "ff00::/8"), ("4000::1", "outside 2000::/3"),
        ("5f00::1", "outside 2000::/3"),
    )),
    ("ip", "2001:0:4136:e378::/64", "lost the IPv4 address"),
    ("ip", "64:ff9b::/64", "lost the IPv4 address"),
    # device_id
    ("device_id", "x" * 257, "longer than 256"),
    ("device_id", "abc\x00def", "control"),
    ("device_id", "abc\ndef", "control"),
    ("device_id", "abc\ud800", "control"),
    ("device_id", "abc\u2029def", "control"),
    # bank_account
    ("bank_account", "0001-001-3-1234567", "account type"),
    ("bank_account", "0001-001-1-12345678", "expected BBBB-SSS-T-NNNNNNN"),
    ("bank_account", "00010011123456", "expected BBBB-SSS-T-NNNNNNN"),  # 14 digits
    ("bank_account", "0001001112345678", "expected BBBB-SSS-T-NNNNNNN"),  # 16 digits
    ("bank_account", "001-001-1-1234567", "expected BBBB-SSS-T-NNNNNNN"),
    ("bank_account", "0001-001-普通-1234567", "expected BBBB-SSS-T-NNNNNNN"),
    ("bank_account", "0001-0011-1234567", "expected BBBB-SSS-T-NNNNNNN"),
    ("bank_account", "٠٠٠١-٠٠١-١-١٢٣٤٥٦٧", "expected BBBB-SSS-T-NNNNNNN"),  # Arabic-Indic
    # jpqr_store
    ("jpqr_store", "1234567890123123412345665432", "29-digit"),
    ("jpqr_store", "123456789012312341234566543210", "29-digit"),
    ("jpqr_store", "123456789012-31234-123456-654321", "29-digit"),
    ("jpqr_store", "1234567890123/1234/123456/654321", "29-digit"),
    # qr_payee
    ("qr_payee", "jp.or.paymentsjapan", "guid|account"),
    ("qr_payee", "|01=x", "non-empty"),
    ("qr_payee", "jp.or.paymentsjapan|  ", "non-empty"),
    ("qr_payee", "com.example|0113Store-Acct-01", "SUB_ID=VALUE"),  # raw TLV is not the form
    ("qr_payee", "com.example|12345678901231234123456654321", "SUB_ID=VALUE"),  # not JPQR
    ("qr_payee", "jp.or.paymentsjapan|1234567890123123412345665432", "SUB_ID=VALUE"),  # 28
    ("qr_payee", "com.example|01=x;", "SUB_ID=VALUE"),
    ("qr_payee", "com.example|1=x", "two digits"),
    ("qr_payee", "com.example|00=x", "from 01 to 99"),
    ("qr_payee", "com.example|01=x;01=y", "twice"),
    ("qr_payee", "com.example|01=100%", "%XX"),
    ("qr_payee", "com.example|01=%FF", "not UTF-8"),
    ("qr_payee", "com.example|01=a%0Ab", "control"),
    ("qr_payee", "gu\tid|01=acct", "control"),
    ("qr_payee", "guid|01=acct\x1b[0m", "control"),
    ("qr_payee", "guid|01=ac\x85ct", "control"),  # C1 NEL
    ("qr_payee", "guid|01=acct\u2028x", "control"),  # line separator
]


@pytest.mark.parametrize(("id_type", "raw", "reason"), INVALID)
def test_invalid_examples(id_type: str, raw: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        canonicalize(id_type, raw)
    assert info.value.id_type == id_type
    assert reason in info.value.reason


def test_every_type_has_rejections() -> None:
    assert {row[0] for row in INVALID} == set(ID_TYPES)


@pytest.mark.parametrize("id_type", ID_TYPES)
@pytest.mark.parametrize("raw", ["", "   ", "\u3000\t\n"])
def test_empty_is_rejected(id_type: str, raw: str) -> None:
    with pytest.raises(InvalidIdentifier, match="empty"):
        canonicalize(id_type, raw)


@pytest.mark.parametrize("id_type", ID_TYPES)
@pytest.mark.parametrize("raw", [None, 12345, b"090-1234-5678", ["a"]])
def test_non_str_is_rejected(id_type: str, raw: object) -> None:
    with pytest.raises(InvalidIdentifier, match="must be a str"):
        canonicalize(id_type, raw)  # type: ignore[arg-type]


@pytest.mark.parametrize("id_type", ID_TYPES)
def test_overlong_raw_input_is_rejected(id_type: str) -> None:
    with pytest.raises(InvalidIdentifier, match="longer than 1024"):
        canonicalize(id_type, " " * MAX_IDENTIFIER_LENGTH + "1")


@pytest.mark.parametrize("id_type", ["", "Phone", "mac", "email_folded"])
def test_unknown_type(id_type: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        canonicalize(id_type, "x")
    assert info.value.reason == "unknown identifier type"


def test_invalid_identifier_is_a_clue_error_and_value_error_with_cause() -> None:
    with pytest.raises(InvalidIdentifier) as info:
        canonicalize("phone", "abc")
    assert isinstance(info.value, ClueError)
    assert isinstance(info.value, ValueError)
    assert info.value.__cause__ is not None  # the library error is chained, not swallowed


def test_phone_default_region() -> None:
    assert canonicalize("phone", "(650) 253-0000", default_region="US") == "+16502530000"
    assert canonicalize("phone", "(650) 253-0000", default_region="us") == "+16502530000"
    # A number with its own country code ignores the default region.
    assert canonicalize("phone", "+81 90 1234 5678", default_region="US") == "+819012345678"


# One number of every Japanese range. Which numbers are valid comes from phonenumbers'
# metadata, and two members on releases that disagree would not match each other's
# reports: setup.cfg pins the floor (9.0.32, the first release accepting 060 mobiles;
# 8.13.x releases differ again) and this list is what that floor must accept.
JAPANESE_RANGES = [
    ("mobile 070", "070-1234-5678", "+817012345678"),
    ("mobile 080", "080-1234-5678", "+818012345678"),
    ("mobile 090", "090-1234-5678", "+819012345678"),
    ("mobile 060 (since 2026)", "060-2123-4567", "+816021234567"),
    ("IP phone 050", "050-1234-5678", "+815012345678"),
    ("free dial 0120", "0120-123-456", "+81120123456"),
    ("free dial 0800", "0800-123-4567", "+818001234567"),
    ("navi dial 0570", "0570-123-456", "+81570123456"),
    ("M2M / pager 020", "020-4123-4567", "+812041234567"),
    ("premium 0990", "0990-123-456", "+81990123456"),
    ("Tokyo 03", "03-1234-5678", "+81312345678"),
    ("Osaka 06", "06-6123-4567", "+81661234567"),
    ("Sapporo 011", "011-211-2111", "+81112112111"),
    ("Nagoya 052", "052-961-1111", "+81529611111"),
    ("Fukuoka 092", "092-711-4111", "+81927114111"),
    ("Naha 098", "098-866-2333", "+81988662333"),
    ("Asahikawa 0166", "0166-26-1111", "+81166261111"),
]


@pytest.mark.parametrize(("label", "number", "e164"), JAPANESE_RANGES,
                         ids=[r[0] for r in JAPANESE_RANGES])
def test_one_number_of_each_japanese_range(label: str, number: str, e164: str) -> None:
    assert canonicalize("phone", number) == e164
    assert canonicalize("phone", e164) == e164
    assert canonicalize("phone", "+81 " + number[1:]) == e164


def test_the_phonenumbers_floor_in_setup_cfg_is_the_one_these_tests_need() -> None:
    from pathlib import Path

    import phonenumbers

    setup = (Path(__file__).resolve().parents[3] / "setup.cfg").read_text("utf-8")
    floor = re.search(r"^\s*phonenumbers>=([0-9.]+)\s*$", setup, re.MULTILINE)
    assert floor is not None and floor.group(1) == "9.0.32"

    def version(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in text.split("."))

    assert version(phonenumbers.__version__) >= version(floor.group(1))


# ---------------------------------------------------------------------- email folding

FOLDED = [
    ("j.doe+shop@googlemail.com", "jdoe@gmail.com"),
    ("j.doe@gmail.com", "jdoe@gmail.com"),
    ("jdoe+a+b@gmail.com", "jdoe@gmail.com"),
    ("j.doe+shop@example.com", "j.doe@example.com"),
    ("user@example.com", "user@example.com"),
    ("+tag@example.com", "+tag@example.com"),  # no untagged form to fold to
    ("a.+x@example.com", "a.@example.com"),
    ("a@xn--bcher-kva.de", "a@xn--bcher-kva.de"),
    ("a.b@sub.gmail.com", "a.b@sub.gmail.com"),  # only gmail.com itself ignores dots
]


@pytest.mark.parametrize(("canonical", "expected"), FOLDED)
def test_email_folded(canonical: str, expected: str) -> None:
    assert email_folded(canonical) == expected
    assert email_folded(expected) == expected


def test_email_folded_from_raw() -> None:
    canonical = canonicalize("email", "J.Doe+shop@GoogleMail.com")
    assert canonical == "j.doe+shop@googlemail.com"
    assert email_folded(canonical) == "jdoe@gmail.com"


@pytest.mark.parametrize("bad", ["", "no-at", "@example.com", "user@", " a@b.c", None, 5])
def test_email_folded_rejects_non_canonical(bad: object) -> None:
    with pytest.raises(InvalidIdentifier):
        email_folded(bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ qr_payee


def test_qr_payee_builder() -> None:
    subs = [("05", "x"), ("01", " ＭＥＲＣＨ;1 ")]
    built = qr_payee("Com.Example.PAY", subs)
    assert built == "com.example.pay|01=MERCH%3B1;05=x"
    assert canonicalize("qr_payee", built) == built
    assert canonicalize("qr_payee", "com.example.pay|05=x;01=MERCH%3B1") == built
    # Values are taken as found in the code: a "%41" there is text, not an escape.
    assert qr_payee("g", [("01", "%41")]) == "g|01=%2541"
    # Only ASCII letters fold in a GUID (EMV GUIDs are ASCII); the rest is escaped.
    assert qr_payee("Ä.example", [("01", "x")]) == "%C3%84.example|01=x"
    # A JPQR template with a malformed store ID is described like any other.
    assert qr_payee("jp.or.paymentsjapan", [("01", "123")]) == "jp.or.paymentsjapan|01=123"


@pytest.mark.parametrize(
    ("guid", "sub_fields", "reason"),
    [
        ("", [("01", "x")], "non-empty"),
        (" ", [("01", "x")], "non-empty"),
        ("guid", [], "non-empty"),
        ("guid", "01=x", "pairs"),
        ("guid", [("01", "x", "y")], "pairs"),
        ("guid", [("1", "x")], "two digits"),
        ("guid", [("00", "x")], "from 01 to 99"),
        ("guid", [("01", "x"), ("01", "y")], "twice"),
        ("guid", [("01", "a\tb")], "control"),
        ("gu\x00id", [("01", "x")], "control"),
        (None, [("01", "x")], "must be a str"),
        ("guid", [("01", b"acct")], "must be a str"),
        ("guid", [("01", "a" * 2000)], "too long"),
    ],
)
def test_qr_payee_builder_rejects(guid: object, sub_fields: object, reason: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        qr_payee(guid, sub_fields)  # type: ignore[arg-type]
    assert reason in info.value.reason


# ---------------------------------------------------------------------------- properties

_digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


def _digit_string(size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=size, max_size=size)


# Patterns known to be valid in phonenumbers' JP metadata: mobile 0[789]0-[1-9]xxx-xxxx,
# Tokyo/Osaka 0[36]-[2-9]xxx-xxxx, IP phone 050-[1-9]xxx-xxxx. Each is (trunk-prefixed
# national number, how to group it).
_jp_mobile = st.builds(
    lambda a, b, rest: (f"0{a}0{b}{rest}", (3, 4, 4)),
    st.sampled_from("789"),
    st.sampled_from("123456789"),
    _digit_string(7),
)
_jp_landline = st.builds(
    lambda a, b, rest: (f"0{a}{b}{rest}", (2, 4, 4)),
    st.sampled_from("36"),
    st.sampled_from("23456789"),
    _digit_string(7),
)
_jp_ip_phone = st.builds(
    lambda b, rest: (f"050{b}{rest}", (3, 4, 4)),
    st.sampled_from("123456789"),
    _digit_string(7),
)

_FULLWIDTH = str.maketrans("0123456789+-()", "０１２３４５６７８９＋－（）")


def _group(digits: str, sizes: tuple[int, ...]) -> list[str]:
    parts, start = [], 0
    for size in sizes:
        parts.append(digits[start : start + size])
        start += size
    return parts


@st.composite
def jp_phone_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """(a JP number in some human format, its expected E.164 form)."""
    national, sizes = draw(st.one_of(_jp_mobile, _jp_landline, _jp_ip_phone))
    e164 = "+81" + national[1:]
    groups = _group(national, sizes)
    style = draw(st.sampled_from(["plain", "hyphen", "space", "parens", "intl", "intl-hyphen"]))
    if style == "plain":
        text = national
    elif style == "hyphen":
        text = "-".join(groups)
    elif style == "space":
        text = " ".join(groups)
    elif style == "parens":
        text = f"({groups[0]}) {groups[1]}-{groups[2]}"
    elif style == "intl":
        text = "+81 " + " ".join([groups[0][1:], *groups[1:]])
    else:
        text = "+81-" + "-".join([groups[0][1:], *groups[1:]])
    if draw(st.booleans()):
        text = text.translate(_FULLWIDTH)
    padding = draw(st.sampled_from(["", " ", "\u3000", "\t"]))
    return padding + text + padding, e164


@PROPERTY
@given(jp_phone_numbers())
def test_phone_formats_fold_to_e164_and_are_idempotent(case: tuple[str, str]) -> None:
    text, e164 = case
    canonical = canonicalize("phone", text)
    assert canonical == e164
    assert canonicalize("phone", canonical) == canonical


_atom = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_",
    min_size=1,
    max_size=8,
)
_label = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?", fullmatch=True)
_unicode_label = st.sampled_from(["bücher", "MÜNCHEN", "日本", "例え", "ＥＸＡＭＰＬＥ", "straße"])
_tld = st.sampled_from(["com", "jp", "co.jp", "ORG", "de", "xn--wgv71a"])


@st.composite
def emails(draw: st.DrawFn) -> str:
    local = ".".join(draw(st.lists(_atom, min_size=1, max_size=3)))
    if draw(st.booleans()):
        local += "+" + draw(_atom)
    if draw(st.booleans()):
        domain = draw(st.sampled_from(["gmail.com", "GoogleMail.com", "GMAIL.COM"]))
    else:
        labels = draw(st.lists(st.one_of(_label, _unicode_label), min_size=1, max_size=2))
        domain = ".".join([*labels, draw(_tld)])
    return f"{local}@{domain}"


@PROPERTY
@given(emails())
def test_email_canonical_and_folded_are_idempotent(raw: str) -> None:
    canonical = canonicalize("email", raw)
    assert canonicalize("email", canonical) == canonical
    assert canonical == canonical.lower()
    assert canonical.isascii()  # these generated local parts are ASCII; domains go IDNA
    folded = email_folded(canonical)
    assert email_folded(folded) == folded
    local, _, domain = folded.rpartition("@")
    if domain == "gmail.com":
        assert "." not in local
        assert "+" not in local
    assert domain != "googlemail.com"


@PROPERTY
@given(st.text(min_size=1, max_size=20), st.sampled_from(["example.com", "bücher.de"]))
def test_email_unicode_local_parts_are_idempotent(local: str, domain: str) -> None:
    try:
        canonical = canonicalize("email", f"{local}@{domain}")
    except InvalidIdentifier:
        return
    assert canonicalize("email", canonical) == canonical


def _python_says_not_global(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Python's own view (which changed between releases), as a cross-check."""
    return not address.is_global or address.is_multicast


@PROPERTY
@given(st.ip_addresses(v=4))
def test_ipv4_is_dotted_quad_and_idempotent(address: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(b"\x00" * 10 + b"\xff\xff" + address.packed)
    try:
        canonical = canonicalize("ip", str(address))
    except InvalidIdentifier as exc:
        assert "only globally routable addresses" in exc.reason
        # The same address written as IPv4-mapped IPv6 is refused just the same.
        with pytest.raises(InvalidIdentifier, match="only globally routable"):
            canonicalize("ip", str(mapped))
        return
    assert not _python_says_not_global(address)  # never accept what Python calls local
    assert canonical == str(address)
    assert canonicalize("ip", canonical) == canonical
    assert canonicalize("ip", str(mapped)) == canonical
    assert canonicalize("ip", mapped.exploded) == canonical


@PROPERTY
@given(st.one_of(st.ip_addresses(v=6), st.ip_addresses(network="2000::/3")))
def test_ipv6_is_its_64_and_idempotent(address: ipaddress.IPv6Address) -> None:
    for text in (str(address), address.exploded, address.exploded.upper()):
        try:
            canonical = canonicalize("ip", text)
        except InvalidIdentifier as exc:
            assert "globally routable" in exc.reason or "lost the IPv4" in exc.reason
            continue
        assert canonicalize("ip", canonical) == canonical
        as_ipv4 = (address.ipv4_mapped or address.sixtofour
                   or (address.teredo[1] if address.teredo else None))
        if as_ipv4 is None and address in ipaddress.IPv6Network("64:ff9b::/96"):
            as_ipv4 = ipaddress.IPv4Address(address.packed[12:])
        if as_ipv4 is not None:
            assert canonical == str(as_ipv4)
            assert not _python_says_not_global(as_ipv4)
        else:
            network = ipaddress.IPv6Network(canonical)
            assert network.prefixlen == 64
            assert address in network
            assert canonical == str(network)
            assert not _python_says_not_global(address)


_separators = st.sampled_from(["-", " ", "", "－", " - ", "\u3000"])


@st.composite
def bank_accounts(draw: st.DrawFn) -> tuple[str, str]:
    bank, branch = draw(_digit_string(4)), draw(_digit_string(3))
    kind = draw(st.sampled_from("124"))
    number = draw(st.text(alphabet="0123456789", min_size=1, max_size=7))
    expected = f"{bank}-{branch}-{kind}-{number.zfill(7)}"
    sep = draw(_separators)
    if sep == "":
        # Without separators only the full 15-digit form is unambiguous.
        text = f"{bank}{branch}{kind}{number.zfill(7)}"
    else:
        text = sep.join([bank, branch, kind, number])
    if draw(st.booleans()):
        text = text.translate(_FULLWIDTH)
    return text, expected


@PROPERTY
@given(bank_accounts())
def test_bank_account_formats_and_idempotence(case: tuple[str, str]) -> None:
    text, expected = case
    canonical = canonicalize("bank_account", text)
    assert canonical == expected
    assert re.fullmatch(r"[0-9]{4}-[0-9]{3}-[124]-[0-9]{7}", canonical)
    assert canonicalize("bank_account", canonical) == canonical


@PROPERTY
@given(st.lists(_digit_string(29), min_size=1, max_size=1), _separators)
def test_jpqr_store_idempotence(ids: list[str], sep: str) -> None:
    store = ids[0]
    text = sep.join([store[:13], store[13:17], store[17:23], store[23:]])
    canonical = canonicalize("jpqr_store", text)
    assert canonical == store
    assert canonicalize("jpqr_store", canonical) == canonical


@PROPERTY
@given(st.text(max_size=300))
def test_device_id_is_idempotent(raw: str) -> None:
    try:
        canonical = canonicalize("device_id", raw)
    except InvalidIdentifier:
        return
    assert canonical == canonical.strip()
    assert 0 < len(canonical) <= 256
    assert canonicalize("device_id", canonical) == canonical


_sub_fields = st.dictionaries(
    st.integers(1, 99).map(lambda n: f"{n:02d}"),
    st.one_of(st.text(max_size=30), st.text(alphabet="0123456789;=|% ａ", max_size=30)),
    min_size=1, max_size=5,
)


@PROPERTY
@given(st.one_of(st.text(min_size=1, max_size=40), st.just("jp.or.paymentsjapan")),
       _sub_fields)
def test_qr_payee_is_a_fixed_point_and_loses_nothing(guid: str, subs: dict[str, str]) -> None:
    try:
        canonical = qr_payee(guid, list(subs.items()))
    except InvalidIdentifier:
        return
    assert canonical.isascii() and canonical.isprintable() and " " not in canonical
    assert canonicalize("qr_payee", canonical) == canonical
    name, bar, account = canonical.partition("|")
    assert bar and "|" not in account
    if re.fullmatch(r"[0-9]{29}", account) and name == "jp.or.paymentsjapan":
        return
    # Every sub-field comes back, normalised, from the written form: nothing collides.
    read = dict(pair.split("=") for pair in account.split(";"))
    assert read.keys() == subs.keys()
    for sub_id, value in subs.items():
        assert unquote(read[sub_id]) == unicodedata.normalize(
            "NFKC", unicodedata.normalize("NFKC", value).strip())


# Anything may arrive from a CSV file or a form: the only failure is InvalidIdentifier,
# every success is a fixed point, and every canonical form can be UTF-8 encoded for the
# token. Surrogates are included on purpose (they cannot be encoded).
_any_text = st.one_of(
    st.text(max_size=64),
    st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=64),
    st.text(alphabet="0123456789+-() .:abcdef|@%/\u3000－０１", max_size=40),
)


@PROPERTY
@given(st.sampled_from(ID_TYPES), _any_text)
def test_random_text_only_raises_invalid_identifier(id_type: str, raw: str) -> None:
    try:
        canonical = canonicalize(id_type, raw)
    except InvalidIdentifier as exc:
        assert exc.id_type == id_type
        assert exc.reason
        return
    canonical.encode("utf-8")
    assert canonicalize(id_type, canonical) == canonical


@PROPERTY
@given(_any_text)
def test_email_folded_random_text_only_raises_invalid_identifier(raw: str) -> None:
    try:
        folded = email_folded(raw)
    except InvalidIdentifier:
        return
    assert email_folded(folded) == folded
