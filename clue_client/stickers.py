"""Static QR sticker swaps: report a forged code, check a scanned one.

The payload never leaves the member: it is parsed here (:mod:`clue_client.qr`)
and only the tokens of its payee (``qr_payee``) and store (``jpqr_store``) are
sent. One round trip per check.

    >>> check = client.check_static_qr(scanned)          # doctest: +SKIP
    >>> if check.block: refuse_payment(check.reasons)    # doctest: +SKIP
    >>> elif check.confirm_merchant: show_registry_name(check.store_id)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

from clue_client import canonical
from clue_client.decisions.qrscan import ScannedQr
from clue_client.errors import InvalidIdentifier
from clue_client.models import LookupResult, ReportInput
from clue_client.qr import MpmError, parse_mpm, payees_of

CATEGORY = "sticker_swap"
JPQR_GUID = "jp.or.paymentsjapan"


@dataclass(frozen=True)
class QrCheck:
    """What a scanned static code shows.

    ``flags``: ``invalid_payload`` (see ``error_code``), ``not_static``, ``not_jpqr``,
    ``payee_reported`` (block the payment), ``store_swap_reported`` (ask the user to
    confirm the merchant name that *your own* merchant registry has for ``store_id``,
    never the name printed in the code), ``unchecked`` (CLUE could not be asked in
    time: ``degraded`` is set, ``error`` says why, and ``block`` follows the client's
    fallback tier: only a fail-closed ``block`` fallback blocks).
    """

    flags: frozenset[str]
    reasons: tuple[str, ...]
    error_code: str | None = None
    store_id: str | None = None
    payees: tuple[LookupResult, ...] = ()
    store: LookupResult | None = None
    degraded: bool = False
    #: The fallback tier applied when ``degraded`` (the client's ``fallback``).
    fallback: str | None = None
    error: str | None = None

    @property
    def block(self) -> bool:
        return ("payee_reported" in self.flags or "invalid_payload" in self.flags
                or (self.degraded and self.fallback == "block"))

    @property
    def confirm_merchant(self) -> bool:
        return "store_swap_reported" in self.flags


def invalid_check(scan: ScannedQr) -> QrCheck:
    """An unparseable payload: blocked with no network call."""
    return QrCheck(scan.flags, (f"not a valid merchant-presented code ({scan.error_code})",),
                   error_code=scan.error_code)


def qr_asks(scan: ScannedQr) -> list[tuple[str, str]]:
    """The identifiers to look up for a scanned code: its payees, then its store."""
    asks = [("qr_payee", payee) for payee in scan.payees]
    if scan.store_id:
        asks.append(("jpqr_store", scan.store_id))
    return asks


def _local_reasons(flags: set[str]) -> list[str]:
    reasons = []
    if "not_static" in flags:
        reasons.append("dynamic code: not a printed static sticker")
    if "not_jpqr" in flags:
        reasons.append("no JPQR unified store ID in the code")
    return reasons


def qr_check(scan: ScannedQr, results: list[LookupResult]) -> QrCheck:
    """The flags of a scanned code from CLUE's answers for :func:`qr_asks`."""
    payee_results = tuple(r for r in results if r.id_type == "qr_payee")
    store = next((r for r in results if r.id_type == "jpqr_store"), None)
    flags = set(scan.flags)
    reasons = _local_reasons(flags)
    for result in payee_results:
        if result.matched:
            flags.add("payee_reported")
            reasons.append(f"payee reported by {result.reporters} member(s) for "
                           f"{', '.join(result.categories)}; last {result.last_reported}")
    if store is not None and store.matched:
        flags.add("store_swap_reported")
        reasons.append(f"sticker swap reported at store {scan.store_id} by {store.reporters} "
                       f"member(s), last {store.last_reported}: confirm the merchant name "
                       "from your own registry")
    return QrCheck(frozenset(flags), tuple(reasons), store_id=scan.store_id,
                   payees=payee_results, store=store)


def unchecked(scan: ScannedQr, problem: str, fallback_tier: str) -> QrCheck:
    """CLUE could not answer: the local flags, ``unchecked``, and the fallback tier."""
    flags = set(scan.flags) | {"unchecked"}
    reasons = _local_reasons(flags)
    reasons.append(f"CLUE unavailable ({problem}): payee and store not checked; "
                   f"fallback {fallback_tier}")
    return QrCheck(frozenset(flags), tuple(reasons), store_id=scan.store_id, degraded=True,
                   fallback=fallback_tier, error=problem)


def swap_report_items(forged_payload: str, *, genuine_store_id: str | None = None,
                      note: str | None = None) -> list[ReportInput]:
    """What to register for a forged code: its payee(s) and, when known, the genuine store.

    The forged code must parse (its CRC and structure are what a scanner reads);
    ``genuine_store_id`` is the 29-digit unified store ID of the shop whose sticker was
    covered. All in one all-or-nothing request, category ``sticker_swap``.
    """
    try:
        code = parse_mpm(forged_payload)
    except MpmError as exc:
        raise InvalidIdentifier("qr_payee", f"the forged payload does not parse: {exc}") from exc
    store = (canonical.canonicalize("jpqr_store", genuine_store_id)
             if genuine_store_id is not None else None)
    payees = payees_of(code)
    # A forger usually keeps the shop's JPQR block (the unified store ID) and adds or
    # swaps the account that gets the money: that account is the payee to report. The
    # store ID it claims is the payee only when the code names nothing else, and never
    # when it is the genuine store's own ID.
    accounts = [p for p in payees if p[0] != JPQR_GUID] or [
        p for p in payees if p[0] == JPQR_GUID and p[1] != store]
    if not accounts:
        raise InvalidIdentifier("qr_payee", "the code names no payee other than the genuine "
                                "store (no merchant-account template 26-51 with a GUID)")
    items = [ReportInput("qr_payee", f"{guid}|{account}", CATEGORY, note=note)
             for guid, account in accounts]
    if store is not None:
        items.append(ReportInput("jpqr_store", store, CATEGORY, note=note))
    return items
