"""EMV QRCPS merchant-presented mode (MPM) payloads: parse, validate and build.

Written by hand on purpose: there is no well-kept Python EMV-QR library worth
depending on (the ones on PyPI are small, unmaintained, count lengths in bytes,
find the CRC by searching for "6304", or let IndexError escape), and the format
is small enough to implement against the specification in one module.

Format (EMV QRCPS MPM v1.1 §4, as profiled by the JPQR guideline part 1 §2.1):

* A payload is a run of data objects ``ID LL VALUE``: a two-digit ID, a two-digit
  length ``01``–``99`` and the value. Lengths count Unicode code points, not UTF-8
  bytes (the Japanese merchant name in ID 64 is 8 characters but 24 bytes).
* ID 00 (payload format indicator, ``01``) comes first; ID 63 (CRC) comes last and
  is found by walking the data objects, never by searching for ``6304`` (any value,
  the CRC included, may contain that text).
* The CRC is CRC-16/CCITT-FALSE over the UTF-8 bytes of everything up to and
  including ``6304``; four hex digits, read case-insensitively, written upper-case.
* IDs 02–25 are primitive merchant-account values (card networks); 26–51
  (merchant-account templates), 62 (additional data), 64 (merchant information in
  another language) and 80–99 (unreserved) are templates holding data objects of
  their own with two-digit sub-IDs; 65–79 are reserved for future use and rejected.

Strict and lenient. The structure (data objects, lengths, the CRC, templates, field
formats) is checked strictly: a payload that breaks it is refused with an
:class:`MpmError`. A few EMV rules that national schemes do not follow are not: the
payload format indicator ``02`` (DuitNow), no point of initiation method (ID 01, as in
Brazil's Pix), no merchant category code, name or city (IDs 52, 59, 60: Thai
PromptPay, VietQR, QRIS). Such a code parses and lists what it lacks in
``MpmCode.warnings``, so that a wallet does not call a genuine foreign code forged.

Example::

    >>> code = parse_mpm(build_mpm([
    ...     ("01", "11"),
    ...     ("26", [("00", "jp.or.paymentsjapan"), ("01", "0000000000001"),
    ...             ("02", "0001"), ("03", "000001"), ("04", "000001")]),
    ...     ("52", "5812"), ("53", "392"), ("58", "JP"),
    ...     ("59", "CAFE"), ("60", "TOKYO"), ("61", "1066143"),
    ...     ("64", [("00", "JA"), ("01", "カフェ")]),
    ... ]))
    >>> code.is_static, code.merchant_name, code.crc
    (True, 'CAFE', '30CA')
    >>> parse_mpm(code.to_payload()) == code
    True
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TypeAlias

from clue_client.qr.crc import crc16_ccitt_false
from clue_client.qr.errors import MpmError

__all__ = [
    "MAX_PAYLOAD_LENGTH",
    "WARNINGS",
    "FieldValue",
    "MpmCode",
    "MpmWarning",
    "SubFields",
    "build_mpm",
    "parse_mpm",
    "sub_field",
]

MAX_PAYLOAD_LENGTH = 512
"""EMV: "The total length of the payload shall not exceed 512 characters" (code points)."""

SubFields: TypeAlias = tuple[tuple[str, str], ...]
"""The data objects inside a template, ``((sub_id, value), ...)`` in payload order."""

FieldValue: TypeAlias = str | Iterable[tuple[str, str]]
"""What ``build_mpm`` takes for a value: the raw string, or a template's sub-fields."""

_CRC_TAG = "63"
_CRC_HEADER = "6304"
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LETTERS = _UPPER | frozenset("abcdefghijklmnopqrstuvwxyz")
# C0/C1 control characters and lone surrogates: never part of a scanned code, and a
# lone surrogate cannot even be UTF-8 encoded for the CRC.
_BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_MANDATORY = ("53", "58")
# EMV makes these mandatory too, but published national codes leave them out (or, for
# ID 00, write another value): accepted, and reported in MpmCode.warnings.
WARNINGS: dict[str, tuple[str, str]] = {
    "payload_format_02": (
        "00", "payload format indicator (ID 00) is '02', as DuitNow (Malaysia) writes it; "
              "EMV says '01'"),
    "no_point_of_initiation": (
        "01", "no point of initiation method (ID 01): the code does not say whether it is "
              "static (a printed sticker) or dynamic (made for one payment)"),
    "no_merchant_category": (
        "52", "no merchant category code (ID 52), as Thai PromptPay, VietQR and QRIS codes "
              "are published"),
    "no_merchant_name": ("59", "no merchant name (ID 59)"),
    "no_merchant_city": ("60", "no merchant city (ID 60)"),
}
"""Warning code -> (tag, description) for every deviation :func:`parse_mpm` accepts."""
_ABSENT_WARNINGS = (("01", "no_point_of_initiation"), ("52", "no_merchant_category"),
                    ("59", "no_merchant_name"), ("60", "no_merchant_city"))
_MAX_LENGTH = {"59": 25, "60": 15, "61": 10, "54": 13, "56": 13, "57": 5}


@dataclass(frozen=True, slots=True)
class MpmWarning:
    """A deviation from EMV MPM that real issuers ship; the code is still read."""

    code: str
    """Stable: one of the keys of :data:`WARNINGS` (``no_merchant_category``, ...)."""
    tag: str
    """The ID concerned (``"52"``)."""
    detail: str
    """A human sentence saying what is missing or different."""


def _warning(code: str) -> MpmWarning:
    tag, detail = WARNINGS[code]
    return MpmWarning(code, tag, detail)


def _is_digits(text: str) -> bool:
    # str.isdigit() accepts "²" and "٣"; EMV IDs, lengths and numeric fields are ASCII.
    return bool(text) and all(c in _DIGITS for c in text)


def _show(text: str, limit: int = 16) -> str:
    """repr() of a payload fragment, cut short so messages stay one readable line."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _tag_number(tag: str) -> int:
    """The ID as a number; -1 for a malformed ID (only possible in a hand-built MpmCode)."""
    return int(tag) if len(tag) == 2 and _is_digits(tag) else -1


def _is_template_tag(tag: str) -> bool:
    n = _tag_number(tag)
    return 26 <= n <= 51 or n in (62, 64) or 80 <= n <= 99


def _is_merchant_account_tag(tag: str) -> bool:
    return 2 <= _tag_number(tag) <= 51


@dataclass(frozen=True, slots=True)
class _Tlv:
    tag: str
    value: str
    start: int  # code-point index of the ID in the whole payload


def _read_tlvs(text: str, offset: int, owner: str | None) -> Iterator[_Tlv]:
    """Yield the data objects of ``text`` lazily; ``offset`` is text[0]'s payload index.

    ``owner`` is the template ID when reading a template's contents, so errors say
    ``26.01`` rather than ``01``.
    """
    pos = 0
    n = len(text)
    while pos < n:
        at = offset + pos
        if n - pos < 4:
            raise MpmError(
                "truncated",
                f"{n - pos} character(s) {_show(text[pos:])} left where a data object "
                "(2-digit ID, 2-digit length, value) should start",
                tag=owner,
                position=at,
            )
        raw_tag = text[pos : pos + 2]
        if not _is_digits(raw_tag):
            raise MpmError(
                "bad_tag",
                f"ID {_show(raw_tag)} is not two ASCII digits",
                tag=owner,
                position=at,
            )
        tag = raw_tag if owner is None else f"{owner}.{raw_tag}"
        raw_length = text[pos + 2 : pos + 4]
        if not _is_digits(raw_length):
            raise MpmError(
                "bad_length",
                f"length {_show(raw_length)} of ID {raw_tag} is not two ASCII digits",
                tag=tag,
                position=at + 2,
            )
        length = int(raw_length)
        if length == 0:
            raise MpmError(
                "bad_length", f"ID {raw_tag} has length 00 (01-99 allowed)", tag=tag, position=at
            )
        end = pos + 4 + length
        if end > n:
            raise MpmError(
                "truncated",
                f"ID {raw_tag} declares {length} characters but only {n - pos - 4} remain",
                tag=tag,
                position=at,
            )
        yield _Tlv(raw_tag, text[pos + 4 : end], at)
        pos = end


def _split_template(tlv: _Tlv, owner: str) -> list[_Tlv]:
    """Parse a template's value into its sub-fields; errors become ``bad_template``."""
    try:
        subs = list(_read_tlvs(tlv.value, tlv.start + 4, owner))
    except MpmError as inner:
        raise MpmError(
            "bad_template",
            f"template {owner} does not hold valid data objects: {inner.detail}",
            tag=owner,
            position=inner.position,
        ) from inner
    seen: set[str] = set()
    for sub in subs:
        if sub.tag in seen:
            raise MpmError(
                "duplicate_tag",
                f"sub-ID {sub.tag} appears twice in template {owner}",
                tag=f"{owner}.{sub.tag}",
                position=sub.start,
            )
        seen.add(sub.tag)
    return subs


def _amount_ok(value: str) -> bool:
    """Digits with at most one '.', at least one digit, no sign, no exponent."""
    return (
        value.count(".") <= 1
        and all(c in _DIGITS or c == "." for c in value)
        and any(c in _DIGITS for c in value)
    )


def _check_field(tlv: _Tlv) -> None:
    """Check one top-level data object's own format (not its relations to others)."""
    tag, value, at = tlv.tag, tlv.value, tlv.start

    def bad(detail: str) -> MpmError:
        return MpmError("bad_format", detail, tag=tag, position=at)

    limit = _MAX_LENGTH.get(tag)
    if limit is not None and len(value) > limit:
        raise bad(f"ID {tag} is {len(value)} characters long (at most {limit})")
    if 65 <= _tag_number(tag) <= 79:
        raise MpmError(
            "reserved_tag", f"ID {tag} is reserved for future use (65-79)", tag=tag, position=at
        )
    if tag == "00":
        if value not in ("01", "02"):
            raise bad(f"payload format indicator is {_show(value)}, expected '01' (or "
                      "DuitNow's '02')")
    elif tag == "01":
        if value not in ("11", "12"):
            raise bad(f"point of initiation is {_show(value)}, expected '11' or '12'")
    elif tag == "52":
        if len(value) != 4 or not _is_digits(value):
            raise bad(f"merchant category code {_show(value)} is not 4 digits")
    elif tag == "53":
        if len(value) != 3 or not _is_digits(value):
            raise bad(f"currency {_show(value)} is not a 3-digit ISO 4217 code")
    elif tag == "54":
        if not _amount_ok(value):
            raise bad(f"amount {_show(value)} is not digits with an optional single '.'")
        if not any(c in "123456789" for c in value):
            raise bad("amount is zero; leave ID 54 out to let the payer enter the amount")
    elif tag == "55":
        if value not in ("01", "02", "03"):
            raise bad(f"tip or convenience indicator is {_show(value)}, expected 01, 02 or 03")
    elif tag == "56":
        if not _amount_ok(value):
            raise bad(f"fixed convenience fee {_show(value)} is not an amount")
    elif tag == "57":
        in_range = _amount_ok(value) and Decimal(0) < _decimal(value) < Decimal(100)
        if not in_range:
            raise bad(f"convenience fee percentage {_show(value)} is not between 00.01 and 99.99")
    elif tag == "58":
        if len(value) != 2 or not all(c in _UPPER for c in value):
            raise bad(f"country code {_show(value)} is not two upper-case letters")
    if _is_template_tag(tag):
        _check_template(tlv)


def _decimal(value: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - _amount_ok already rejected these
        return Decimal(-1)


def _check_template(tlv: _Tlv) -> None:
    tag = tlv.tag
    subs = {s.tag: s for s in _split_template(tlv, tag)}
    if 26 <= _tag_number(tag) <= 51 and "00" not in subs:
        raise MpmError(
            "missing_field",
            f"merchant account template {tag} has no globally unique identifier (sub-ID 00)",
            tag=f"{tag}.00",
            position=tlv.start,
        )
    if tag == "64":
        for sub_id, what in (("00", "language preference"), ("01", "merchant name")):
            if sub_id not in subs:
                raise MpmError(
                    "missing_field",
                    f"language template 64 has no {what} (sub-ID {sub_id})",
                    tag=f"64.{sub_id}",
                    position=tlv.start,
                )
        language = subs["00"]
        if len(language.value) != 2 or not all(c in _LETTERS for c in language.value):
            raise MpmError(
                "bad_format",
                f"language preference {_show(language.value)} is not two letters (ISO 639)",
                tag="64.00",
                position=language.start,
            )
        for sub_id, limit in (("01", 25), ("02", 15)):
            sub = subs.get(sub_id)
            if sub is not None and len(sub.value) > limit:
                raise MpmError(
                    "bad_format",
                    f"ID 64.{sub_id} is {len(sub.value)} characters long (at most {limit})",
                    tag=f"64.{sub_id}",
                    position=sub.start,
                )


def _check_fields(fields: list[_Tlv]) -> None:
    if not fields:
        raise MpmError("missing_field", "payload has no data objects before the CRC", tag="00")
    if fields[0].tag != "00":
        raise MpmError(
            "not_first",
            f"the payload must start with ID 00, found ID {fields[0].tag}",
            tag="00",
            position=0,
        )
    present: dict[str, _Tlv] = {}
    for tlv in fields:
        if tlv.tag in present:
            raise MpmError(
                "duplicate_tag",
                f"ID {tlv.tag} appears twice (first at {present[tlv.tag].start})",
                tag=tlv.tag,
                position=tlv.start,
            )
        present[tlv.tag] = tlv
        _check_field(tlv)
    for tag in _MANDATORY:
        if tag not in present:
            raise MpmError("missing_field", f"mandatory ID {tag} is absent", tag=tag)
    if not any(_is_merchant_account_tag(t) for t in present):
        raise MpmError(
            "missing_field", "no merchant account information (IDs 02-51) is present", tag=None
        )
    indicator = present.get("55")
    for fee_tag, wanted in (("56", "02"), ("57", "03")):
        fee = present.get(fee_tag)
        if indicator is not None and indicator.value == wanted and fee is None:
            raise MpmError(
                "missing_field",
                f"ID 55 is {wanted} but ID {fee_tag} is absent",
                tag=fee_tag,
                position=indicator.start,
            )
        if fee is not None and (indicator is None or indicator.value != wanted):
            raise MpmError(
                "unexpected_field",
                f"ID {fee_tag} is present but ID 55 is not {wanted}",
                tag=fee_tag,
                position=fee.start,
            )


def parse_mpm(payload: str) -> MpmCode:
    """Parse and validate an EMV merchant-presented QR payload.

    The payload is taken exactly as scanned: no whitespace is stripped (a trailing
    newline is an error, ``bad_char``; trailing text is ``crc_not_last``). Checks run
    in this order, so that a scan error shows up as a CRC failure before anything it
    may have garbled:

    1. it is a ``str`` of at most 512 code points without control characters;
    2. it splits into data objects (``truncated``, ``bad_tag``, ``bad_length``), the
       last of which is ID 63 with four hex digits (``crc_not_last``,
       ``bad_crc_format``, ``missing_field``);
    3. the CRC matches (``crc_mismatch``);
    4. ID 00 is first and ``01`` (or ``02``); no ID twice; no reserved ID; every field
       and template is well-formed; 53, 58 and a merchant account (02–51) are
       present; 55/56/57 agree.

    What EMV requires but published national codes leave out (ID 00 ``02``, no ID 01,
    52, 59 or 60) does not fail: ``MpmCode.warnings`` lists it.

    Raises:
        MpmError: the payload is not valid; ``code`` says why, ``tag`` and
            ``position`` say where. No other exception escapes.
    """
    if not isinstance(payload, str):
        raise MpmError("not_a_string", f"payload is {type(payload).__name__}, not str")
    if len(payload) > MAX_PAYLOAD_LENGTH:
        raise MpmError(
            "too_long",
            f"payload is {len(payload)} characters (at most {MAX_PAYLOAD_LENGTH})",
            position=MAX_PAYLOAD_LENGTH,
        )
    if not payload:
        raise MpmError("truncated", "payload is empty", position=0)
    bad_char = _BAD_CHAR.search(payload)
    if bad_char is not None:
        raise MpmError(
            "bad_char",
            f"control character or lone surrogate U+{ord(bad_char.group()):04X}",
            position=bad_char.start(),
        )

    fields: list[_Tlv] = []
    crc: _Tlv | None = None
    for tlv in _read_tlvs(payload, 0, None):
        if tlv.tag == _CRC_TAG:
            crc = tlv
            end = tlv.start + 4 + len(tlv.value)
            if end != len(payload):
                raise MpmError(
                    "crc_not_last",
                    f"{len(payload) - end} character(s) follow the CRC (ID 63 must be last)",
                    tag=_CRC_TAG,
                    position=end,
                )
            break
        fields.append(tlv)
    if crc is None:
        raise MpmError(
            "missing_field", "no CRC (ID 63) at the end", tag=_CRC_TAG, position=len(payload)
        )
    if len(crc.value) != 4 or not all(c in _HEX for c in crc.value):
        raise MpmError(
            "bad_crc_format",
            f"CRC {_show(crc.value)} is not exactly four hex digits",
            tag=_CRC_TAG,
            position=crc.start,
        )
    expected = crc16_ccitt_false(payload[: crc.start + 4].encode("utf-8"))
    if int(crc.value, 16) != expected:
        raise MpmError(
            "crc_mismatch",
            f"CRC is {crc.value.upper()} but the payload computes to {expected:04X}",
            tag=_CRC_TAG,
            position=crc.start,
        )
    _check_fields(fields)
    return MpmCode(fields=tuple((t.tag, t.value) for t in fields))


def _encode(tag: str, value: str, owner: str | None = None) -> str:
    name = tag if owner is None else f"{owner}.{tag}"
    if not isinstance(tag, str) or len(tag) != 2 or not _is_digits(tag):
        raise MpmError("bad_tag", f"ID {tag!r} is not two ASCII digits", tag=owner)
    if not isinstance(value, str):
        raise MpmError("bad_format", f"value of ID {name} is not a str", tag=name)
    if not 1 <= len(value) <= 99:
        raise MpmError(
            "bad_length", f"value of ID {name} is {len(value)} characters (1-99)", tag=name
        )
    return f"{tag}{len(value):02d}{value}"


def _encode_value(tag: str, value: FieldValue) -> str:
    if isinstance(value, str):
        return value
    return "".join(_encode(sub_id, sub_value, tag) for sub_id, sub_value in value)


def build_mpm(fields: MpmCode | Iterable[tuple[str, FieldValue]]) -> str:
    """Build a payload from top-level fields and append the CRC (ID 63).

    ``fields`` is an ``MpmCode`` or ``(tag, value)`` pairs in the order they are to
    appear; a template's value may be given as its ``(sub_id, value)`` pairs instead of
    the encoded string. ID 00 (``"01"``) is put first when no ID 00 is given; ID 63
    must not be given (it is computed). The result is parsed before it is returned,
    so ``build_mpm`` never hands out a payload ``parse_mpm`` would reject, and
    ``parse_mpm(build_mpm(code)) == code`` for every valid ``code``.

    Raises:
        MpmError: the fields do not make a valid payload.
    """
    if isinstance(fields, str):
        raise MpmError("bad_format", "build_mpm takes (tag, value) pairs, not a payload")
    items = list(fields.fields if isinstance(fields, MpmCode) else fields)
    encoded: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise MpmError("bad_format", f"{_show(repr(item))} is not a (tag, value) pair")
        tag, value = item
        if tag == _CRC_TAG:
            raise MpmError("bad_tag", "ID 63 (the CRC) is computed by build_mpm", tag=_CRC_TAG)
        encoded.append((tag, _encode_value(tag, value)))
    if all(tag != "00" for tag, _ in encoded):
        encoded.insert(0, ("00", "01"))
    body = "".join(_encode(tag, value) for tag, value in encoded) + _CRC_HEADER
    try:
        crc = crc16_ccitt_false(body.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise MpmError("bad_char", "a value holds a lone surrogate", position=exc.start) from exc
    payload = f"{body}{crc:04X}"
    parse_mpm(payload)
    return payload


@dataclass(frozen=True)
class MpmCode:
    """A parsed merchant-presented code.

    ``fields`` holds every top-level data object in payload order, ID 00 included,
    as ``(tag, raw value)``; template values stay encoded (use ``template()`` or the
    properties to read them). The CRC (ID 63) is not in ``fields``: it is derived
    from them (``crc``), so two codes are equal exactly when their payloads are equal
    up to the letter case of the CRC.

    Construct one with ``parse_mpm``; a hand-built ``MpmCode`` is not validated
    until you ``build_mpm`` it.
    """

    fields: tuple[tuple[str, str], ...]

    def get(self, tag: str) -> str | None:
        """The raw value of top-level ID ``tag``, or ``None`` when absent."""
        for field_tag, value in self.fields:
            if field_tag == tag:
                return value
        return None

    def template(self, tag: str) -> SubFields | None:
        """The sub-fields of template ``tag`` in payload order, or ``None`` when absent."""
        value = self.get(tag)
        if value is None:
            return None
        subs = _split_template(_Tlv(tag, value, self._start_of(tag)), tag)
        return tuple((s.tag, s.value) for s in subs)

    def _start_of(self, tag: str) -> int:
        at = 0
        for field_tag, value in self.fields:
            if field_tag == tag:
                return at
            at += 4 + len(value)
        return at

    def to_payload(self) -> str:
        """The payload string (CRC upper-case); same as ``build_mpm(self)``."""
        return build_mpm(self)

    @property
    def crc(self) -> str:
        """The CRC as four upper-case hex digits."""
        body = "".join(f"{t}{len(v):02d}{v}" for t, v in self.fields) + _CRC_HEADER
        return f"{crc16_ccitt_false(body.encode('utf-8')):04X}"

    @property
    def warnings(self) -> tuple[MpmWarning, ...]:
        """The EMV deviations this code ships with (see :data:`WARNINGS`), by ID.

        Empty for a code that follows EMV MPM to the letter. A code with warnings is
        well-formed and its CRC is right; what it lacks is information, not integrity.
        """
        found = [_warning("payload_format_02")] if self.get("00") == "02" else []
        found.extend(_warning(code) for tag, code in _ABSENT_WARNINGS if self.get(tag) is None)
        return tuple(found)

    @property
    def payload_format_indicator(self) -> str | None:
        return self.get("00")

    @property
    def point_of_initiation(self) -> str | None:
        """ID 01: ``"11"`` static, ``"12"`` dynamic, ``None`` when absent."""
        return self.get("01")

    @property
    def is_static(self) -> bool:
        """True when ID 01 is ``"11"`` (one code for many payments, e.g. a sticker)."""
        return self.get("01") == "11"

    @property
    def is_dynamic(self) -> bool:
        """True when ID 01 is ``"12"`` (a code made for one payment)."""
        return self.get("01") == "12"

    @property
    def merchant_category_code(self) -> str | None:
        return self.get("52")

    @property
    def currency(self) -> str | None:
        """ID 53, the ISO 4217 numeric currency (``"392"`` for JPY)."""
        return self.get("53")

    @property
    def amount(self) -> str | None:
        """ID 54 as written (a string, never a float); ``None``: the payer enters it."""
        return self.get("54")

    @property
    def tip_indicator(self) -> str | None:
        return self.get("55")

    @property
    def convenience_fee_fixed(self) -> str | None:
        return self.get("56")

    @property
    def convenience_fee_percentage(self) -> str | None:
        return self.get("57")

    @property
    def country(self) -> str | None:
        return self.get("58")

    @property
    def merchant_name(self) -> str | None:
        """ID 59. Whoever printed the code chose it: never show it as proof of the payee."""
        return self.get("59")

    @property
    def merchant_city(self) -> str | None:
        return self.get("60")

    @property
    def postal_code(self) -> str | None:
        return self.get("61")

    @property
    def merchant_accounts(self) -> dict[str, str | SubFields]:
        """IDs 02–51 in payload order: 02–25 as the raw string, 26–51 parsed."""
        accounts: dict[str, str | SubFields] = {}
        for tag, value in self.fields:
            if _is_merchant_account_tag(tag):
                if _tag_number(tag) >= 26:
                    sub_fields = self.template(tag)
                    assert sub_fields is not None
                    accounts[tag] = sub_fields
                else:
                    accounts[tag] = value
        return accounts

    @property
    def additional_data(self) -> SubFields | None:
        """Template 62 (bill number, store label, terminal label, ...) parsed."""
        return self.template("62")

    @property
    def language_template(self) -> SubFields | None:
        """Template 64: 00 language, 01 merchant name, 02 city in that language."""
        return self.template("64")

    @property
    def unreserved_templates(self) -> dict[str, SubFields]:
        """Templates 80–99 parsed, in payload order."""
        found: dict[str, SubFields] = {}
        for tag, _value in self.fields:
            if 80 <= _tag_number(tag) <= 99:
                sub_fields = self.template(tag)
                assert sub_fields is not None
                found[tag] = sub_fields
        return found


def sub_field(sub_fields: SubFields | None, sub_id: str) -> str | None:
    """The value of ``sub_id`` in a template's sub-fields, or ``None``."""
    if sub_fields is None:
        return None
    for key, value in sub_fields:
        if key == sub_id:
            return value
    return None
