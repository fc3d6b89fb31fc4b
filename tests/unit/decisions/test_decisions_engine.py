"""The engine: evidence in, decision out, under the default policy and custom ones."""

from __future__ import annotations

import datetime as dt

import pytest

from clue_client.decisions import (
    Evidence,
    Fallback,
    IdentifierEvidence,
    Limits,
    QrEvidence,
    decide,
    decide_degraded,
    load_policy,
    parse_policy,
)
from clue_client.decisions.explain import decision_json, render_decision
from clue_client.models import LookupResult
from tests.unit.decisions.test_decisions_policy import TIERS_TOML

DEFAULT = load_policy()

# The default policy's limits, written out: a change to default_policy.toml must be
# deliberate (and documented in docs/decisions.md).
DEFAULT_LIMITS = {
    "clear": Limits(500_000, 1_000_000, 3_000_000, step_up_auth=False, manual_review=False),
    "watch": Limits(50_000, 100_000, 300_000, step_up_auth=True, manual_review=False),
    "high": Limits(10_000, 20_000, 50_000, step_up_auth=True, manual_review=True),
    "block": Limits(0, 0, 0, step_up_auth=True, manual_review=True),
}


def hit(id_type: str = "phone", *categories: str, match: str = "exact", reporters: int = 1,
        days: int = 200, by_me: bool = False, from_qr: bool = False,
        disputed: bool = False) -> IdentifierEvidence:
    return IdentifierEvidence(id_type, True, match, categories or ("other",), reporters,
                              days_since_first=days, days_since_last=days,
                              reported_by_me=by_me, from_qr=from_qr, disputed=disputed)


def miss(id_type: str) -> IdentifierEvidence:
    return IdentifierEvidence(id_type, False)


def qr(*flags: str, store_id: str | None = None) -> QrEvidence:
    return QrEvidence(frozenset(flags), error_code="crc_mismatch" if "invalid_payload" in flags
                      else None, store_id=store_id)


CASES = [
    # (name, evidence, tier, first rule fired)
    ("nothing reported", Evidence((miss("phone"), miss("email"))), "clear", None),
    ("an old IP only", Evidence((hit("ip", days=45),)), "clear", None),
    ("a valid unreported sticker", Evidence(qr=qr()), "clear", None),
    ("a dynamic, non-JPQR code alone", Evidence(qr=qr("not_static", "not_jpqr")), "clear",
     None),
    ("one old report of one identifier", Evidence((hit("phone", "fictitious_transaction"),)),
     "watch", "identifier-reported"),
    ("a folded e-mail match, even recent fraud",
     Evidence((hit("email", "phishing", match="folded", days=3),)), "watch",
     "identifier-reported"),
    ("a recent IP", Evidence((hit("ip", "phishing", days=10),)), "watch", "ip-reported-recent"),
    ("a sticker swap at the store",
     Evidence((hit("jpqr_store", "sticker_swap", days=2, from_qr=True),),
              qr("store_swap_reported", store_id="0" * 29)), "watch",
     "qr-store-swap-reported"),
    ("recent account-level fraud",
     Evidence((hit("phone", "card_theft", reporters=2, days=12),)), "high",
     "account-fraud-recent"),
    ("two members, long ago", Evidence((hit("bank_account", reporters=2, days=300),)), "high",
     "corroborated"),
    ("two identifier types, long ago", Evidence((hit("phone"), hit("email"))), "high",
     "several-identifiers"),
    ("three members, but over a year ago", Evidence((hit("device_id", reporters=3, days=400),)),
     "high", "corroborated"),
    ("three members within a year", Evidence((hit("device_id", reporters=3, days=100),)),
     "block", "corroborated-recent"),
    ("two identifier types within 90 days",
     Evidence((hit("phone", days=30), hit("device_id", days=60), miss("email"))), "block",
     "several-identifiers-recent"),
    ("an invalid QR payload", Evidence((miss("phone"),), qr("invalid_payload")), "block",
     "qr-invalid"),
    ("a reported QR payee",
     Evidence((hit("qr_payee", "sticker_swap", days=1, from_qr=True),),
              qr("payee_reported")), "block", "qr-payee-reported"),
]


@pytest.mark.parametrize(("evidence", "tier", "first_rule"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_default_policy_table(evidence, tier, first_rule):
    decision = decide(DEFAULT, evidence)
    assert decision.tier == tier
    assert decision.limits == DEFAULT_LIMITS[tier] == DEFAULT.tiers[tier]
    assert (decision.rules_fired[0] if decision.rules_fired else None) == first_rule
    assert not decision.degraded and decision.error is None
    assert decision.reasons  # never a bare tier
    assert decision.evidence is evidence


def test_every_tier_is_reachable_with_the_default_policy():
    assert {c[2] for c in CASES} == set(DEFAULT_LIMITS)


def test_reasons_read_like_the_issue_says():
    decision = decide(DEFAULT, Evidence((hit("phone", "card_theft", reporters=2, days=12),
                                         miss("email"))))
    assert decision.reasons == ("phone reported by 2 members for card_theft, last 12 days ago",)
    assert decision.rules_fired == ("account-fraud-recent", "corroborated",
                                    "identifier-reported")
    assert [f.tier for f in decision.fired] == ["high", "high", "watch"]
    assert decision.fired[0].because == decision.reasons


def test_rules_fired_are_strictest_first_then_in_file_order():
    decision = decide(DEFAULT, Evidence((hit("phone", "card_theft", reporters=3, days=5),
                                         hit("email", "phishing", days=5))))
    assert decision.tier == "block"
    assert decision.rules_fired == (
        "corroborated-recent", "several-identifiers-recent",  # block, in file order
        "account-fraud-recent", "corroborated", "several-identifiers",  # high
        "identifier-reported",  # watch
    )
    assert decision.reasons == (
        "phone reported by 3 members for card_theft, last 5 days ago",
        "email reported by 1 member for phishing, last 5 days ago",
    )


def test_decisions_are_deterministic():
    evidence = Evidence((hit("email", "phishing", days=3), hit("ip", days=1)),
                        qr("store_swap_reported"))
    assert decide(DEFAULT, evidence) == decide(DEFAULT, evidence)


def test_a_match_no_rule_covers_is_still_explained():
    decision = decide(DEFAULT, Evidence((hit("ip", "phishing", days=45),)))
    assert decision.tier == "clear"
    assert decision.reasons == (
        "IP address reported by 1 member for phishing, last 45 days ago (no rule applies)",)


def test_nothing_reported_says_what_was_checked():
    decision = decide(DEFAULT, Evidence((miss("phone"), miss("email")),
                                        unchecked=(("ip", "invalid IP address"),)))
    assert decision.reasons == ("nothing reported for phone, email",
                                "ip not checked: invalid IP address")


@pytest.mark.parametrize(("evidence", "text"), [
    (hit("phone", "card_theft", reporters=2, days=12),
     "phone reported by 2 members for card_theft, last 12 days ago"),
    (hit("email", "phishing", "other", match="folded", days=0),
     "email (folded match: same address apart from +tag or gmail dots) reported by 1 member "
     "for phishing, other, last today"),
    (hit("device_id", days=1, by_me=True), "device reported by 1 member for other, last 1 day "
     "ago; you reported it"),
    (hit("bank_account", reporters=4, by_me=True),
     "bank account reported by 4 members for other, last 200 days ago; you reported it too"),
    (miss("ip"), "IP address not reported"),
])
def test_identifier_descriptions(evidence, text):
    assert evidence.describe() == text


def test_qr_reasons_say_what_to_do():
    payee = decide(DEFAULT, Evidence((hit("qr_payee", "sticker_swap", days=3, from_qr=True),),
                                     qr("payee_reported")))
    assert payee.reasons == ("QR code pays a reported payee: QR payee reported by 1 member for "
                             "sticker_swap, last 3 days ago",)
    store = decide(DEFAULT, Evidence((hit("jpqr_store", "sticker_swap", days=3,
                                          from_qr=True),),
                                     qr("store_swap_reported", store_id="1" * 29)))
    assert store.reasons[0].startswith(f"sticker swap reported at store {'1' * 29}: confirm "
                                       "the merchant name from your own registry")
    invalid = decide(DEFAULT, Evidence(qr=qr("invalid_payload")))
    assert invalid.reasons == ("QR code is not a valid merchant-presented code (crc_mismatch)",)


def test_ages_are_counted_from_the_given_day():
    today = dt.date(2025, 3, 1)
    result = LookupResult("phone", True, "exact", ("card_theft",), 1,
                          first_reported=dt.date(2025, 1, 1),
                          last_reported=dt.date(2025, 2, 17))
    evidence = IdentifierEvidence.from_lookup(result, today)
    assert (evidence.days_since_first, evidence.days_since_last) == (59, 12)
    # a report "from tomorrow" (clocks differ) is today's
    skewed = IdentifierEvidence.from_lookup(
        LookupResult("phone", True, "exact", ("other",), 1, last_reported=dt.date(2025, 3, 2)),
        today)
    assert skewed.days_since_last == 0
    # recency moves a decision as days pass: card_theft 12 days ago is high, 91 is watch
    assert decide(DEFAULT, Evidence((evidence,))).tier == "high"
    later = IdentifierEvidence.from_lookup(result, today + dt.timedelta(days=79))
    assert later.days_since_last == 91
    assert decide(DEFAULT, Evidence((later,))).tier == "watch"


def test_amount_against_the_tier_limit():
    ok = decide(DEFAULT, Evidence((miss("phone"),), amount_jpy=500_000))
    assert (ok.amount_jpy, ok.within_limits) == (500_000, True)
    over = decide(DEFAULT, Evidence((hit("phone"),), amount_jpy=60_000))
    assert over.tier == "watch" and over.within_limits is False
    assert over.reasons[-1] == ("amount 60,000 JPY is above the watch-tier per-transaction "
                                "limit of 50,000 JPY")
    assert decide(DEFAULT, Evidence((miss("phone"),))).within_limits is None


# -- degraded decisions ---------------------------------------------------------------------


def test_degraded_decision_uses_the_fallback_tier():
    decision = decide_degraded(DEFAULT, Evidence(unchecked=(("phone", "CLUE unavailable"),)),
                               Fallback(), "TransportError: connection refused")
    assert decision.tier == "watch" and decision.degraded
    assert decision.limits == DEFAULT_LIMITS["watch"]
    assert decision.rules_fired == ("fallback",)
    assert decision.error == "TransportError: connection refused"
    assert decision.reasons == (
        "CLUE unavailable (TransportError: connection refused): fallback tier watch",
        "phone not checked: CLUE unavailable")


@pytest.mark.parametrize("tier", ["clear", "watch", "high", "block"])
def test_fail_open_or_closed(tier):
    decision = decide_degraded(DEFAULT, Evidence(), Fallback(tier), "timeout")
    assert (decision.tier, decision.limits, decision.degraded) == (
        tier, DEFAULT_LIMITS[tier], True)


def test_what_is_known_without_clue_can_only_make_a_degraded_decision_stricter():
    invalid_qr = Evidence(qr=qr("invalid_payload"))
    decision = decide_degraded(DEFAULT, invalid_qr, Fallback("clear"), "timeout")
    assert decision.tier == "block" and decision.degraded
    assert decision.rules_fired == ("qr-invalid", "fallback")
    cached_watch = Evidence((hit("phone"),))
    assert decide_degraded(DEFAULT, cached_watch, Fallback("high"), "timeout").tier == "high"


# -- custom policies ------------------------------------------------------------------------


def custom(rules: str):
    return parse_policy(TIERS_TOML + rules)


def test_custom_limits_are_what_the_decision_carries():
    policy = custom('[[rules]]\nid = "r"\ntier = "high"\n')
    decision = decide(policy, Evidence((hit("ip"),)))
    assert decision.limits == Limits(5000, 10000, 20000, True, True)


def test_custom_rule_on_reported_by_me_and_others():
    policy = custom("""
[[rules]]
id = "only-me"
tier = "watch"
reported_by_me = true

[[rules]]
id = "someone-else"
tier = "high"
reported_by_me = false
""")
    assert decide(policy, Evidence((hit(by_me=True),))).rules_fired == ("only-me",)
    assert decide(policy, Evidence((hit(),))).rules_fired == ("someone-else",)


def test_custom_rule_on_categories_match_and_reporters():
    policy = custom("""
[[rules]]
id = "folded-phishing"
tier = "high"
types = ["email"]
categories = ["phishing", "account_takeover"]
match = "folded"
min_reporters = 2
""")
    fires = hit("email", "phishing", match="folded", reporters=2)
    assert decide(policy, Evidence((fires,))).tier == "high"
    for e in (hit("email", "phishing", match="exact", reporters=2),
              hit("email", "card_theft", match="folded", reporters=2),
              hit("email", "phishing", match="folded", reporters=1),
              hit("phone", "phishing", match="folded", reporters=2)):
        assert decide(policy, Evidence((e,))).tier == "clear", e


def test_min_matched_types_counts_distinct_types_that_satisfy_the_rule():
    policy = custom("""
[[rules]]
id = "two-recent"
tier = "block"
max_days_since_last = 30
min_matched_types = 2
""")
    assert decide(policy, Evidence((hit("phone", days=3), hit("ip", days=3)))).tier == "block"
    assert decide(policy, Evidence((hit("phone", days=3), hit("ip", days=31)))).tier == "clear"
    # two answers of the same type (two QR payees) are one type
    assert decide(policy, Evidence((hit("qr_payee", days=1), hit("qr_payee", days=1)))
                  ).tier == "clear"


def test_rule_with_qr_flags_and_identifier_conditions_needs_both():
    policy = custom("""
[[rules]]
id = "swap-and-account"
tier = "block"
qr_flags = ["store_swap_reported", "payee_reported"]
types = ["phone"]

[[rules]]
id = "dynamic"
tier = "watch"
qr_flags = ["not_static"]
""")
    both = Evidence((hit("phone"),), qr("store_swap_reported"))
    assert decide(policy, both).rules_fired == ("swap-and-account",)
    assert decide(policy, Evidence((hit("phone"),), qr())).tier == "clear"
    assert decide(policy, Evidence((miss("phone"),), qr("payee_reported"))).tier == "clear"
    assert decide(policy, Evidence(qr=qr("not_static"))).rules_fired == ("dynamic",)
    assert decide(policy, Evidence((hit("phone"),))).tier == "clear"  # no QR at all


def test_a_policy_without_rules_always_clears():
    policy = parse_policy(TIERS_TOML)
    decision = decide(policy, Evidence((hit("phone", reporters=9, days=0),)))
    assert decision.tier == "clear"
    assert decision.reasons[0].endswith("(no rule applies)")


# -- disputed answers -----------------------------------------------------------------------


def test_a_disputed_phone_that_would_block_is_capped_at_high():
    # Issue 12: a look-up said DISPUTED, yet the decision blocked.
    disputed = Evidence((hit("phone", "card_theft", reporters=3, days=5, disputed=True),))
    decision = decide(DEFAULT, disputed)
    assert decision.tier == "high" and decision.limits == DEFAULT_LIMITS["high"]
    first = decision.fired[0]
    assert (first.rule_id, first.tier, first.capped_from) == ("corroborated-recent", "high",
                                                             "block")
    assert decision.reasons == (
        "phone reported by 3 members for card_theft, last 5 days ago; disputed (an open "
        "dispute contests it)",
        "corroborated-recent gives block, but only because of answers an open dispute "
        "contests: capped at high",
    )
    # The same answer without the dispute still blocks.
    assert decide(DEFAULT, Evidence((hit("phone", "card_theft", reporters=3, days=5),))
                  ).tier == "block"


def test_the_cap_only_lowers_and_keeps_rules_that_stand_without_the_dispute():
    # A disputed answer that only reaches watch stays watch.
    assert decide(DEFAULT, Evidence((hit("phone", disputed=True),))).tier == "watch"
    # An undisputed identifier that blocks on its own still blocks.
    both = Evidence((hit("phone", reporters=3, days=5, disputed=True),
                     hit("device_id", reporters=3, days=5)))
    decision = decide(DEFAULT, both)
    assert decision.tier == "block" and decision.fired[0].capped_from is None
    # Two types within 90 days, one of them disputed: the rule rests on the dispute.
    two = decide(DEFAULT, Evidence((hit("phone", days=30, disputed=True),
                                    hit("device_id", days=60))))
    assert two.tier == "high"
    assert [(f.rule_id, f.capped_from) for f in two.fired][:1] == [
        ("several-identifiers-recent", "block")]


def test_a_disputed_qr_payee_asks_instead_of_blocking():
    payee = hit("qr_payee", "sticker_swap", days=1, from_qr=True, disputed=True)
    decision = decide(DEFAULT, Evidence((payee,), qr("payee_reported")))
    assert decision.tier == "high"
    assert decision.fired[0].rule_id == "qr-payee-reported"
    assert decision.fired[0].capped_from == "block"
    # An invalid payload is local evidence: no dispute softens it.
    assert decide(DEFAULT, Evidence((payee,), qr("payee_reported", "invalid_payload"))
                  ).tier == "block"
    # One of two reported payees undisputed: still block.
    other = hit("qr_payee", "sticker_swap", days=1, from_qr=True)
    assert decide(DEFAULT, Evidence((payee, other), qr("payee_reported"))).tier == "block"


def test_the_cap_is_the_policys():
    off = parse_policy(TIERS_TOML + '[disputed]\nmax_tier = "block"\n'
                       '[[rules]]\nid = "r"\ntier = "block"\n')
    assert decide(off, Evidence((hit(disputed=True),))).tier == "block"
    watch = parse_policy(TIERS_TOML + '[disputed]\nmax_tier = "watch"\n'
                         '[[rules]]\nid = "r"\ntier = "block"\n')
    assert decide(watch, Evidence((hit(disputed=True),))).tier == "watch"


def test_rules_can_test_disputed_themselves_and_are_then_not_capped():
    policy = custom("""
[[rules]]
id = "undisputed-block"
tier = "block"
disputed = false

[[rules]]
id = "disputed-review"
tier = "high"
disputed = true

[[rules]]
id = "disputed-but-block-anyway"
tier = "block"
types = ["bank_account"]
disputed = true
""")
    assert decide(policy, Evidence((hit(),))).rules_fired == ("undisputed-block",)
    assert decide(policy, Evidence((hit(disputed=True),))).rules_fired == ("disputed-review",)
    decision = decide(policy, Evidence((hit("bank_account", disputed=True),)))
    assert decision.tier == "block" and decision.fired[0].capped_from is None


def test_disputed_comes_from_the_lookup_and_only_for_a_match():
    today = dt.date(2025, 3, 1)
    matched = LookupResult("phone", True, "exact", ("card_theft",), 1,
                           last_reported=dt.date(2025, 2, 1), disputed=True)
    assert IdentifierEvidence.from_lookup(matched, today).disputed is True
    unmatched = LookupResult("phone", False, disputed=True)
    assert IdentifierEvidence.from_lookup(unmatched, today).disputed is False


def test_decision_json_carries_disputed_and_the_cap():
    decision = decide(DEFAULT, Evidence((hit("phone", reporters=3, days=5, disputed=True),)))
    data = decision_json(decision)
    assert data["evidence"]["identifiers"][0]["disputed"] is True
    assert data["fired"][0]["capped_from"] == "block" and data["fired"][0]["tier"] == "high"
    assert "capped at high" in render_decision(decision)


def test_qr_warnings_are_reasons_not_rules():
    evidence = Evidence(qr=QrEvidence(frozenset({"not_jpqr"}),
                                      warnings=("no_merchant_category",)))
    decision = decide(DEFAULT, evidence)
    assert decision.tier == "clear"
    assert decision.reasons[-1] == ("QR code warning: no merchant category code (ID 52), as "
                                    "Thai PromptPay, VietQR and QRIS codes are published")
    assert decision_json(decision)["evidence"]["qr"]["warnings"] == ["no_merchant_category"]


def test_the_same_unchecked_reason_is_given_once():
    evidence = Evidence(qr=qr(), unchecked=(("qr_payee", "CLUE unavailable"),) * 3
                        + (("jpqr_store", "CLUE unavailable"),))
    decision = decide_degraded(DEFAULT, evidence, Fallback(), "timeout")
    assert decision.reasons[-2:] == ("qr_payee not checked: CLUE unavailable",
                                     "jpqr_store not checked: CLUE unavailable")
    assert len(decision.reasons) == 3
