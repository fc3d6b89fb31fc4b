"""The JPQR view of a merchant-presented code, and the payee of any code.

JPQR (the Payments Japan Association's unified QR, guideline part 1 §2.1 and §3.2)
profiles EMV MPM: one merchant-account template in IDs 26–51 carries GUID
``jp.or.paymentsjapan`` and the 29-digit unified store ID in four parts —

====== ====== =============================== ===================================
sub-ID digits  management level                example
====== ====== =============================== ===================================
01     13     1: company (the contracting      ○○株式会社
              legal entity)
02     4      2: brand / division              ○○屋
03     6      3: store                         新橋1号店
04     6      4: terminal (dynamic) or sticker  table 3, sticker
              (static)
====== ====== =============================== ===================================

(levels that are not registered are all zeros) — plus currency 392, country JP, a
postal code (ID 61) and a Japanese language template (ID 64, language ``JA``, the
merchant's Japanese name in sub-ID 01).

Payees. ``payee_of(code)`` names who a code pays, for the ``qr_payee`` identifier
used to report forged or swapped stickers. Its one definition is
:func:`clue_client.canonical.qr_payee`, applied to each merchant-account template
(IDs 26–51) with a GUID and some account data, in ID order, lowest first (ID order
rather than payload order, because EMV lets the same code list its data objects in any
order and the identifier must not change with it): ``guid|account``, where the account
of a well-formed JPQR template is the 29-digit store ID and of any other template its
sub-fields as ``id=value`` joined by ``;`` in sub-ID order, percent-encoded so that two
different templates never give the same string (docs/protocol.md §2).

Primitive merchant accounts (IDs 02–25, card-network merchant IDs) are not payees
in this sense: they name an acquirer-side merchant, not a template with a GUID.
"""

from __future__ import annotations

from dataclasses import dataclass

from clue_client.canonical import qr_payee
from clue_client.errors import InvalidIdentifier
from clue_client.qr.errors import MpmError
from clue_client.qr.mpm import MpmCode, SubFields, sub_field

__all__ = [
    "JPQR_GUID",
    "JpqrInfo",
    "jpqr_view",
    "payee_key",
    "payee_of",
    "payees_of",
]

JPQR_GUID = "jp.or.paymentsjapan"
_STORE_ID_PARTS = (
    ("01", 13, "company"),
    ("02", 4, "brand"),
    ("03", 6, "store"),
    ("04", 6, "terminal"),
)


@dataclass(frozen=True)
class JpqrInfo:
    """What a JPQR code says about the store (all of it chosen by whoever printed it)."""

    template_tag: str
    """The merchant-account ID (26–51) that holds the unified store ID."""
    company: str
    """Management level 1, 13 digits: the contracting company."""
    brand: str
    """Management level 2, 4 digits: brand or division."""
    store: str
    """Management level 3, 6 digits: the store."""
    terminal: str
    """Management level 4, 6 digits: the terminal (dynamic codes) or sticker (static)."""
    merchant_name: str
    """ID 59, the merchant name in Latin letters."""
    merchant_name_ja: str
    """ID 64 sub-ID 01, the merchant name in Japanese."""
    language: str
    """ID 64 sub-ID 00, ``JA``."""
    merchant_city: str
    """ID 60."""
    merchant_city_ja: str | None
    """ID 64 sub-ID 02 when present."""
    postal_code: str
    """ID 61."""
    is_static: bool
    """ID 01 is ``11``: a printed sticker rather than a code made for one payment."""

    @property
    def store_id(self) -> str:
        """The 29-digit unified store ID (company + brand + store + terminal)."""
        return self.company + self.brand + self.store + self.terminal


def _guid(sub_fields: SubFields) -> str | None:
    guid = sub_field(sub_fields, "00")
    return None if guid is None else guid.lower()


def _store_id_parts(tag: str, sub_fields: SubFields) -> tuple[str, str, str, str]:
    parts: list[str] = []
    for sub_id, digits, level in _STORE_ID_PARTS:
        value = sub_field(sub_fields, sub_id)
        if value is None:
            raise MpmError(
                "bad_store_id",
                f"JPQR template {tag} has no {level} part of the store ID (sub-ID {sub_id})",
                tag=f"{tag}.{sub_id}",
            )
        if len(value) != digits or not all("0" <= c <= "9" for c in value):
            raise MpmError(
                "bad_store_id",
                f"{level} part of the store ID is {value[:16]!r}, expected {digits} digits",
                tag=f"{tag}.{sub_id}",
            )
        parts.append(value)
    return parts[0], parts[1], parts[2], parts[3]


def _jpqr_templates(code: MpmCode) -> list[tuple[str, SubFields]]:
    found = []
    for tag, sub_fields in sorted(code.merchant_accounts.items()):
        if isinstance(sub_fields, tuple) and _guid(sub_fields) == JPQR_GUID:
            found.append((tag, sub_fields))
    return found


def _require(code: MpmCode, tag: str, expected: str | None, what: str) -> str:
    value = code.get(tag)
    if value is None:
        raise MpmError("missing_field", f"JPQR requires {what} (ID {tag})", tag=tag)
    if expected is not None and value != expected:
        raise MpmError(
            "bad_format", f"JPQR requires {what} {expected!r}, found {value[:16]!r}", tag=tag
        )
    return value


def _view(code: MpmCode) -> JpqrInfo:
    templates = _jpqr_templates(code)
    if not templates:
        raise MpmError(
            "not_jpqr", f"no merchant account template (IDs 26-51) with GUID {JPQR_GUID}"
        )
    if len(templates) > 1:
        raise MpmError(
            "duplicate_tag",
            f"templates {templates[0][0]} and {templates[1][0]} both carry GUID {JPQR_GUID}",
            tag=templates[1][0],
        )
    tag, sub_fields = templates[0]
    company, brand, store, terminal = _store_id_parts(tag, sub_fields)
    _require(code, "53", "392", "currency")
    _require(code, "58", "JP", "country")
    postal_code = _require(code, "61", None, "a postal code")
    language_template = code.language_template
    if language_template is None:
        raise MpmError("missing_field", "JPQR requires a Japanese language template", tag="64")
    language = sub_field(language_template, "00") or ""
    if language.upper() != "JA":
        raise MpmError(
            "bad_format", f"JPQR requires language 'JA', found {language[:16]!r}", tag="64.00"
        )
    name_ja = sub_field(language_template, "01")
    if name_ja is None:  # parse_mpm already insists on 64.01; a hand-built code may not
        raise MpmError("missing_field", "JPQR requires the Japanese merchant name", tag="64.01")
    return JpqrInfo(
        template_tag=tag,
        company=company,
        brand=brand,
        store=store,
        terminal=terminal,
        merchant_name=code.merchant_name or "",
        merchant_name_ja=name_ja,
        language=language,
        merchant_city=code.merchant_city or "",
        merchant_city_ja=sub_field(language_template, "02"),
        postal_code=postal_code,
        is_static=code.is_static,
    )


def jpqr_view(code: MpmCode, *, strict: bool = False) -> JpqrInfo | None:
    """The JPQR reading of a parsed code.

    With ``strict=False`` (the default) returns ``None`` when the code is not a
    complete JPQR code. With ``strict=True`` raises ``MpmError`` naming what is
    missing or wrong: ``not_jpqr`` (no template with GUID ``jp.or.paymentsjapan``),
    ``bad_store_id`` (that template's sub-IDs 01–04 are not 13/4/6/6 digits),
    ``duplicate_tag`` (two such templates), ``bad_format`` (currency not 392, country
    not JP, language not JA) or ``missing_field`` (no ID 61 or 64).

    Static and dynamic JPQR codes both pass; check ``is_static`` for a sticker.
    """
    if strict:
        return _view(code)
    try:
        return _view(code)
    except MpmError:
        return None


def payees_of(code: MpmCode) -> list[tuple[str, str]]:
    """Every ``(guid, account)`` payee of the code's templates 26–51, in ID order.

    Each is :func:`clue_client.canonical.qr_payee` of one template, split at its first
    ``|``; a template it refuses (no account data, a GUID that is only white space,
    control characters) names no payee. A code a wallet may pay through any of its
    templates is safest checked against all of them.
    """
    payees: list[tuple[str, str]] = []
    for _tag, sub_fields in sorted(code.merchant_accounts.items()):
        if not isinstance(sub_fields, tuple):
            continue
        guid = sub_field(sub_fields, "00")
        if guid is None:
            continue
        try:
            payee = qr_payee(guid, [(k, v) for k, v in sub_fields if k != "00"])
        except InvalidIdentifier:
            continue
        name, _bar, account = payee.partition("|")
        payees.append((name, account))
    return payees


def payee_of(code: MpmCode) -> tuple[str, str] | None:
    """The ``(guid, account)`` of the code's first merchant-account template, or ``None``.

    "First" is the lowest ID in 26–51 that has a GUID and account data. For a JPQR
    template the result is ``("jp.or.paymentsjapan", <29-digit store ID>)``.
    """
    payees = payees_of(code)
    return payees[0] if payees else None


def payee_key(code: MpmCode) -> str | None:
    """``payee_of(code)`` as the ``qr_payee`` identifier string ``"guid|account"``."""
    payee = payee_of(code)
    return None if payee is None else f"{payee[0]}|{payee[1]}"
