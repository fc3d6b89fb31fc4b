"""Static QR sticker swaps: report a forged code, check a scanned one.

The payload never leaves the member: it is parsed here (:mod:`clue_client.qr`)
and only the tokens of its payee (``qr_payee``) and store (``jpqr_store``) are
sent. A check is a decision (:meth:`DecisionService.check_qr`): one round trip,
without retries, within the policy's time budget (``fallback.timeout_ms``) or the
call's own ``timeout=``, the same for :class:`~clue_client.ClueClient` and
:class:`~clue_client.AsyncClueClient`. Cached answers are used and still block.

    >>> check = client.check_static_qr(scanned)          # doctest: +SKIP
    >>> if check.block: refuse_payment(check.reasons)    # doctest: +SKIP
    >>> elif check.confirm_merchant: show_registry_name(check.store_id)  # doctest: +SKIP

When CLUE cannot answer in time the check does not raise (unless the client was made
with ``strict=True``): the local checks (CRC, structure, static/JPQR) still hold, the
payee and store flags are unknown, and ``degraded`` is set; ``block`` and
``confirm_merchant`` then follow the policy's fallback tier. See docs/sticker-swaps.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clue_client import canonical
from clue_client.decisions.models import QrEvidence
from clue_client.errors import InvalidIdentifier
from clue_client.models import LookupResult, ReportInput
from clue_client.qr import MpmError, parse_mpm, payees_of

if TYPE_CHECKING:
    from clue_client.decisions import Decision

CATEGORY = "sticker_swap"
JPQR_GUID = "jp.or.paymentsjapan"


@dataclass(frozen=True)
class QrCheck:
    """What a scanned static code shows, decided by the client's policy.

    ``flags``: ``invalid_payload`` (see ``error_code``), ``not_static`` (ID 01 says
    dynamic), ``not_jpqr``, ``payee_reported``, ``store_swap_reported``.
    ``warnings``: EMV deviations genuine codes ship (``clue_client.qr.WARNINGS`` codes:
    ``no_merchant_category``, ``no_point_of_initiation``, ``payload_format_02``, ...);
    never a reason to block. ``degraded``: CLUE did not answer in time (``error`` says
    why), so the payee and store flags are unknown.

    ``tier`` is the policy's decision on the code alone; ``block`` is the ``block``
    tier (default policy: an invalid payload or a reported payee), ``confirm_merchant``
    the ``watch`` and ``high`` tiers (default policy: a swap reported at the store, a
    disputed payee, or a degraded check): show the merchant name that *your own*
    merchant registry has for the payee or ``store_id``, never the name printed in the
    code, and ask the user to confirm it.
    """

    flags: frozenset[str]
    reasons: tuple[str, ...]
    error_code: str | None = None
    store_id: str | None = None
    payees: tuple[LookupResult, ...] = ()
    store: LookupResult | None = None
    warnings: tuple[str, ...] = ()
    tier: str = "clear"
    degraded: bool = False
    error: str | None = None
    decision: Decision | None = None

    @property
    def block(self) -> bool:
        return self.tier == "block"

    @property
    def confirm_merchant(self) -> bool:
        return self.tier in ("watch", "high")


def qr_check(decision: Decision, answers: Sequence[LookupResult]) -> QrCheck:
    """A scanned code's check from :meth:`DecisionService.check_qr`'s decision and answers
    (the clients' ``check_static_qr`` run that, sync or awaited, then this)."""
    qr = decision.evidence.qr or QrEvidence()  # None only if the parser hook is missing
    return QrCheck(
        flags=qr.flags, reasons=decision.reasons, error_code=qr.error_code,
        store_id=qr.store_id, payees=tuple(r for r in answers if r.id_type == "qr_payee"),
        store=next((r for r in answers if r.id_type == "jpqr_store"), None),
        warnings=qr.warnings, tier=decision.tier, degraded=decision.degraded,
        error=decision.error, decision=decision)


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
