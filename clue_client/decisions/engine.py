"""Evidence in, decision out: a pure function of the policy and the evidence.

No clock, no network, no randomness: the same policy and evidence always give
the same decision with the same reasons in the same order.

    >>> from clue_client.decisions import Evidence, IdentifierEvidence, decide, load_policy
    >>> phone = IdentifierEvidence("phone", True, "exact", ("card_theft",), 2,
    ...                            days_since_last=12)
    >>> decision = decide(load_policy(), Evidence((phone,)))
    >>> decision.tier, decision.rules_fired[0]
    ('high', 'account-fraud-recent')
    >>> decision.reasons[0]
    'phone reported by 2 members for card_theft, last 12 days ago'
"""

from __future__ import annotations

from dataclasses import replace

from clue_client.decisions.models import Decision, Evidence, FiredRule, IdentifierEvidence
from clue_client.decisions.policy import QR_FLAGS, TIERS, Fallback, Policy, Rule

__all__ = ["FALLBACK_RULE", "decide", "decide_degraded"]

FALLBACK_RULE = "fallback"
"""The id in ``rules_fired`` of a decision made without CLUE's answer."""


def decide(policy: Policy, evidence: Evidence) -> Decision:
    """The strictest tier any rule gives (``clear`` when none fires), with its reasons.

    Disputed answers (an open dispute contests the report) count like any other, but a
    rule that would not fire without them gives at most the policy's
    ``disputed_max_tier``, unless the rule names ``disputed`` itself.
    """
    undisputed = _without_disputed(evidence)
    fired = []
    for rule in policy.rules:
        hit = _fire(rule, evidence)
        if hit is None:
            continue
        cap = policy.disputed_max_tier
        if (undisputed is not None and rule.disputed is None
                and TIERS.index(rule.tier) > TIERS.index(cap)
                and _fire(rule, undisputed) is None):
            hit = replace(hit, tier=cap, capped_from=rule.tier, because=(
                *hit.because, f"{rule.id} gives {rule.tier}, but only because of answers an "
                f"open dispute contests: capped at {cap}"))
        fired.append(hit)
    # Strictest first; rules of one tier keep their order in the policy file.
    fired.sort(key=lambda f: -TIERS.index(f.tier))
    tier = fired[0].tier if fired else "clear"
    reasons = (*_reasons(fired, evidence), *_amount_reason(evidence, tier, policy))
    return Decision(tier=tier, limits=policy.tiers[tier], reasons=reasons,
                    rules_fired=tuple(f.rule_id for f in fired), evidence=evidence,
                    fired=tuple(fired))


def decide_degraded(policy: Policy, evidence: Evidence, fallback: Fallback,
                    error: str) -> Decision:
    """The decision when CLUE could not answer: the fallback tier, or stricter if what
    is known without CLUE (cached answers, an invalid QR payload) says so."""
    known = decide(policy, evidence)
    fallback_rule = FiredRule(FALLBACK_RULE, fallback.tier,
                              f"CLUE could not answer; the configured fallback is "
                              f"{fallback.tier!r}", (error,))
    if TIERS.index(known.tier) > TIERS.index(fallback.tier):
        tier, fired = known.tier, (*known.fired, fallback_rule)
    else:
        tier, fired = fallback.tier, (fallback_rule, *known.fired)
    reasons = (f"CLUE unavailable ({error}): fallback tier {fallback.tier}",
               *_reasons(list(known.fired), evidence), *_amount_reason(evidence, tier, policy))
    return Decision(tier=tier, limits=policy.tiers[tier], reasons=reasons,
                    rules_fired=tuple(f.rule_id for f in fired), degraded=True,
                    evidence=evidence, fired=fired, error=error)


def _satisfies(rule: Rule, e: IdentifierEvidence) -> bool:
    if not e.matched:
        return False
    if rule.types is not None and e.id_type not in rule.types:
        return False
    if rule.categories is not None and not rule.categories.intersection(e.categories):
        return False
    if rule.match != "any" and e.match != rule.match:
        return False
    if e.reporters < rule.min_reporters:
        return False
    if rule.disputed is not None and e.disputed != rule.disputed:
        return False
    if rule.max_days_since_last is not None and (
            e.days_since_last is None or e.days_since_last > rule.max_days_since_last):
        return False
    return rule.reported_by_me is None or e.reported_by_me == rule.reported_by_me


def _fire(rule: Rule, evidence: Evidence) -> FiredRule | None:
    because: list[str] = []
    if rule.checks_identifiers:
        hits = [e for e in evidence.identifiers if _satisfies(rule, e)]
        if len({e.id_type for e in hits}) < rule.min_matched_types:
            return None
        because.extend(e.describe() for e in hits)
    if rule.qr_flags is not None:
        flags = [f for f in QR_FLAGS if f in rule.qr_flags and f in evidence.qr_flags]
        if not flags or evidence.qr is None:
            return None
        because.extend(evidence.qr.describe(f, evidence.identifiers) for f in flags)
    return FiredRule(rule.id, rule.tier, rule.description, tuple(because))


def _without_disputed(evidence: Evidence) -> Evidence | None:
    """The evidence with every disputed answer taken out, and the QR flags that rested
    only on them; ``None`` when nothing is disputed."""
    disputed = [e for e in evidence.identifiers if e.matched and e.disputed]
    if not disputed:
        return None
    qr = evidence.qr
    if qr is not None:
        flags = set(qr.flags)
        for flag, id_type in (("payee_reported", "qr_payee"),
                              ("store_swap_reported", "jpqr_store")):
            behind = [e for e in evidence.identifiers
                      if e.from_qr and e.matched and e.id_type == id_type]
            if behind and all(e.disputed for e in behind):
                flags.discard(flag)
        qr = replace(qr, flags=frozenset(flags))
    return replace(evidence, qr=qr, identifiers=tuple(
        e for e in evidence.identifiers if not (e.matched and e.disputed)))


def _reasons(fired: list[FiredRule], evidence: Evidence) -> tuple[str, ...]:
    reasons: list[str] = []
    for rule in fired:
        reasons.extend(r for r in rule.because if r not in reasons)
    cited = " ".join(reasons)
    for e in evidence.matched:
        text = e.describe()
        if text not in cited:
            reasons.append(f"{text} (no rule applies)")
    if evidence.qr is not None:
        for flag in QR_FLAGS:
            text = evidence.qr.describe(flag, evidence.identifiers)
            if flag in evidence.qr.flags and text not in cited:
                reasons.append(f"{text} (no rule applies)")
        reasons.extend(evidence.qr.describe_warning(w) for w in evidence.qr.warnings)
    if not evidence.matched and evidence.identifiers:
        checked = ", ".join(dict.fromkeys(e.id_type for e in evidence.identifiers))
        reasons.append(f"nothing reported for {checked}")
    if not reasons and not evidence.unchecked:
        reasons.append("nothing reported")
    # One line per distinct reason: a code's three payees unchecked is one fact.
    reasons.extend(dict.fromkeys(f"{id_type} not checked: {why}"
                                 for id_type, why in evidence.unchecked))
    return tuple(reasons)


def _amount_reason(evidence: Evidence, tier: str, policy: Policy) -> tuple[str, ...]:
    amount = evidence.amount_jpy
    limits = policy.tiers[tier]
    if amount is None or limits.allows(amount):
        return ()
    text = (f"amount {amount:,} JPY is above the {tier}-tier per-transaction limit of "
            f"{limits.per_transaction_jpy:,} JPY")
    return (text,)
