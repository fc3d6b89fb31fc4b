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
>>> canonicalize("ip", "2606:4700:4700::1111")
'2606:4700:4700::/64'
>>> canonicalize("bank_account", "0001-001-1-123")
'0001-001-1-0000123'
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import NoReturn
from urllib.parse import quote, unquote

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
# qr_payee: see qr_payee(). Printable ASCII other than % ; = | is written as itself;
# everything else (those four, the space, non-ASCII) as %XX of its UTF-8 bytes.
_QR_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "%;=|")
_QR_SUB_ID = re.compile(r"[0-9]{2}")
_QR_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_QR_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_QR_JPQR_GUID = "jp.or.paymentsjapan"
_QR_JPQR_PARTS = (("01", 13), ("02", 4), ("03", 6), ("04", 6))

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


def qr_payee(guid: str, sub_fields: Iterable[tuple[str, str]]) -> str:
    """The canonical ``qr_payee`` of one merchant-account template (IDs 26-51) of a QR code.

    This function is the one definition of the ``qr_payee`` canonical form: the SDK
    builds every payee of a scanned code with it (:func:`clue_client.qr.payees_of`),
    and ``canonicalize("qr_payee", text)`` reads the written form back into it.
    ``guid`` is the template's sub-ID 00 and ``sub_fields`` its other data objects as
    ``(sub_id, value)`` pairs, both exactly as found in the code. The result is
    ``GUID|ACCOUNT``, printable ASCII:

    * every part is ``nfkc_strip``-ped first (NFKC, strip white space, NFKC);
    * GUID: ASCII letters lower-cased (GUIDs are reverse domain names or AIDs, which
      are case-insensitive), then percent-encoded as below; it MUST NOT be empty;
    * ACCOUNT, for GUID ``jp.or.paymentsjapan`` whose sub-IDs 01-04 are 13, 4, 6 and 6
      ASCII digits: the 29-digit unified store ID (01+02+03+04), whatever other
      sub-fields the template holds;
    * ACCOUNT otherwise: ``SUB_ID=VALUE`` for every sub-field, in ascending sub-ID
      order, joined by ``;``; at least one; sub-IDs are two ASCII digits other than
      ``00``, each at most once; a value may be empty;
    * percent-encoding: printable ASCII (U+0021-U+007E) other than ``%``, ``;``, ``=``
      and ``|`` stands for itself; every other character (those four, the space,
      anything outside ASCII) is written ``%XX`` per UTF-8 byte, upper-case hex
      (``;`` is ``%3B``, ``ア`` is ``%E3%82%A2``). Control characters are refused.

    So two different templates never give the same string, the payload order of the
    sub-fields does not matter, and the result is a fixed point of
    ``canonicalize("qr_payee", ...)``.

    >>> qr_payee("BR.GOV.BCB.PIX", [("01", "123e4567-e12b-12d1-a456-426655440000")])
    'br.gov.bcb.pix|01=123e4567-e12b-12d1-a456-426655440000'
    >>> qr_payee("com.example.pay", [("02", "a;b"), ("01", "ＭＥＲＣＨ 1")])
    'com.example.pay|01=MERCH%201;02=a%3Bb'
    >>> qr_payee("jp.or.paymentsjapan", [("01", "0000000000001"), ("02", "0001"),
    ...                                  ("03", "000001"), ("04", "000001")])
    'jp.or.paymentsjapan|00000000000010001000001000001'

    Raises :class:`InvalidIdentifier` for anything else.
    """
    if not isinstance(guid, str):
        raise InvalidIdentifier("qr_payee", f"guid must be a str, not {type(guid).__name__}")
    if isinstance(sub_fields, str | bytes) or not isinstance(sub_fields, Iterable):
        raise InvalidIdentifier(
            "qr_payee", "sub_fields must be (sub_id, value) pairs; canonicalize('qr_payee', "
            "'guid|account') reads the written form")
    normal_guid = _qr_text(guid, "guid").translate(_QR_ASCII_LOWER)
    if not normal_guid:
        raise InvalidIdentifier("qr_payee", "guid and account must both be non-empty")
    values: dict[str, str] = {}
    for item in sub_fields:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise InvalidIdentifier("qr_payee", "sub_fields must be (sub_id, value) pairs")
        sub_id, value = item
        if not isinstance(sub_id, str) or not _QR_SUB_ID.fullmatch(sub_id) or sub_id == "00":
            raise InvalidIdentifier("qr_payee", f"sub-ID {str(sub_id)[:8]!r} is not two "
                                    "digits from 01 to 99")
        if sub_id in values:
            raise InvalidIdentifier("qr_payee", f"sub-ID {sub_id} appears twice")
        values[sub_id] = _qr_text(value, f"sub-ID {sub_id}")
    if not values:
        raise InvalidIdentifier("qr_payee", "guid and account must both be non-empty")
    if normal_guid == _QR_JPQR_GUID and all(
            len(values.get(sub_id, "")) == digits and values[sub_id].isascii()
            and values[sub_id].isdigit() for sub_id, digits in _QR_JPQR_PARTS):
        account = "".join(values[sub_id] for sub_id, _ in _QR_JPQR_PARTS)
    else:
        account = ";".join(f"{sub_id}={_qr_escape(values[sub_id])}" for sub_id in sorted(values))
    return f"{_qr_escape(normal_guid)}|{account}"


def _qr_text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidIdentifier("qr_payee", f"{name} must be a str, not {type(value).__name__}")
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise InvalidIdentifier("qr_payee", f"{name} too long")
    text = _nfkc_strip(value)
    if _has_control(text):
        raise InvalidIdentifier("qr_payee", f"{name} contains control characters")
    return text


def _qr_escape(text: str) -> str:
    # _qr_text refused lone surrogates (category Cs), so the UTF-8 encoding cannot fail.
    return quote(text, safe=_QR_SAFE)


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


# Addresses that are never one subscriber's public address: reporting one would flag
# everyone behind a NAT, on a LAN or using a protocol relay. From the IANA IPv4 and IPv6
# special-purpose address registries (RFC 6890 and its updates), written out rather than
# taken from ipaddress.is_global, whose answers changed between Python releases: every
# member must refuse exactly the same addresses.
_IPV4_REFUSED: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), what) for net, what in (
        ("0.0.0.0/8", "a 'this network' address"),
        ("10.0.0.0/8", "a private address, RFC 1918"),
        ("100.64.0.0/10", "a carrier-grade NAT address, RFC 6598"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address, RFC 1918"),
        ("192.0.0.0/24", "an IETF protocol assignment"),
        ("192.0.2.0/24", "a documentation address, RFC 5737"),
        ("192.88.99.0/24", "the retired 6to4 relay anycast prefix"),
        ("192.168.0.0/16", "a private address, RFC 1918"),
        ("198.18.0.0/15", "a benchmarking address, RFC 2544"),
        ("198.51.100.0/24", "a documentation address, RFC 5737"),
        ("203.0.113.0/24", "a documentation address, RFC 5737"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved or broadcast address"),
    ))
_IPV6_REFUSED: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), what) for net, what in (
        ("::/128", "the unspecified address"),
        ("::1/128", "the loopback address"),
        # Where the IPv4 address sits in it is each network's choice: it cannot be mapped.
        ("64:ff9b:1::/48", "a local-use NAT64 address, RFC 8215"),
        ("::/8", "a reserved address (IPv4-compatible and other retired forms)"),
        ("100::/64", "a discard-only address, RFC 6666"),
        ("2001::/23", "an IETF protocol assignment"),
        ("2001:db8::/32", "a documentation address, RFC 3849"),
        ("3fff::/20", "a documentation address, RFC 9637"),
        ("fc00::/7", "a unique local address, RFC 4193"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address (retired)"),
        ("ff00::/8", "a multicast address"),
    ))
_IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_TEREDO = ipaddress.IPv6Network("2001::/32")


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
        return _global_ipv4(address)
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return _global_ipv4(embedded)
    _refuse_special_ipv6(address)
    # One subscriber usually owns a whole /64 and picks host bits at will, so the
    # prefix is the useful identifier.
    return str(ipaddress.IPv6Network((address, 64), strict=False))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when the whole address says it.

    IPv4-mapped (``::ffff:a.b.c.d``); the NAT64 well-known prefix (``64:ff9b::a.b.c.d``,
    RFC 6052: a translator shows an IPv4 client to an IPv6-only server this way); 6to4
    (``2002:AABB:CCDD::/48``, RFC 3056: the site's own IPv4 address); Teredo (RFC 4380:
    the client's public IPv4 address, de-obfuscated). Each becomes the IPv4 address, so
    the same client gives the same token whichever way a member saw it.
    """
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(address.packed[12:])
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _global_ipv4(address: ipaddress.IPv4Address) -> str:
    for network, what in _IPV4_REFUSED:
        if address in network:
            _refuse(str(network), what)
    return str(address)


def _refuse_special_ipv6(address: ipaddress.IPv6Address) -> None:
    for network, what in _IPV6_REFUSED:
        if address in network:
            _refuse(str(network), what)
    if address not in _IPV6_GLOBAL_UNICAST:
        _refuse(f"outside {_IPV6_GLOBAL_UNICAST}", "an unassigned address")


def _refuse(where: str, what: str) -> NoReturn:
    # "what" may end in ", RFC n": it goes after the range, inside the parentheses.
    kind, _, rfc = what.partition(", RFC ")
    source = f"{where}, RFC {rfc}" if rfc else where
    raise InvalidIdentifier(
        "ip", f"{kind} ({source}) is not one subscriber's address, and reporting it would "
              "flag everyone behind it; only globally routable addresses can be shared")


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
    address = network.network_address
    if address.sixtofour is not None:
        # The site's IPv4 address is inside the /64; Teredo, NAT64 and IPv4-mapped
        # addresses carry theirs in the host bits, which a /64 has dropped.
        return _global_ipv4(address.sixtofour)
    for embedding in (_TEREDO, _NAT64_WELL_KNOWN):
        if address in embedding:
            raise InvalidIdentifier("ip", f"a /64 in {embedding} has lost the IPv4 address "
                                          "it stands for; give the whole address")
    _refuse_special_ipv6(address)
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
    # The written form: "GUID|ACCOUNT" as qr_payee() writes it, or the same with the
    # escapes decoded and the sub-fields in any order. The canonical GUID never holds a
    # "|", so the first one ends it.
    guid, bar, account = text.partition("|")
    if not bar:
        raise InvalidIdentifier("qr_payee", "expected guid|account")
    guid = _qr_unescape(guid, "guid")
    account = _nfkc_strip(account)
    if not _nfkc_strip(guid) or not account:
        raise InvalidIdentifier("qr_payee", "guid and account must both be non-empty")
    store = _JPQR_STORE.fullmatch(account)
    if store is not None and _nfkc_strip(guid).translate(_QR_ASCII_LOWER) == _QR_JPQR_GUID:
        parts = [(sub_id, part) for (sub_id, _), part in zip(_QR_JPQR_PARTS, store.groups(),
                                                              strict=True)]
        return qr_payee(guid, parts)
    sub_fields = []
    for pair in account.split(";"):
        sub_id, equals, value = pair.partition("=")
        if not equals:
            raise InvalidIdentifier(
                "qr_payee", "account must be SUB_ID=VALUE pairs joined by ';' (write ';', '=' "
                "and '|' inside a value as %3B, %3D, %7C), or a 29-digit JPQR store ID")
        sub_fields.append((sub_id.strip(), _qr_unescape(value, f"sub-ID {sub_id.strip()}")))
    return qr_payee(guid, sub_fields)


def _qr_unescape(text: str, name: str) -> str:
    if _QR_BAD_ESCAPE.search(text):
        raise InvalidIdentifier("qr_payee", f"{name}: '%' must start a %XX escape (write "
                                "'%' itself as %25)")
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidIdentifier("qr_payee", f"{name}: %XX escapes are not UTF-8") from exc


_RULES: dict[str, Callable[[str, str], str]] = {
    "phone": _phone,
    "email": _email,
    "ip": _ip,
    "device_id": _device_id,
    "bank_account": _bank_account,
    "jpqr_store": _jpqr_store,
    "qr_payee": _qr_payee,
}
