"""Published merchant-presented payloads, parsed with their published CRCs.

Every payload here was copied from the source named above it, and its CRC was
checked independently (``crc16_ccitt_false`` of the UTF-8 bytes before the last four
characters) before it went in. Several national schemes leave out fields that EMV
makes mandatory (52 MCC, 59 name, 60 city, 01 point of initiation) or use another
payload format indicator; those codes are genuine, so they parse, and their
``warnings`` say what they lack, which the tests pin down.
"""

from __future__ import annotations

import pytest

from clue_client.decisions.qrscan import read_qr
from clue_client.qr import (
    MpmError,
    build_mpm,
    crc16_ccitt_false,
    jpqr_view,
    parse_mpm,
    payee_key,
    payee_of,
    payees_of,
)

# A static JPQR sticker for "メルペイ カフェ": the TestDecode payload of Mercari's
# open-source EMV QR library, github.com/mercari/go-emv-code, mpm/jpqr/jpqr_test.go. Its
# ID order is not canonical (60 before 01, 52/58/61 after 64) and 59/60 are "xxx".
# docs/sticker-swaps.md uses it as the sample payload of the README tour.
JPQR_MERPAY = (
    "0002016003xxx01021129300012D156000000000510A93FO3230Q31280012D15600000001030812345678"
    "26680019jp.or.paymentsjapan01130000000000001020400010306000001040600000153033925903xxx"
    "64180002JA0108メルペイ カフェ520441115802JP610710661436304DEE9"
)

# EMVCo, EMV QRCPS Merchant-Presented Mode v1.0 (July 2017), the sample payload in the
# annex, CRC A13A; also in github.com/mercari/go-emv-code, mpm/jpqr/jpqr_test.go. (The
# JPQR example above reuses its IDs 29 and 31.)
EMVCO_SAMPLE = (
    "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802"
    "CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412"
    "340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A"
)

# Banco Central do Brasil, "Manual de Padrões para Iniciação do Pix" (BR Code), the
# static Pix example with a random key, CRC 1D3D.
PIX_BCB = (
    "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR"
    "5913Fulano de Tal6008BRASILIA62070503***63041D3D"
)

# Singapore PayNow: the Woodbridge Hospital Charity Fund code (UEN 200002150HWCF)
# published by IMH, as used in the tests of github.com/daffodilistic/pyPayNowSg.
PAYNOW_IMH = (
    "00020101021126400009SG.PAYNOW010120213200002150HWCF030115204000053037025802SG5923"
    "NATIONAL HEALTHCARE GRO6009Singapore6304DF3F"
)

# Singapore SGQR: a multi-network sticker (UnionPay in ID 15, REMOPAY, DASH, WeChat Pay,
# EZ-Link, and the SGQR ID template in 51) decoded in a public GitHub SGQR-parsing script.
SGQR_MULTI = (
    "0002010102111531480007024800070280007025499435326590011COM.REMOPAY0110200000033802040000"
    "030400010404000099020127330015SG.COM.DASH.WWW0110100210041328650017COM.QQ.WEIXIN.PAY0110"
    "100000033702040000030400010404000099020129720013sg.com.ezlink0114FMP-10000003380204SGQR"
    "0317NPL-0001-0000000004046AF951800007SG.SGQR01121809072DDA29020701.000103060586020402000502"
    "00060400000708201809155204000053037025802SG5909hisenyuan6009Singapore63044F90"
)

# India Bharat QR (UPI in EMV, GUID A000000524): the example string in Razorpay's
# BharatQR / QR Codes API documentation (dynamic, amount 1.10).
BHARAT_RAZORPAY = (
    "000201010212021643926300000000850415540461000000008061661005900000000890827YESB0CMSNOC222"
    "333004882700126430010A0000005240117razorpaybqr@icici02041.1027350010A0000005240117RZPGT8"
    "ildsFTgS5Sp52047531530335654041.105802IN5906zxcbmn6005Delhi610611008562300514GT8ildsFTgS5Sp"
    "070838R004506304B6A9"
)

# India Bharat QR with its CRC written in lower case ("e9fc"): a static merchant code in
# a GST e-invoice (B2C QR) sample in a public GitHub C# project.
BHARAT_LOWER_CRC = (
    "000201010211021644038499331959060415522024099331959061661000309933195920825HDFC00000015010"
    "030812820026560010A0000005240138centralwarehousingco.99331959@hdfcbank27430010A00000052401"
    "25STQ200318122305804I0401085204939953033565802IN5923CENTRAL WAREHOUSING NEW6009New Delhi61"
    "0611001662410525STQ200318122305804I0401080708993319596304e9fc"
)

# A static JPQR sticker for "JPQRMPM本舗食堂", the test payload of
# github.com/kenmaz/JPQRReader, JPQRReaderTests/MPMDecoderTests.swift (an iOS JPQR reader
# shown at iOSDC 2019; its test only prints the result). Published with a CRC (6D60) that
# does not match its content (the UTF-8 bytes give 0F92): a scanner must refuse it.
JPQR_KENMAZ_BAD_CRC = (
    "00020164210002JA0111JPQRMPM本舗食堂53033925903xxx6003xxx610710600325802JP010211266800"
    "19jp.or.paymentsjapan0113000000000000102040001030600000104060000015204412163046D60"
)

# Thailand PromptPay (GUID A000000677010111), from the tests of the widely used generator
# github.com/dtinth/promptpay-qr, index.test.js: "Local phone number" 0801234567 (static)
# and "Amount" 4.22 THB to 000-000-0000 (dynamic). PromptPay personal codes carry no 52,
# 59 or 60.
PROMPTPAY_STATIC = "00020101021129370016A000000677010111011300668012345675802TH530376463046197"
PROMPTPAY_AMOUNT = (
    "00020101021229370016A000000677010111011300660000000005802TH530376454044.226304E469"
)

# Vietnam VietQR (NAPAS, GUID A000000727), from the README (and ExampleGenerate in
# vietqr_test.go) of github.com/subiz/vietqr: 120,000 VND to VietinBank account
# 0011001932418 with the note "ung ho lu lut". No 52, 59 or 60.
VIETQR_SUBIZ = (
    "00020101021238570010A00000072701270006970415011300110019324180208QRIBFTTA5303704540612000058"
    "02VN62170813ung ho lu lut6304C15C"
)

# Indonesia QRIS (Shopee, dynamic: 144,000 IDR), the decode example in the README of
# github.com/sunary/qris. No 52.
QRIS_SUNARY = (
    "00020101021226380016ID.CO.SHOPEE.WWW010201020815863724530336054061440005802ID5921PT. SHOPP"
    "EE INDONESIA6007JAKARTA62180814gen by go-qris63049635"
)

# Malaysia DuitNow (AID A0000006150001), "Example 1: Static Retail POS" of PayNet's
# DuitNow QR specification, docs.developer.paynet.my/docs/duitNow-QR/integration/
# QR-generation-specification/merchant-presented-mode/example. DuitNow's data-object
# table (V1.5) defines the payload format indicator as version "02" where EMV says "01".
DUITNOW_SAMPLE = (
    "00020201021126410014A000000615000101065016640209123456789520499995303458540510.005802MY5909"
    "QRCSDNBHD6005BANGI6304343F"
)

ALL = [
    JPQR_MERPAY,
    EMVCO_SAMPLE,
    PIX_BCB,
    PAYNOW_IMH,
    SGQR_MULTI,
    BHARAT_RAZORPAY,
    BHARAT_LOWER_CRC,
    PROMPTPAY_STATIC,
    PROMPTPAY_AMOUNT,
    VIETQR_SUBIZ,
    QRIS_SUNARY,
    DUITNOW_SAMPLE,
]


@pytest.mark.parametrize("payload", ALL)
def test_published_crc_verifies(payload: str) -> None:
    body, crc = payload[:-4], payload[-4:]
    assert body.endswith("6304")
    assert crc16_ccitt_false(body.encode("utf-8")) == int(crc, 16)


@pytest.mark.parametrize("payload", ALL)
def test_published_codes_parse_and_rebuild(payload: str) -> None:
    code = parse_mpm(payload)
    # The CRC comes back upper-case; everything else byte for byte, in the same order.
    assert build_mpm(code) == payload[:-4] + payload[-4:].upper()
    assert parse_mpm(build_mpm(code)) == code


def test_jpqr_known_answer() -> None:
    code = parse_mpm(JPQR_MERPAY)
    assert code.is_static
    assert code.crc == "DEE9"
    assert [tag for tag, _ in code.fields] == [
        "00", "60", "01", "29", "31", "26", "53", "59", "64", "52", "58", "61",
    ]  # fmt: skip
    assert code.merchant_name == "xxx"
    assert code.merchant_city == "xxx"
    assert code.language_template == (("00", "JA"), ("01", "メルペイ カフェ"))
    info = jpqr_view(code, strict=True)
    assert info is not None
    assert (info.company, info.brand, info.store, info.terminal) == (
        "0000000000001",
        "0001",
        "000001",
        "000001",
    )
    assert info.store_id == "00000000000010001000001000001"
    assert len(info.store_id) == 29
    assert info.template_tag == "26"
    assert info.merchant_name_ja == "メルペイ カフェ"
    assert info.language == "JA"
    assert info.postal_code == "1066143"
    assert info.is_static
    # IDs 29 and 31 come first in the payload, but the payee is read in ID order.
    assert payee_of(code) == ("jp.or.paymentsjapan", "00000000000010001000001000001")
    assert payees_of(code)[1:] == [
        ("d15600000000", "05=A93FO3230Q"),
        ("d15600000001", "03=12345678"),
    ]
    assert payee_key(code) == "jp.or.paymentsjapan|00000000000010001000001000001"


def test_jpqr_known_answer_crc_covers_the_utf8_name() -> None:
    # "メルペイ カフェ" is 8 code points (the length in 64.01 says 08) but 22 UTF-8 bytes;
    # DEE9 is the CRC of the UTF-8 bytes, not of Shift_JIS or UTF-16.
    body = JPQR_MERPAY[:-4]
    assert len("メルペイ カフェ") == 8
    assert len("メルペイ カフェ".encode()) == 22
    assert crc16_ccitt_false(body.encode("utf-8")) == 0xDEE9
    for other in ("shift_jis", "euc_jp", "utf-16-be"):
        assert crc16_ccitt_false(body.encode(other)) != 0xDEE9


def test_emvco_sample() -> None:
    code = parse_mpm(EMVCO_SAMPLE)
    assert code.is_dynamic
    assert (code.currency, code.amount, code.country) == ("156", "23.72", "CN")
    assert (code.merchant_name, code.merchant_city) == ("BEST TRANSPORT", "BEIJING")
    assert code.tip_indicator == "01"
    assert code.language_template == (("00", "ZH"), ("01", "最佳运输"), ("02", "北京"))
    assert code.additional_data == (
        ("03", "1234"),
        ("06", "***"),
        ("07", "A6008667"),
        ("09", "ME"),
    )
    assert code.unreserved_templates == {"91": (("00", "A011223344998877"), ("07", "12345678"))}
    assert code.merchant_accounts == {
        "29": (("00", "D15600000000"), ("05", "A93FO3230Q")),
        "31": (("00", "D15600000001"), ("03", "12345678")),
    }
    assert jpqr_view(code) is None
    assert payee_of(code) == ("d15600000000", "05=A93FO3230Q")


def test_pix_bcb_manual() -> None:
    code = parse_mpm(PIX_BCB)
    assert code.point_of_initiation is None  # Pix leaves 01 out of static codes
    assert not code.is_static and not code.is_dynamic
    assert (code.merchant_category_code, code.currency, code.country) == ("0000", "986", "BR")
    assert code.merchant_name == "Fulano de Tal"
    assert code.additional_data == (("05", "***"),)
    assert payee_of(code) == ("br.gov.bcb.pix", "01=123e4567-e12b-12d1-a456-426655440000")


def test_paynow() -> None:
    code = parse_mpm(PAYNOW_IMH)
    assert code.is_static
    # The GUID is written upper-case in the payload; the payee GUID is lower-cased.
    assert payee_of(code) == ("sg.paynow", "01=2;02=200002150HWCF;03=1")


def test_sgqr_multi_network() -> None:
    code = parse_mpm(SGQR_MULTI)
    assert len(SGQR_MULTI) == 431
    assert code.merchant_accounts["15"] == "4800070248000702800070254994353"
    assert [guid for guid, _ in payees_of(code)] == [
        "com.remopay",
        "sg.com.dash.www",
        "com.qq.weixin.pay",
        "sg.com.ezlink",
        "sg.sgqr",
    ]
    assert payee_of(code) == ("com.remopay", "01=2000000338;02=0000;03=0001;04=0000;99=01")


def test_bharat_qr() -> None:
    code = parse_mpm(BHARAT_RAZORPAY)
    assert code.is_dynamic
    assert code.amount == "1.10"
    assert code.merchant_accounts["08"] == "YESB0CMSNOC2223330048827001"
    assert payee_of(code) == ("a000000524", "01=razorpaybqr@icici;02=1.10")


def test_lower_case_published_crc() -> None:
    code = parse_mpm(BHARAT_LOWER_CRC)
    assert code.crc == "E9FC"
    assert code.merchant_name == "CENTRAL WAREHOUSING NEW"


# What each genuine code lacks, by the parser's stable warning codes, and what a scan
# says of it: never invalid_payload, never "dynamic" for a code that does not say so.
WARNED = [
    (JPQR_MERPAY, [], set()),
    (EMVCO_SAMPLE, [], {"not_static", "not_jpqr"}),
    (PIX_BCB, ["no_point_of_initiation"], {"not_jpqr"}),
    (PROMPTPAY_STATIC, ["no_merchant_category", "no_merchant_name", "no_merchant_city"],
     {"not_jpqr"}),
    (PROMPTPAY_AMOUNT, ["no_merchant_category", "no_merchant_name", "no_merchant_city"],
     {"not_static", "not_jpqr"}),
    (VIETQR_SUBIZ, ["no_merchant_category", "no_merchant_name", "no_merchant_city"],
     {"not_static", "not_jpqr"}),
    (QRIS_SUNARY, ["no_merchant_category"], {"not_static", "not_jpqr"}),
    (DUITNOW_SAMPLE, ["payload_format_02"], {"not_jpqr"}),
]


@pytest.mark.parametrize(("payload", "warnings", "flags"), WARNED)
def test_genuine_national_codes_parse_with_warnings(payload: str, warnings: list[str],
                                                    flags: set[str]) -> None:
    code = parse_mpm(payload)
    assert [w.code for w in code.warnings] == warnings
    scan = read_qr(payload)
    assert scan.flags == flags and scan.error_code is None
    assert list(scan.warnings) == warnings
    assert scan.payees  # every one of them names a payee to look up


def test_promptpay_payee() -> None:
    assert payee_of(parse_mpm(PROMPTPAY_STATIC)) == ("a000000677010111", "01=0066801234567")
    assert parse_mpm(PROMPTPAY_AMOUNT).amount == "4.22"


def test_vietqr_payee_keeps_the_nested_napas_data() -> None:
    code = parse_mpm(VIETQR_SUBIZ)
    assert code.amount == "120000" and code.currency == "704"
    assert payee_of(code) == ("a000000727", "01=000697041501130011001932418;02=QRIBFTTA")


def test_qris_payee() -> None:
    assert payee_of(parse_mpm(QRIS_SUNARY)) == ("id.co.shopee.www", "01=01;02=15863724")


def test_duitnow_payload_format_indicator_02() -> None:
    code = parse_mpm(DUITNOW_SAMPLE)
    assert code.payload_format_indicator == "02" and code.is_static
    assert [(w.code, w.tag) for w in code.warnings] == [("payload_format_02", "00")]
    assert payee_of(code) == ("a0000006150001", "01=501664;02=123456789")


def test_a_published_code_with_a_wrong_crc_is_refused() -> None:
    with pytest.raises(MpmError) as info:
        parse_mpm(JPQR_KENMAZ_BAD_CRC)
    assert (info.value.code, info.value.tag) == ("crc_mismatch", "63")
    assert read_qr(JPQR_KENMAZ_BAD_CRC).flags == {"invalid_payload"}
