"""Risk decisions: turn CLUE's answers into a tier, limits and reasons.

    >>> from clue_client import ClueClient
    >>> from clue_client.decisions import LookupCache
    >>> client = ClueClient.from_config(policy="risk-policy.toml",      # doctest: +SKIP
    ...                                 cache=LookupCache(ttl=30))
    >>> decision = client.check_signup(phone="090-1234-5678",           # doctest: +SKIP
    ...                                email="taro@example.jp")
    >>> decision.tier, decision.limits.daily_jpy, decision.reasons      # doctest: +SKIP
    ('watch', 100000, ('phone reported by 1 member for other, last 200 days ago',))

A decision is a pure function of the policy and the evidence (:func:`decide`);
the policy is a validated TOML file (:func:`load_policy`, ``default_policy.toml``).
When CLUE cannot answer in time the check returns the policy's fallback decision
with ``degraded=True`` instead of raising, unless the client was made with
``strict=True``. See docs/decisions.md.
"""

from clue_client.decisions.cache import LookupCache
from clue_client.decisions.engine import FALLBACK_RULE, decide, decide_degraded
from clue_client.decisions.models import (
    Decision,
    Evidence,
    FiredRule,
    IdentifierEvidence,
    QrEvidence,
)
from clue_client.decisions.policy import (
    QR_FLAGS,
    TIERS,
    Fallback,
    Limits,
    Policy,
    PolicyError,
    Rule,
    load_policy,
    parse_policy,
)
from clue_client.decisions.qrscan import QrUnavailable

__all__ = [
    "FALLBACK_RULE",
    "QR_FLAGS",
    "TIERS",
    "Decision",
    "Evidence",
    "Fallback",
    "FiredRule",
    "IdentifierEvidence",
    "Limits",
    "LookupCache",
    "Policy",
    "PolicyError",
    "QrEvidence",
    "QrUnavailable",
    "Rule",
    "decide",
    "decide_degraded",
    "load_policy",
    "parse_policy",
]
