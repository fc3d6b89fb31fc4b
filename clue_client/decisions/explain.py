"""Showing a decision to a person (``clue explain``) or a log (JSON)."""

from __future__ import annotations

import textwrap
from dataclasses import asdict
from typing import Any

from clue_client.decisions.models import Decision
from clue_client.decisions.policy import TIERS, Limits, Policy

__all__ = ["decision_json", "describe_limits", "policy_table", "render_decision"]

_RULE_WIDTH = 28
_TIER_WIDTH = 6
_WRAP = 100


def describe_limits(limits: Limits) -> str:
    return (f"per transaction {limits.per_transaction_jpy:,} JPY, daily {limits.daily_jpy:,} "
            f"JPY, monthly {limits.monthly_jpy:,} JPY, step-up auth "
            f"{'yes' if limits.step_up_auth else 'no'}, manual review "
            f"{'yes' if limits.manual_review else 'no'}")


def render_decision(decision: Decision) -> str:
    """A readable table: the tier and limits, each rule that fired and why, the reasons."""
    lines = [f"decision  {decision.tier.upper()}"
             + ("  (DEGRADED: CLUE did not answer)" if decision.degraded else ""),
             f"limits    {describe_limits(decision.limits)}"]
    if decision.within_limits is not None:
        lines.append(f"amount    {decision.amount_jpy:,} JPY: "
                     + ("within the per-transaction limit" if decision.within_limits
                        else "ABOVE the per-transaction limit"))
    lines.append("")
    indent = " " * (_RULE_WIDTH + _TIER_WIDTH + 2)
    lines.append(f"{'RULE':<{_RULE_WIDTH}} {'TIER':<{_TIER_WIDTH}} BECAUSE")
    if not decision.fired:
        lines.append(f"{'(none)':<{_RULE_WIDTH}} {'clear':<{_TIER_WIDTH}} no rule fired")
    for rule in decision.fired:
        because = list(rule.because) or [rule.description]
        first = True
        for text in because:
            wrapped = textwrap.wrap(text, _WRAP - len(indent)) or [""]
            for part in wrapped:
                head = (f"{rule.rule_id:<{_RULE_WIDTH}} {rule.tier:<{_TIER_WIDTH}} " if first
                        else indent)
                lines.append(head + part)
                first = False
    lines.append("")
    lines.append("reasons")
    for reason in decision.reasons:
        lines.extend(textwrap.wrap(reason, _WRAP, initial_indent="  - ",
                                   subsequent_indent="    "))
    return "\n".join(lines)


def decision_json(decision: Decision) -> dict[str, Any]:
    """The decision as JSON-ready data (no identifiers: only types and CLUE's answers)."""
    evidence = decision.evidence
    qr = evidence.qr
    return {
        "tier": decision.tier,
        "limits": asdict(decision.limits),
        "reasons": list(decision.reasons),
        "rules_fired": list(decision.rules_fired),
        "degraded": decision.degraded,
        "error": decision.error,
        "amount_jpy": decision.amount_jpy,
        "within_limits": decision.within_limits,
        "fired": [{"rule": f.rule_id, "tier": f.tier, "capped_from": f.capped_from,
                   "description": f.description, "because": list(f.because)}
                  for f in decision.fired],
        "evidence": {
            "today": evidence.today.isoformat() if evidence.today else None,
            "identifiers": [{"type": e.id_type, "matched": e.matched, "match": e.match,
                             "categories": list(e.categories), "reporters": e.reporters,
                             "days_since_first": e.days_since_first,
                             "days_since_last": e.days_since_last,
                             "reported_by_me": e.reported_by_me, "from_qr": e.from_qr,
                             "disputed": e.disputed}
                            for e in evidence.identifiers],
            "unchecked": [{"type": t, "why": why} for t, why in evidence.unchecked],
            "qr": None if qr is None else {"flags": sorted(qr.flags),
                                           "error_code": qr.error_code,
                                           "store_id": qr.store_id, "payees": qr.payees,
                                           "warnings": list(qr.warnings)},
        },
    }


def policy_table(policy: Policy) -> str:
    """A summary of a policy: tiers with their limits, then the rules in order."""
    lines = [f"policy {policy.name or '(unnamed)'}: {len(policy.rules)} rule(s); fallback "
             f"{policy.fallback.tier} after {policy.fallback.timeout_ms} ms; disputed "
             f"answers alone give at most {policy.disputed_max_tier}"]
    lines.extend(f"  {tier:<6} {describe_limits(policy.tiers[tier])}" for tier in TIERS)
    lines.extend(f"  rule {rule.id} -> {rule.tier}" for rule in policy.rules)
    return "\n".join(lines)
