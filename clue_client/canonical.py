"""Canonical forms of the identifiers CLUE shares.

Two members that saw the same fraudster must derive the same token, so every
identifier is reduced to one canonical string before it is tokenised. Every
rule here is idempotent: ``canonicalize(t, canonicalize(t, x)) == canonicalize(t, x)``.
Bad input raises :class:`~clue_client.errors.InvalidIdentifier` and nothing else.

>>> canonicalize("phone", "０９０－１２３４－５６７８")
'+819012345678'
>>> canonicalize("email", "J.Doe+shop@GoogleMail.com")
'j.doe+shop@googlemail.com'
>>> email_folded("j.doe+shop@googlemail.com")
'jdoe@gmail.com'
>>> canonicalize("ip", "2001:db8:1:2:3:4:5:6")
'2001:db8:1:2::/64'
>>> canonicalize("bank_account", "0001-001-1-123")
'0001-001-1-0000123'
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable

import email_validator
import phonenumbers

from clue_client.errors import InvalidIdentifier

__all__ = [
    "ID_TYPES",
    "MAX_DEVICE_ID_LENGTH",
    "MAX_IDENTIFIER_LENGTH",
    "canonicalize",
    "email_folded",
    "qr_payee",
]

ID_TYPES: tuple[str, ...] = (
    "phone",
    "email",
    "ip",
    "device_id",
    "bank_account",
    "jpqr_store",
    "qr_payee",
)

# Checked on the raw input, before any normalisation, so a hostile caller cannot
# make us NFKC-normalise or parse megabytes.
MAX_IDENTIFIER_LENGTH = 1024
MAX_DEVICE_ID_LENGTH = 256

# Japanese users type all sorts of dashes (full-width hyphen, minus sign, the katakana
# prolonged-sound mark); NFKC folds only some of them. The same set phonenumbers accepts.
_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\uff0d"
_SEP = rf"(?:\s*[{_DASHES}]\s*|\s+)"
# [0-9], not \d: \d also matches Arabic-Indic and other digits NFKC does not fold.
_BANK_SEPARATED = re.compile(rf"([0-9]{{4}}){_SEP}([0-9]{{3}}){_SEP}([0-9]){_SEP}([0-9]{{1,7}})")
_BANK_COMPACT = re.compile(r"([0-9]{4})([0-9]{3})([0-9])([0-9]{7})")
_BANK_ACCOUNT_TYPES = frozenset("124")  # 1 普通 ordinary, 2 当座 current, 4 貯蓄 savings
_JPQR_STORE = re.compile(rf"([0-9]{{13}}){_SEP}?([0-9]{{4}}){_SEP}?([0-9]{{6}}){_SEP}?([0-9]{{6}})")
# GUIDs (reverse domain names, AIDs, UUIDs in hex) are printable ASCII; no space and
# no "|", which separates the GUID from the account. clue_client.qr percent-escapes
# odd characters, so "%" must pass.
_QR_GUID = re.compile(r"[!-{}~]+")

_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def canonicalize(id_type: str, value: str, *, default_region: str = "JP") -> str:
    """Return the canonical form of ``value`` as an identifier of type ``id_type``.

    ``default_region`` only matters for phone numbers written without a country code.
    Raises :class:`InvalidIdentifier` for an unknown type or a value that is not a
    valid identifier of that type.
    """
    rule = _RULES.get(id_type) if isinstance(id_type, str) else None
    if rule is None:
        raise InvalidIdentifier(str(id_type), "unknown identifier type")
    if not isinstance(value, str):
        raise InvalidIdentifier(id_type, f"must be a str, not {type(value).__name__}")
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise InvalidIdentifier(id_type, f"longer than {MAX_IDENTIFIER_LENGTH} characters")
    text = _nfkc_strip(value)
    if not text:
        raise InvalidIdentifier(id_type, "empty")
    return rule(text, default_region)


def email_folded(canonical_email: str) -> str:
    """Return the folded variant of an e-mail address already in canonical form.

    ``+tag`` is dropped from the local part for every domain; for gmail.com and
    googlemail.com dots are dropped too and the domain becomes gmail.com. The input is
    only checked structurally (it is expected to come from :func:`canonicalize`), which
    keeps ``email_folded(email_folded(x)) == email_folded(x)`` even when the folded local
    part would not pass validation on its own (``a.+x@example.com`` -> ``a.@example.com``).
    """
    if not isinstance(canonical_email, str):
        raise InvalidIdentifier("email", f"must be a str, not {type(canonical_email).__name__}")
    local, at, domain = canonical_email.rpartition("@")
    if not at or not local or not domain or canonical_email != canonical_email.strip():
        raise InvalidIdentifier("email", "not a canonical e-mail address")
    base, plus, _tag = local.partition("+")
    # "+tag@x" would fold to an empty local part; such an address has no untagged form.
    if plus and base:
        local = base
    if domain in _GMAIL_DOMAINS:
        # Gmail ignores dots; an all-dots local part cannot pass validation, so "" is
        # unreachable from canonical input, but never produce it from other input either.
        local = local.replace(".", "") or local
        domain = "gmail.com"
    return f"{local}@{domain}"


def qr_payee(guid: str, account: str) -> str:
    """Build the canonical ``guid|account`` payee of a merchant-presented QR code.

    ``guid`` is sub-ID 00 of the merchant-account template (IDs 26-51); ``account`` is
    the rest of that template's data, exactly as found in the code.

    >>> qr_payee("JP.OR.PAYMENTSJAPAN", "0113Store-Acct-01")
    'jp.or.paymentsjapan|0113Store-Acct-01'
    """
    for name, part in (("guid", guid), ("account", account)):
        if not isinstance(part, str):
            raise InvalidIdentifier("qr_payee", f"{name} must be a str, not {type(part).__name__}")
        if len(part) > MAX_IDENTIFIER_LENGTH:
            raise InvalidIdentifier("qr_payee", f"{name} too long")
    return _qr_payee_parts(_nfkc_strip(guid), _nfkc_strip(account))


def _nfkc_strip(text: str) -> str:
    # NFKC first so full-width forms and the ideographic space (U+3000) fold before we
    # strip; normalising again after the strip keeps the result a fixed point.
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).strip())


# Cc: C0/C1 controls (NUL, newline, ESC, ...) and Zl/Zp (U+2028, U+2029) break CSV
# files and logs. Cs: lone surrogates cannot be encoded as UTF-8, so could not be tokenised.
_CONTROL_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in _CONTROL_CATEGORIES for ch in text)


def _phone(text: str, default_region: str) -> str:
    try:
        number = phonenumbers.parse(text, default_region.upper())
    except phonenumbers.NumberParseException as exc:
        # args[0] is the library's message without its "(n) " error-code prefix.
        raise InvalidIdentifier("phone", f"not a phone number: {exc.args[0]}") from exc
    # An extension is not part of the number a fraudster controls; refusing it is
    # clearer than silently dropping it.
    if number.extension:
        raise InvalidIdentifier("phone", "extensions are not supported")
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentifier("phone", "not a valid number for its region")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _email(text: str, _region: str) -> str:
    canonical = _email_once(text)
    if canonical != text:
        # Lower-casing and the validator's own normalisation do not always commute for
        # exotic Unicode; insisting on a fixed point makes idempotence a guarantee.
        try:
            again = _email_once(canonical)
        except InvalidIdentifier as exc:
            raise InvalidIdentifier("email", f"no stable canonical form: {exc.reason}") from exc
        if again != canonical:
            raise InvalidIdentifier("email", "no stable canonical form")
    return canonical


def _email_once(text: str) -> str:
    text = unicodedata.normalize("NFKC", text.lower())
    try:
        # Defaults refuse quoted local parts and IP-literal domains, which have no
        # stable canonical form; check_deliverability=False keeps this offline.
        result = email_validator.validate_email(text, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise InvalidIdentifier("email", str(exc)) from exc
    # The validator NFC-normalises the local part; lower-case and NFKC it again.
    # ascii_domain is the IDNA (xn--) form of the domain, already lower-case.
    local = unicodedata.normalize("NFKC", result.local_part.lower())
    return f"{local}@{result.ascii_domain}"


def _ip(text: str, _region: str) -> str:
    # ipaddress accepts "%zone" suffixes; a zone is local to one host, never shareable.
    if "%" in text:
        raise InvalidIdentifier("ip", "zone ids are not allowed")
    if "/" in text:
        return _ipv6_network(text)
    try:
        address = ipaddress.ip_address(text)
    except ValueError as exc:
        raise InvalidIdentifier("ip", "not an IPv4 or IPv6 address") from exc
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    # One subscriber usually owns a whole /64 and picks host bits at will, so the
    # prefix is the useful identifier.
    return str(ipaddress.IPv6Network((address, 64), strict=False))


def _ipv6_network(text: str) -> str:
    # Only the canonical IPv6 /64 form is accepted back (idempotence); other CIDRs are
    # ranges, not identifiers.
    reason = "only an IPv6 /64 network address may carry a prefix"
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise InvalidIdentifier("ip", reason) from exc
    if not isinstance(network, ipaddress.IPv6Network) or network.prefixlen != 64:
        raise InvalidIdentifier("ip", reason)
    return str(network)


def _device_id(text: str, _region: str) -> str:
    if len(text) > MAX_DEVICE_ID_LENGTH:
        raise InvalidIdentifier("device_id", f"longer than {MAX_DEVICE_ID_LENGTH} characters")
    if _has_control(text):
        raise InvalidIdentifier("device_id", "contains control characters")
    return text


def _bank_account(text: str, _region: str) -> str:
    match = _BANK_SEPARATED.fullmatch(text) or _BANK_COMPACT.fullmatch(text)
    if match is None:
        raise InvalidIdentifier(
            "bank_account",
            "expected BBBB-SSS-T-NNNNNNN (bank, branch, type, number) or 15 digits",
        )
    bank, branch, kind, number = match.groups()
    if kind not in _BANK_ACCOUNT_TYPES:
        raise InvalidIdentifier(
            "bank_account", "account type must be 1 (ordinary), 2 (current) or 4 (savings)"
        )
    return f"{bank}-{branch}-{kind}-{number.zfill(7)}"


def _jpqr_store(text: str, _region: str) -> str:
    match = _JPQR_STORE.fullmatch(text)
    if match is None:
        raise InvalidIdentifier("jpqr_store", "expected a 29-digit store ID (13+4+6+6 digits)")
    return "".join(match.groups())


def _qr_payee(text: str, _region: str) -> str:
    # The GUID never contains "|", so the first one separates it from the account data,
    # which may itself contain "|".
    guid, bar, account = text.partition("|")
    if not bar:
        raise InvalidIdentifier("qr_payee", "expected guid|account")
    return _qr_payee_parts(_nfkc_strip(guid), _nfkc_strip(account))


def _qr_payee_parts(guid: str, account: str) -> str:
    guid = guid.lower()
    if not guid or not account:
        raise InvalidIdentifier("qr_payee", "guid and account must both be non-empty")
    if not _QR_GUID.fullmatch(guid):
        raise InvalidIdentifier(
            "qr_payee",
            "guid must be printable ASCII without spaces or '|' (e.g. jp.or.paymentsjapan)",
        )
    if _has_control(account):
        raise InvalidIdentifier("qr_payee", "account contains control characters")
    return f"{guid}|{account}"


_RULES: dict[str, Callable[[str, str], str]] = {
    "phone": _phone,
    "email": _email,
    "ip": _ip,
    "device_id": _device_id,
    "bank_account": _bank_account,
    "jpqr_store": _jpqr_store,
    "qr_payee": _qr_payee,
}
