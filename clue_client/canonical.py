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
from collections.abc import Callable
from typing import NoReturn

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
