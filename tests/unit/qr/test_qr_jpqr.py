"""jpqr_view (every JPQR rule, strict and lenient) and payee_of / payees_of / payee_key."""

from __future__ import annotations

import pytest

from clue_client.qr import (
    JPQR_GUID,
    FieldValue,
    MpmCode,
    MpmError,
    build_mpm,
    jpqr_view,
    parse_mpm,
    payee_key,
    payee_of,
    payees_of,
)

STORE = [("01", "1234567890123"), ("02", "0042"), ("03", "000777"), ("04", "000009")]
STORE_ID = "12345678901230042000777000009"  # 13 + 4 + 6 + 6 digits


def jpqr_fields(**changes: FieldValue | None) -> list[tuple[str, FieldValue]]:
    """A complete static JPQR sticker; ``t26=...`` style keywords replace or drop IDs."""
    fields: dict[str, FieldValue] = {
        "01": "11",
        "26": [("00", JPQR_GUID), *STORE],
        "52": "5812",
        "53": "392",
        "58": "JP",
        "59": "KISSA HANA",
        "60": "SHINAGAWA",
        "61": "1400001",
        "64": [("00", "JA"), ("01", "喫茶 花"), ("02", "品川")],
    }
    for key, value in changes.items():
        tag = key.removeprefix("t")
        if value is None:
            fields.pop(tag, None)
        else:
            fields[tag] = value
    return list(fields.items())


def jpqr(**changes: FieldValue | None) -> MpmCode:
    return parse_mpm(build_mpm(jpqr_fields(**changes)))


def strict_error(code: MpmCode) -> MpmError:
    with pytest.raises(MpmError) as info:
        jpqr_view(code, strict=True)
    assert jpqr_view(code) is None  # lenient: just "not JPQR"
    return info.value


def test_complete_sticker() -> None:
    info = jpqr_view(jpqr(), strict=True)
    assert info is not None
    assert (info.company, info.brand, info.store, info.terminal) == (
        "1234567890123",
        "0042",
        "000777",
        "000009",
    )
    assert info.store_id == STORE_ID
    assert len(info.store_id) == 29
    assert info.merchant_name == "KISSA HANA"
    assert info.merchant_name_ja == "喫茶 花"
    assert info.merchant_city_ja == "品川"
    assert info.language == "JA"
    assert info.postal_code == "1400001"
    assert info.template_tag == "26"
    assert info.is_static


def test_dynamic_jpqr_is_still_jpqr() -> None:
    info = jpqr_view(jpqr(t01="12"))
    assert info is not None and not info.is_static


def test_jpqr_in_a_later_template() -> None:
    # The guideline puts the store ID in the lowest free ID; 26 may be another provider's.
    code = jpqr(t26=[("00", "com.example.pay"), ("01", "M-1")], t27=[("00", JPQR_GUID), *STORE])
    info = jpqr_view(code, strict=True)
    assert info is not None and info.template_tag == "27"


def test_guid_is_compared_case_insensitively() -> None:
    code = jpqr(t26=[("00", "JP.OR.PAYMENTSJAPAN"), *STORE])
    assert jpqr_view(code) is not None


def test_not_jpqr_without_the_guid() -> None:
    err = strict_error(jpqr(t26=[("00", "com.example.pay"), *STORE]))
    assert err.code == "not_jpqr"
    assert JPQR_GUID in str(err)


@pytest.mark.parametrize(
    ("sub_id", "value"),
    [
        ("01", "123456789012"),  # 12 digits, not 13
        ("01", "12345678901234"),
        ("02", "42"),
        ("03", "00077A"),
        ("04", "００００09"),  # full-width digits
        ("04", None),
        ("01", None),
    ],
)
def test_store_id_parts_must_be_13_4_6_6_digits(sub_id: str, value: str | None) -> None:
    store = [(k, v) for k, v in STORE if k != sub_id]
    if value is not None:
        store.append((sub_id, value))
    err = strict_error(jpqr(t26=[("00", JPQR_GUID), *store]))
    assert (err.code, err.tag) == ("bad_store_id", f"26.{sub_id}")


def test_two_jpqr_templates_are_ambiguous() -> None:
    err = strict_error(jpqr(t27=[("00", JPQR_GUID), *STORE]))
    assert (err.code, err.tag) == ("duplicate_tag", "27")


@pytest.mark.parametrize(
    ("change", "code", "tag"),
    [
        ({"t53": "840"}, "bad_format", "53"),
        ({"t58": "US"}, "bad_format", "58"),
        ({"t61": None}, "missing_field", "61"),
        ({"t64": None}, "missing_field", "64"),
        ({"t64": [("00", "ZH"), ("01", "咖啡")]}, "bad_format", "64.00"),
    ],
)
def test_jpqr_field_rules(change: dict[str, FieldValue | None], code: str, tag: str) -> None:
    err = strict_error(jpqr(**change))
    assert (err.code, err.tag) == (code, tag)


def test_hand_built_code_without_japanese_name() -> None:
    # parse_mpm would already reject this; jpqr_view must not crash on it either.
    code = parse_mpm(build_mpm(jpqr_fields()))
    fields = tuple((t, "0002JA" if t == "64" else v) for t, v in code.fields)
    err = strict_error(MpmCode(fields=fields))
    assert (err.code, err.tag) == ("missing_field", "64.01")


# --- payees ---------------------------------------------------------------------


def test_jpqr_payee_is_the_store_id() -> None:
    assert payee_of(jpqr()) == (JPQR_GUID, STORE_ID)
    assert payee_key(jpqr()) == f"{JPQR_GUID}|{STORE_ID}"


def test_payee_is_the_lowest_id_whatever_the_payload_order() -> None:
    a = [("00", "com.alpha"), ("01", "A-1")]
    b = [("00", "com.beta"), ("01", "B-1")]
    base = jpqr_fields(t26=None)
    first = parse_mpm(build_mpm([("30", b), ("28", a), *base]))
    second = parse_mpm(build_mpm([("28", a), ("30", b), *base]))
    assert payee_of(first) == payee_of(second) == ("com.alpha", "01=A-1")
    assert (
        payees_of(first) == payees_of(second) == [("com.alpha", "01=A-1"), ("com.beta", "01=B-1")]
    )


def test_account_is_sub_fields_in_sub_id_order() -> None:
    code = jpqr(t26=[("00", "Com.Example.Pay"), ("05", "x"), ("01", "M-1"), ("99", "z")])
    assert payee_of(code) == ("com.example.pay", "01=M-1;05=x;99=z")


def test_separators_in_values_are_escaped() -> None:
    # Without escaping, these two templates would both read "01=a;02=b".
    one = jpqr(t26=[("00", "com.example.pay"), ("01", "a;02=b")])
    two = jpqr(t26=[("00", "com.example.pay"), ("01", "a"), ("02", "b")])
    assert payee_of(one) == ("com.example.pay", "01=a%3B02%3Db")
    assert payee_of(two) == ("com.example.pay", "01=a;02=b")
    pipe = jpqr(t26=[("00", "x|y"), ("01", "100%|z")])
    assert payee_key(pipe) == "x%7Cy|01=100%25%7Cz"


def test_malformed_jpqr_template_is_described_like_any_other() -> None:
    code = jpqr(t26=[("00", JPQR_GUID), ("01", "123")])
    assert payee_of(code) == (JPQR_GUID, "01=123")


def test_template_with_only_a_guid_is_no_payee() -> None:
    code = jpqr(t26=[("00", "com.example.pay")], t27=[("00", "com.other"), ("01", "9")])
    assert payee_of(code) == ("com.other", "01=9")


def test_primitive_accounts_are_not_payees() -> None:
    code = jpqr(t26=None, t02="4000123456789012")
    assert payee_of(code) is None
    assert payees_of(code) == []
    assert payee_key(code) is None
