"""parse_mpm: one test (or a few) for every rule of the EMV MPM format we enforce."""

from __future__ import annotations

import pickle

import pytest

from clue_client.errors import ClueError
from clue_client.qr import MpmCode, MpmError, build_mpm, crc16_ccitt_false, parse_mpm

# GUID jp.or.paymentsjapan, then store ID parts 0000000000001 / 0001 / 000001 / 000001.
JPQR_26 = "0019jp.or.paymentsjapan011300000000000010204000103060000010406000001"
BASE: list[tuple[str, str]] = [
    ("00", "01"),
    ("01", "11"),
    ("26", JPQR_26),
    ("52", "5812"),
    ("53", "392"),
    ("58", "JP"),
    ("59", "CAFE"),
    ("60", "TOKYO"),
    ("61", "1066143"),
    ("64", "0002JA0103カフェ"),
]


def tlv(tag: str, value: str) -> str:
    return f"{tag}{len(value):02d}{value}"


def finish(body: str) -> str:
    """Append ``6304`` and the correct CRC, without any validation."""
    body += "6304"
    return body + f"{crc16_ccitt_false(body.encode('utf-8')):04X}"


def raw(fields: list[tuple[str, str]]) -> str:
    return finish("".join(tlv(t, v) for t, v in fields))


def replaced(tag: str, value: str | None) -> list[tuple[str, str]]:
    """BASE with ``tag`` set to ``value`` (appended if absent), or removed when None."""
    out = [(t, v) for t, v in BASE if t != tag]
    if value is not None:
        positions = [i for i, (t, _) in enumerate(BASE) if t == tag]
        out.insert(positions[0] if positions else len(out), (tag, value))
    return out


def error(payload: object) -> MpmError:
    with pytest.raises(MpmError) as info:
        parse_mpm(payload)  # type: ignore[arg-type]
    return info.value


def test_base_payload_is_valid() -> None:
    code = parse_mpm(raw(BASE))
    assert code.fields == tuple(BASE)
    assert code.is_static and not code.is_dynamic


# --- TLV structure ---------------------------------------------------------------


def test_lengths_count_code_points_not_bytes() -> None:
    code = parse_mpm(raw(BASE))
    assert code.language_template == (("00", "JA"), ("01", "カフェ"))
    # The same payload with the UTF-8 byte length (9) in place of the code-point
    # length (3) no longer parses.
    byte_counted = raw(BASE).replace("0103カフェ", "0109カフェ")
    err = error(finish(byte_counted[:-8]))
    assert (err.code, err.tag) == ("bad_template", "64")


def test_empty_payload_is_truncated() -> None:
    err = error("")
    assert (err.code, err.position) == ("truncated", 0)


@pytest.mark.parametrize("cut", [1, 3, 5, 40])
def test_cut_short_payload_is_truncated_or_misses_crc(cut: int) -> None:
    err = error(raw(BASE)[:-cut])
    assert err.code in {"truncated", "missing_field"}


def test_value_running_past_the_end_is_truncated() -> None:
    err = error("000201" + "5999ABC")
    assert err.code == "truncated"
    assert err.tag == "59"
    assert err.position == 6


def test_non_digit_id_is_bad_tag() -> None:
    err = error(finish("000201" + "5A04ABCD"))
    assert (err.code, err.position) == ("bad_tag", 6)


def test_unicode_digits_are_not_ascii_digits() -> None:
    # str.isdigit() is True for Arabic-Indic and full-width digits; EMV wants ASCII.
    assert error("٠٠٠٢٠١").code == "bad_tag"
    assert error(finish("０００２０１")).code == "bad_tag"
    err = error(finish("00٠2" + "01"))
    assert (err.code, err.tag, err.position) == ("bad_length", "00", 2)


def test_non_digit_length_is_bad_length() -> None:
    err = error(finish("000201" + "59x4CAFE"))
    assert (err.code, err.tag, err.position) == ("bad_length", "59", 8)


def test_zero_length_is_bad_length() -> None:
    err = error(finish("000201" + "5900"))
    assert (err.code, err.tag) == ("bad_length", "59")


# --- the CRC (ID 63) ------------------------------------------------------------


def test_crc_is_over_utf8_bytes_up_to_and_including_6304() -> None:
    payload = raw(BASE)
    body = payload[:-4]
    assert body.endswith("6304")
    assert int(payload[-4:], 16) == crc16_ccitt_false(body.encode("utf-8"))
    # The Shift_JIS bytes give another CRC: the parser must not accept that one.
    sjis_crc = crc16_ccitt_false(body.encode("shift_jis"))
    assert sjis_crc != int(payload[-4:], 16)
    err = error(body + f"{sjis_crc:04X}")
    assert (err.code, err.tag) == ("crc_mismatch", "63")
    assert err.position == len(body) - 4


def test_crc_is_read_case_insensitively_and_written_upper_case() -> None:
    payload = raw(BASE)
    assert payload[-4:] != payload[-4:].lower()  # the CRC has a letter in it
    lower = payload[:-4] + payload[-4:].lower()
    assert parse_mpm(lower) == parse_mpm(payload)
    assert parse_mpm(lower).to_payload() == payload
    assert parse_mpm(lower).crc == payload[-4:]


def test_crc_keeps_leading_zeros() -> None:
    # Found by trying merchant names until the CRC came out below 0x1000.
    payload = (
        "00020101021126680019jp.or.paymentsjapan011300000000000010204000103060000010406"
        "0000015204581253033925802JP5909CAFE 48226005TOKYO6107106614364130002JA0103カフェ"
        "6304000C"
    )
    code = parse_mpm(payload)
    assert code.crc == "000C"
    assert build_mpm(code) == payload
    err = error(payload[:-4] + "00C")
    assert err.code in {"truncated", "bad_crc_format"}


def test_crc_value_6304_is_found_by_position_not_by_search() -> None:
    # The CRC of this payload is itself 6304: a parser that searched for the last (or
    # first) "6304" would cut the payload in the wrong place.
    payload = (
        "00020101021126680019jp.or.paymentsjapan011300000000000010204000103060000010406"
        "0000015204581253033925802JP5910CAFE 110956005TOKYO6107106614364130002JA0103カフェ"
        "63046304"
    )
    code = parse_mpm(payload)
    assert code.crc == "6304"
    assert code.merchant_name == "CAFE 11095"


def test_6304_inside_a_value_is_just_text() -> None:
    code = parse_mpm(raw(replaced("59", "6304ABCD6304")))
    assert code.merchant_name == "6304ABCD6304"


@pytest.mark.parametrize("bad", ["12G4", "+123", " 123", "1_23", "0x12", "１２３４"])
def test_crc_must_be_four_hex_digits(bad: str) -> None:
    # int(x, 16) would accept several of these ("+123", " 123", "1_23", "0x12").
    err = error(raw(BASE)[:-4] + bad)
    assert (err.code, err.tag) == ("bad_crc_format", "63")


def test_crc_with_wrong_length_is_bad_crc_format() -> None:
    body = "".join(tlv(t, v) for t, v in BASE)
    assert error(body + "6305ABCDE").code == "bad_crc_format"
    assert error(body + "6303ABC").code == "bad_crc_format"


def test_wrong_crc_is_crc_mismatch() -> None:
    payload = raw(BASE)
    wrong = f"{(int(payload[-4:], 16) + 1) & 0xFFFF:04X}"
    err = error(payload[:-4] + wrong)
    assert err.code == "crc_mismatch"
    assert "63" in str(err) and str(len(payload) - 8) in str(err)


def test_anything_after_the_crc_is_crc_not_last() -> None:
    payload = raw(BASE)
    err = error(payload + "0000")
    assert (err.code, err.tag, err.position) == ("crc_not_last", "63", len(payload))


def test_crc_in_the_middle_is_crc_not_last() -> None:
    head = finish("".join(tlv(t, v) for t, v in BASE[:3]))  # a correct CRC over the head
    err = error(head + "".join(tlv(t, v) for t, v in BASE[3:]))
    assert err.code == "crc_not_last"


def test_missing_crc_is_missing_field() -> None:
    body = "".join(tlv(t, v) for t, v in BASE)
    err = error(body)
    assert (err.code, err.tag, err.position) == ("missing_field", "63", len(body))


def test_only_a_crc_is_missing_payload_format_indicator() -> None:
    err = error(finish(""))
    assert (err.code, err.tag) == ("missing_field", "00")


# --- ID 00 and 01 ---------------------------------------------------------------


def test_id_00_must_come_first() -> None:
    fields = [BASE[1], BASE[0], *BASE[2:]]
    err = error(raw(fields))
    assert (err.code, err.tag, err.position) == ("not_first", "00", 0)


@pytest.mark.parametrize("value", ["03", "1", "00", "10"])
def test_id_00_must_be_01(value: str) -> None:
    err = error(raw(replaced("00", value)))
    assert (err.code, err.tag, err.position) == ("bad_format", "00", 0)


def test_id_00_02_is_duitnows_and_only_a_warning() -> None:
    code = parse_mpm(raw(replaced("00", "02")))
    assert [(w.code, w.tag) for w in code.warnings] == [("payload_format_02", "00")]
    assert "DuitNow" in code.warnings[0].detail


def test_a_code_that_follows_emv_has_no_warnings() -> None:
    assert parse_mpm(raw(BASE)).warnings == ()


def test_no_point_of_initiation_is_neither_static_nor_dynamic_and_a_warning() -> None:
    code = parse_mpm(raw(replaced("01", None)))
    assert code.point_of_initiation is None
    assert not code.is_static and not code.is_dynamic
    assert [w.code for w in code.warnings] == ["no_point_of_initiation"]


@pytest.mark.parametrize(("value", "static"), [("11", True), ("12", False)])
def test_point_of_initiation(value: str, static: bool) -> None:
    code = parse_mpm(raw(replaced("01", value)))
    assert code.is_static is static
    assert code.is_dynamic is (not static)
    assert code.point_of_initiation == value


def test_point_of_initiation_may_be_absent() -> None:
    code = parse_mpm(raw(replaced("01", None)))
    assert not code.is_static and not code.is_dynamic
    assert code.point_of_initiation is None


@pytest.mark.parametrize("value", ["10", "13", "1", "AB"])
def test_point_of_initiation_other_values_rejected(value: str) -> None:
    err = error(raw(replaced("01", value)))
    assert (err.code, err.tag) == ("bad_format", "01")


def test_duplicate_top_level_tag_is_rejected() -> None:
    payload = raw([*BASE, ("59", "OTHER")])
    err = error(payload)
    assert (err.code, err.tag) == ("duplicate_tag", "59")
    assert err.position == payload.rindex("5905OTHER")


@pytest.mark.parametrize("tag", ["65", "70", "79"])
def test_reserved_ids_are_rejected(tag: str) -> None:
    err = error(raw([*BASE, (tag, "X")]))
    assert (err.code, err.tag) == ("reserved_tag", tag)


# --- templates ------------------------------------------------------------------


def test_primitive_merchant_accounts_are_not_parsed_as_tlv() -> None:
    code = parse_mpm(raw([*BASE, ("02", "4000123456789012"), ("15", "?!")]))
    assert code.merchant_accounts["02"] == "4000123456789012"
    assert code.merchant_accounts["15"] == "?!"
    assert code.merchant_accounts["26"][0] == ("00", "jp.or.paymentsjapan")


@pytest.mark.parametrize("tag", ["26", "51", "62", "64", "80", "99"])
def test_template_with_broken_contents_is_bad_template(tag: str) -> None:
    fields = replaced(tag, "00XXjunk")
    err = error(raw(fields))
    assert (err.code, err.tag) == ("bad_template", tag)
    # The position is absolute: it points into the template, at the broken length.
    payload = raw(fields)
    assert err.position is not None
    assert payload[err.position : err.position + 2] == "XX"


def test_merchant_account_template_needs_a_guid() -> None:
    err = error(raw(replaced("26", "0113000000000000102040001")))
    assert (err.code, err.tag) == ("missing_field", "26.00")


def test_duplicate_sub_id_is_rejected() -> None:
    err = error(raw(replaced("26", "0003abc0103def0103ghi")))
    assert (err.code, err.tag) == ("duplicate_tag", "26.01")


def test_unreserved_and_additional_data_templates_are_parsed() -> None:
    code = parse_mpm(raw([*BASE, ("62", "0703A010503***"), ("91", "0004TEST0102XY")]))
    assert code.additional_data == (("07", "A01"), ("05", "***"))
    assert code.unreserved_templates == {"91": (("00", "TEST"), ("01", "XY"))}


def test_language_template_needs_language_and_name() -> None:
    assert error(raw(replaced("64", "0002JA"))).tag == "64.01"
    assert error(raw(replaced("64", "0103カフェ"))).tag == "64.00"
    err = error(raw(replaced("64", "0003JPN0103カフェ")))
    assert (err.code, err.tag) == ("bad_format", "64.00")
    err = error(raw(replaced("64", "0002JA0126" + "あ" * 26)))
    assert (err.code, err.tag) == ("bad_format", "64.01")
    assert parse_mpm(raw(replaced("64", "0002JA0125" + "あ" * 25 + "0202東京")))


# --- mandatory fields and their formats -----------------------------------------


@pytest.mark.parametrize("tag", ["53", "58"])
def test_mandatory_fields(tag: str) -> None:
    err = error(raw(replaced(tag, None)))
    assert (err.code, err.tag, err.position) == ("missing_field", tag, None)


@pytest.mark.parametrize(("tag", "warning"), [
    ("52", "no_merchant_category"), ("59", "no_merchant_name"), ("60", "no_merchant_city"),
])
def test_fields_national_schemes_leave_out_are_warnings(tag: str, warning: str) -> None:
    # EMV makes them mandatory, but published PromptPay / VietQR / QRIS codes lack them:
    # the code still parses (CRC and structure intact) and says what it lacks.
    code = parse_mpm(raw(replaced(tag, None)))
    assert code.get(tag) is None
    assert [(w.code, w.tag) for w in code.warnings] == [(warning, tag)]
    assert build_mpm(code) == raw(replaced(tag, None))


def test_warnings_are_listed_in_id_order() -> None:
    fields = [("00", "02"), *[f for f in BASE[1:] if f[0] not in ("01", "52", "59", "60")]]
    assert [w.tag for w in parse_mpm(raw(fields)).warnings] == ["00", "01", "52", "59", "60"]


@pytest.mark.parametrize("tag", ["52", "59", "60"])
def test_lenient_fields_are_still_checked_when_present(tag: str) -> None:
    bad = {"52": "58", "59": "N" * 26, "60": "C" * 16}[tag]
    assert error(raw(replaced(tag, bad))).code == "bad_format"


def test_at_least_one_merchant_account() -> None:
    err = error(raw(replaced("26", None)))
    assert err.code == "missing_field"
    assert "02-51" in err.detail


@pytest.mark.parametrize("value", ["581", "58123", "58a2", "５８１２"])
def test_merchant_category_code_is_four_digits(value: str) -> None:
    assert error(raw(replaced("52", value))).tag == "52"


@pytest.mark.parametrize("value", ["39", "3920", "JPY"])
def test_currency_is_three_digits(value: str) -> None:
    err = error(raw(replaced("53", value)))
    assert (err.code, err.tag) == ("bad_format", "53")


@pytest.mark.parametrize("value", ["1", "10", "98.73", "0.50", "10.", ".5", "9999999999.99"])
def test_valid_amounts(value: str) -> None:
    assert parse_mpm(raw([*BASE, ("54", value)])).amount == value


@pytest.mark.parametrize(
    "value",
    ["0", "0.00", ".", "-1", "+1", "1e3", "1.2.3", "1,000", " 1", "99999999999999", "١٠"],
)
def test_invalid_amounts(value: str) -> None:
    err = error(raw([*BASE, ("54", value)]))
    assert (err.code, err.tag) == ("bad_format", "54")


def test_amount_absent_means_the_payer_enters_it() -> None:
    assert parse_mpm(raw(BASE)).amount is None


def test_tip_prompt_needs_no_fee() -> None:
    assert parse_mpm(raw([*BASE, ("55", "01")])).tip_indicator == "01"


def test_fixed_fee_needs_56() -> None:
    code = parse_mpm(raw([*BASE, ("55", "02"), ("56", "100")]))
    assert code.convenience_fee_fixed == "100"
    err = error(raw([*BASE, ("55", "02")]))
    assert (err.code, err.tag) == ("missing_field", "56")
    err = error(raw([*BASE, ("55", "02"), ("56", "1x")]))
    assert (err.code, err.tag) == ("bad_format", "56")


def test_percentage_fee_needs_57() -> None:
    code = parse_mpm(raw([*BASE, ("55", "03"), ("57", "3.00")]))
    assert code.convenience_fee_percentage == "3.00"
    err = error(raw([*BASE, ("55", "03")]))
    assert (err.code, err.tag) == ("missing_field", "57")
    for bad in ("0", "100", "150.0", "abc"):
        err = error(raw([*BASE, ("55", "03"), ("57", bad)]))
        assert (err.code, err.tag) == ("bad_format", "57")


@pytest.mark.parametrize(
    "extra",
    [
        [("56", "100")],
        [("57", "3")],
        [("55", "01"), ("56", "100")],
        [("55", "03"), ("57", "3"), ("56", "1")],
        [("55", "02"), ("56", "1"), ("57", "3")],
    ],
)
def test_fee_without_its_indicator_is_unexpected(extra: list[tuple[str, str]]) -> None:
    assert error(raw([*BASE, *extra])).code == "unexpected_field"


@pytest.mark.parametrize("value", ["04", "00", "1"])
def test_tip_indicator_values(value: str) -> None:
    err = error(raw([*BASE, ("55", value)]))
    assert (err.code, err.tag) == ("bad_format", "55")


@pytest.mark.parametrize("value", ["jp", "J", "JPN", "J1", "ＪＰ"])
def test_country_is_two_upper_case_letters(value: str) -> None:
    err = error(raw(replaced("58", value)))
    assert (err.code, err.tag) == ("bad_format", "58")


@pytest.mark.parametrize(("tag", "limit"), [("59", 25), ("60", 15), ("61", 10)])
def test_name_city_and_postal_code_lengths(tag: str, limit: int) -> None:
    assert parse_mpm(raw(replaced(tag, "ア" * limit))).get(tag) == "ア" * limit
    err = error(raw(replaced(tag, "ア" * (limit + 1))))
    assert (err.code, err.tag) == ("bad_format", tag)


# --- the payload as a whole -----------------------------------------------------


def padded_to(length: int) -> str:
    """A valid payload exactly ``length`` code points long, padded with IDs 02, 03, ..."""
    head = "".join(tlv(t, v) for t, v in BASE)
    room = length - len(head) - 8  # 8: "6304" and the CRC
    parts = []
    tag = 2
    while room > 0:
        size = min(room, 103)  # a data object is 5..103 code points
        if 0 < room - size < 5:
            size = room - 5
        parts.append(tlv(f"{tag:02d}", "x" * (size - 4)))
        room -= size
        tag += 1
    return finish(head + "".join(parts))


def test_512_code_points_is_the_limit() -> None:
    at_limit = padded_to(512)
    assert len(at_limit) == 512
    parse_mpm(at_limit)
    over = padded_to(513)
    assert len(over) == 513
    err = error(over)
    assert (err.code, err.position) == ("too_long", 512)


def test_limit_counts_code_points_not_bytes() -> None:
    fields = [*replaced("59", "あ" * 25), ("02", "あ" * 99), ("03", "あ" * 99)]
    payload = raw(fields)
    assert len(payload) <= 512 < len(payload.encode("utf-8"))
    assert parse_mpm(payload).merchant_name == "あ" * 25


@pytest.mark.parametrize("value", [None, b"000201", 123, ["000201"]])
def test_not_a_string(value: object) -> None:
    assert error(value).code == "not_a_string"


@pytest.mark.parametrize("text", ["\x00", "\n", "\x7f", "\x85", "\ud800", "\udfff"])
def test_control_characters_and_lone_surrogates(text: str) -> None:
    body = "".join(tlv(t, v) for t, v in replaced("59", "A" + text + "B"))
    payload = body + "6304FFFF"  # the CRC cannot even be computed over a lone surrogate
    err = error(payload)
    assert (err.code, err.position) == ("bad_char", payload.index(text))


def test_trailing_newline_is_an_error() -> None:
    assert error(raw(BASE) + "\n").code == "bad_char"


# --- the error itself -----------------------------------------------------------


def test_error_names_code_tag_and_position() -> None:
    err = error(raw(replaced("52", "58a2")))
    message = str(err)
    assert message.startswith("bad_format: ")
    assert "tag 52" in message
    assert f"position {err.position}" in message
    assert isinstance(err, ClueError)
    assert not isinstance(err, (ValueError, IndexError))


def test_error_pickles() -> None:
    err = error(raw(replaced("52", "58a2")))
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.code, copy.tag, copy.position, str(copy)) == (
        err.code,
        err.tag,
        err.position,
        str(err),
    )


def test_error_message_cuts_long_hostile_values() -> None:
    err = error(raw(replaced("52", "X" * 90)))
    assert len(str(err)) < 200


# --- MpmCode --------------------------------------------------------------------


def test_properties() -> None:
    code = parse_mpm(raw([*BASE, ("54", "1200"), ("62", "0703A01")]))
    assert code.payload_format_indicator == "01"
    assert code.merchant_category_code == "5812"
    assert code.currency == "392"
    assert code.amount == "1200"
    assert code.country == "JP"
    assert code.merchant_name == "CAFE"
    assert code.merchant_city == "TOKYO"
    assert code.postal_code == "1066143"
    assert code.additional_data == (("07", "A01"),)
    assert code.get("99") is None
    assert code.template("62") == (("07", "A01"),)
    assert code.template("80") is None


def test_code_is_frozen_and_hashable() -> None:
    code = parse_mpm(raw(BASE))
    with pytest.raises(AttributeError):
        code.fields = ()  # type: ignore[misc]
    assert hash(code) == hash(MpmCode(fields=tuple(BASE)))


# --- build_mpm ------------------------------------------------------------------


def test_build_puts_00_first_when_missing_and_computes_the_crc() -> None:
    payload = build_mpm([(t, v) for t, v in BASE if t != "00"])
    assert payload == raw(BASE)


def test_build_encodes_templates_from_pairs() -> None:
    fields = replaced("64", None)
    payload = build_mpm([*fields, ("64", [("00", "JA"), ("01", "カフェ")])])
    assert parse_mpm(payload).language_template == (("00", "JA"), ("01", "カフェ"))


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ([*BASE, ("63", "ABCD")], "bad_tag"),
        ([*BASE, ("6", "x")], "bad_tag"),
        ([*BASE, ("02", "")], "bad_length"),
        ([*BASE, ("02", "x" * 100)], "bad_length"),
        ([*BASE, ("91", [("0", "x")])], "bad_tag"),
        ([*BASE, ("91", [("00", "x" * 96)])], "bad_length"),
        ([*BASE, ("02", "a\ud800")], "bad_char"),
        (replaced("59", "TOO LONG A NAME FOR ID 59 X"), "bad_format"),
        ([*BASE, ("x",)], "bad_format"),
        ("000201", "bad_format"),
    ],
)
def test_build_rejects_what_parse_would(fields: object, code: str) -> None:
    with pytest.raises(MpmError) as info:
        build_mpm(fields)  # type: ignore[arg-type]
    assert info.value.code == code
