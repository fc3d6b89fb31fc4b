"""What a check returns: a :class:`Decision` and the :class:`Evidence` behind it.

All frozen dataclasses. None of them holds a raw identifier, its canonical form or
its token: evidence is per identifier *type* (the answer CLUE gave for it), so a
decision can be logged or stored with the account without leaking what was checked.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from clue_client.decisions.policy import Limits
from clue_client.models import LookupResult

__all__ = ["Decision", "Evidence", "FiredRule", "IdentifierEvidence", "QrEvidence"]

_TYPE_NAMES = {"qr_payee": "QR payee", "jpqr_store": "JPQR store", "ip": "IP address",
               "device_id": "device", "bank_account": "bank account"}


@dataclass(frozen=True)
class IdentifierEvidence:
    """CLUE's answer for one identifier, with its age relative to the decision's day."""

    id_type: str
    matched: bool
    match: str | None = None
    categories: tuple[str, ...] = ()
    reporters: int = 0
    days_since_first: int | None = None
    days_since_last: int | None = None
    reported_by_me: bool = False
    from_qr: bool = False
    """Looked up because a scanned QR code named it (``qr_payee`` / ``jpqr_store``)."""
    disputed: bool = False
    """An open dispute covers a matching report: the data subject contests it
    (docs/disputes.md). The policy's ``[disputed]`` cap and ``disputed`` condition read it."""

    @classmethod
    def from_lookup(cls, result: LookupResult, today: dt.date, *,
                    from_qr: bool = False) -> IdentifierEvidence:
        return cls(
            id_type=result.id_type, matched=result.matched, match=result.match,
            categories=result.categories, reporters=result.reporters,
            days_since_first=_days(today, result.first_reported),
            days_since_last=_days(today, result.last_reported),
            reported_by_me=result.reported_by_me, from_qr=from_qr,
            disputed=result.matched and result.disputed,
        )

    def describe(self) -> str:
        """``"phone reported by 2 members for card_theft, last 12 days ago"``."""
        name = _TYPE_NAMES.get(self.id_type, self.id_type)
        if not self.matched:
            return f"{name} not reported"
        if self.match == "folded":
            name += " (folded match: same address apart from +tag or gmail dots)"
        members = "1 member" if self.reporters == 1 else f"{self.reporters} members"
        text = f"{name} reported by {members}"
        if self.categories:
            text += f" for {', '.join(self.categories)}"
        if self.days_since_last is not None:
            text += f", last {_ago(self.days_since_last)}"
        if self.reported_by_me:
            text += "; you reported it" + (" too" if self.reporters > 1 else "")
        if self.disputed:
            text += "; disputed (an open dispute contests it)"
        return text


@dataclass(frozen=True)
class QrEvidence:
    """What a scanned QR code showed: local flags plus what CLUE said of its payee/store."""

    flags: frozenset[str] = frozenset()
    error_code: str | None = None
    store_id: str | None = None
    """The 29-digit unified store ID (not personal data: it is printed on the sticker);
    look the merchant up in your own registry by it."""
    payees: int = 0
    """How many payees (merchant-account templates) the code names."""
    warnings: tuple[str, ...] = ()
    """EMV deviations a genuine code may ship (``clue_client.qr.WARNINGS`` codes, e.g.
    ``no_merchant_category``): information, never a reason to distrust the code."""

    def describe(self, flag: str, identifiers: tuple[IdentifierEvidence, ...]) -> str:
        if flag == "invalid_payload":
            return f"QR code is not a valid merchant-presented code ({self.error_code})"
        if flag == "not_static":
            return "QR code is dynamic, not a printed (static) sticker"
        if flag == "not_jpqr":
            return "QR code is not a JPQR code (no jp.or.paymentsjapan store ID)"
        if flag == "payee_reported":
            hits = [e.describe() for e in identifiers if e.id_type == "qr_payee" and e.matched]
            return "QR code pays a reported payee: " + "; ".join(hits)
        if flag == "store_swap_reported":
            hits = [e.describe() for e in identifiers
                    if e.id_type == "jpqr_store" and e.matched]
            return (f"sticker swap reported at store {self.store_id}: confirm the merchant "
                    "name from your own registry, not the name in the code (" +
                    "; ".join(hits) + ")")
        return f"QR flag {flag}"

    def describe_warning(self, code: str) -> str:
        """``"QR code warning: no merchant category code (ID 52), ..."``."""
        try:
            from clue_client.qr import WARNINGS
        except ImportError:  # the parser hook (see qrscan): the code alone still says it
            return f"QR code warning: {code}"
        return f"QR code warning: {WARNINGS[code][1] if code in WARNINGS else code}"


@dataclass(frozen=True)
class Evidence:
    """Everything a decision was made from."""

    identifiers: tuple[IdentifierEvidence, ...] = ()
    """CLUE's answers, in the order asked (account identifiers, then QR payees/store)."""
    qr: QrEvidence | None = None
    """``None`` when no QR payload was given."""
    unchecked: tuple[tuple[str, str], ...] = ()
    """``(type, why)`` for identifiers given but not looked up (invalid, CLUE unavailable)."""
    today: dt.date | None = None
    """The day ages were counted from."""
    amount_jpy: int | None = None

    @property
    def qr_flags(self) -> frozenset[str]:
        return self.qr.flags if self.qr else frozenset()

    @property
    def matched(self) -> tuple[IdentifierEvidence, ...]:
        return tuple(e for e in self.identifiers if e.matched)


@dataclass(frozen=True)
class FiredRule:
    """One rule that fired, with the evidence that made it fire."""

    rule_id: str
    tier: str
    description: str
    because: tuple[str, ...]
    capped_from: str | None = None
    """The rule's own tier when the policy's ``[disputed]`` cap lowered it to ``tier``:
    the rule fired only because of answers an open dispute contests."""


@dataclass(frozen=True)
class Decision:
    """What to do with this signup or payment, and why.

    ``tier`` is ``"clear"``, ``"watch"``, ``"high"`` or ``"block"``; ``limits`` are the
    policy's limits for it. ``reasons`` are human sentences (``"phone reported by 2
    members for card_theft, last 12 days ago"``); ``rules_fired`` the ids of every
    rule that fired, strictest tier first and in file order within a tier
    (``"fallback"`` when CLUE could not answer). ``degraded`` is true when the
    decision was made without CLUE's full answer; ``error`` then says why.
    """

    tier: str
    limits: Limits
    reasons: tuple[str, ...]
    rules_fired: tuple[str, ...]
    degraded: bool = False
    evidence: Evidence = field(default_factory=Evidence)
    fired: tuple[FiredRule, ...] = ()
    error: str | None = None

    @property
    def amount_jpy(self) -> int | None:
        return self.evidence.amount_jpy

    @property
    def within_limits(self) -> bool | None:
        """Whether ``amount_jpy`` fits the tier's per-transaction cap (``None``: no amount)."""
        amount = self.evidence.amount_jpy
        return None if amount is None else self.limits.allows(amount)

    @property
    def blocked(self) -> bool:
        return self.tier == "block"


def _days(today: dt.date, day: dt.date | None) -> int | None:
    # A report dated after "today" (clock skew between us and the server) counts as today.
    return None if day is None else max(0, (today - day).days)


def _ago(days: int) -> str:
    if days == 0:
        return "today"
    return "1 day ago" if days == 1 else f"{days} days ago"
