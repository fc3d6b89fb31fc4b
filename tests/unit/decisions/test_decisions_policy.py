"""Loading and validating policy files: the default, and every way a custom one can be wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clue_client.decisions import Fallback, PolicyError, load_policy, parse_policy
from clue_client.decisions.policy import TIERS

TIERS_TOML = """\
version = 1

[tiers.clear]
per_transaction_jpy = 300000
daily_jpy = 500000
monthly_jpy = 1000000
step_up_auth = false
manual_review = false

[tiers.watch]
per_transaction_jpy = 30000
daily_jpy = 50000
monthly_jpy = 100000
step_up_auth = true
manual_review = false

[tiers.high]
per_transaction_jpy = 5000
daily_jpy = 10000
monthly_jpy = 20000
step_up_auth = true
manual_review = true

[tiers.block]
per_transaction_jpy = 0
daily_jpy = 0
monthly_jpy = 0
step_up_auth = true
manual_review = true
"""

RULE = """
[[rules]]
id = "any-phone"
tier = "watch"
types = ["phone"]
"""


def error_of(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="custom.toml")
    return info.value


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    return lines[occurrence - 1]


def test_the_default_policy_loads_and_is_the_documented_one():
    policy = load_policy()
    assert policy.name == "clue-default"
    assert list(policy.tiers) == list(TIERS)
    assert policy.fallback == Fallback("watch", 300)
    assert [r.id for r in policy.rules][:3] == ["qr-invalid", "qr-payee-reported",
                                                "qr-store-swap-reported"]
    # The docs page shows the file in full; keep the two identical.
    shipped = (Path(__file__).parents[3] / "clue_client" / "decisions"
               / "default_policy.toml").read_text(encoding="utf-8")
    docs = (Path(__file__).parents[3] / "docs" / "decisions.md").read_text(encoding="utf-8")
    assert shipped.strip() in docs


def test_a_minimal_custom_policy():
    policy = parse_policy(TIERS_TOML + RULE)
    assert policy.tiers["watch"].per_transaction_jpy == 30000
    rule = policy.rules[0]
    assert (rule.id, rule.tier, rule.types, rule.match, rule.min_reporters) == (
        "any-phone", "watch", frozenset({"phone"}), "any", 1)
    assert policy.fallback == Fallback()  # the section is optional


def test_load_policy_from_a_file(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(TIERS_TOML + RULE, encoding="utf-8")
    assert load_policy(path).rules[0].id == "any-phone"
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.toml")


def test_the_tiers_mapping_is_read_only():
    with pytest.raises(TypeError):
        load_policy().tiers["clear"] = load_policy().tiers["block"]  # type: ignore[index]


def test_a_syntax_error_names_the_line_from_tomllib():
    text = TIERS_TOML + "\n[[rules]]\nid = \"x\nTIER = 1\n"
    error = error_of(text)
    assert error.line == line_of(text, 'id = "x')
    assert "not valid TOML" in str(error) and f"line {error.line}" in str(error)
    assert str(error).startswith("custom.toml: ")


@pytest.mark.parametrize(("change", "path", "message"), [
    # unknown keys, at every level
    ({"add_top": "colour = 1"}, "colour", "unknown key 'colour'"),
    ({"tier_key": ("watch", "weekly_jpy = 1")}, "tiers.watch.weekly_jpy", "unknown key"),
    ({"rule": 'id = "r"\ntier = "high"\nmin_reporter = 2'}, "rules[0].min_reporter",
     "unknown key 'min_reporter'"),
    ({"add": '[fallback]\ntier = "watch"\nretries = 2'}, "fallback.retries", "unknown key"),
    ({"add": '[tiers.vip]\nper_transaction_jpy = 1'}, "tiers.vip", "unknown key 'vip'"),
    # wrong types
    ({"tier_value": ("high", "daily_jpy", '"10000"')}, "tiers.high.daily_jpy",
     "must be a whole number, not a string ('10000')"),
    ({"tier_value": ("high", "daily_jpy", "10000.0")}, "tiers.high.daily_jpy",
     "whole number, not a float"),
    ({"tier_value": ("high", "daily_jpy", "true")}, "tiers.high.daily_jpy",
     "whole number, not a boolean"),
    ({"tier_value": ("watch", "step_up_auth", "1")}, "tiers.watch.step_up_auth",
     "must be true or false, not an integer (1)"),
    ({"tier_value": ("watch", "daily_jpy", "-1")}, "tiers.watch.daily_jpy", "must be ≥ 0"),
    ({"rule": 'id = "r"\ntier = "high"\ntypes = "phone"'}, "rules[0].types",
     "must be a list of identifier types, not a string"),
    ({"rule": 'id = "r"\ntier = "high"\nmin_reporters = 0'}, "rules[0].min_reporters",
     "must be ≥ 1"),
    ({"rule": 'id = "r"\ntier = "high"\nreported_by_me = "yes"'}, "rules[0].reported_by_me",
     "true or false"),
    ({"rule": 'id = 7\ntier = "high"'}, "rules[0].id", "must be a string"),
    ({"add_top": "rules = 3"}, "rules", "must be an array of tables"),
    ({"version": "2"}, "version", "must be from 1 to 1"),
    # missing keys
    ({"drop_tier_key": ("block", "manual_review")}, "tiers.block.manual_review", "is required"),
    ({"drop_tier": "high"}, "tiers.high", "is required"),
    ({"rule": 'tier = "high"'}, "rules[0].id", "is required"),
    # references to unknown names
    ({"rule": 'id = "r"\ntier = "severe"'}, "rules[0].tier", "unknown tier 'severe'"),
    ({"rule": 'id = "r"\ntier = "high"\ntypes = ["phone", "fax"]'}, "rules[0].types[1]",
     "unknown identifier type 'fax'"),
    ({"rule": 'id = "r"\ntier = "high"\ncategories = ["card_fraud"]'},
     "rules[0].categories[0]", "unknown category 'card_fraud'"),
    ({"rule": 'id = "r"\ntier = "high"\nqr_flags = ["forged"]'}, "rules[0].qr_flags[0]",
     "unknown QR flag 'forged'"),
    ({"rule": 'id = "r"\ntier = "high"\nmatch = "fuzzy"'}, "rules[0].match",
     "unknown match kind 'fuzzy'"),
    ({"add": '[fallback]\ntier = "amber"'}, "fallback.tier", "unknown tier 'amber'"),
    ({"add": "[fallback]\ntimeout_ms = 0"}, "fallback.timeout_ms", "from 1 to 60000"),
    # rules that cannot mean anything
    ({"rule": 'id = "r"\ntier = "clear"'}, "rules[0].tier", "a rule cannot give 'clear'"),
    ({"rule": 'id = "r"\ntier = "high"\ntypes = []'}, "rules[0].types", "at least one"),
    ({"rule": 'id = "Bad Id"\ntier = "high"'}, "rules[0].id", "is not a rule id"),
    ({"rule": 'id = "fallback"\ntier = "high"'}, "rules[0].id", "reserved"),
    ({"rule": 'id = "r"\ntier = "high"\nmin_matched_types = 9'}, "rules[0].min_matched_types",
     "from 1 to 7"),
    # disputed answers
    ({"rule": 'id = "r"\ntier = "high"\ndisputed = "yes"'}, "rules[0].disputed",
     "true or false"),
    ({"add": '[disputed]\nmax_tier = "amber"'}, "disputed.max_tier", "unknown tier 'amber'"),
    ({"add": '[disputed]\nmax_tier = "clear"'}, "disputed.max_tier", "disputed = false"),
    ({"add": '[disputed]\ncap = "high"'}, "disputed.cap", "unknown key 'cap'"),
])
def test_invalid_policies_are_refused_with_the_key_path(change, path, message):
    text = _edit(TIERS_TOML, change)
    error = error_of(text)
    assert error.path == path
    assert message in error.detail
    assert path in str(error) and message in str(error)


def test_the_disputed_cap_defaults_to_high_and_can_be_set():
    assert load_policy().disputed_max_tier == "high"
    assert parse_policy(TIERS_TOML).disputed_max_tier == "high"  # the section is optional
    assert parse_policy(TIERS_TOML + '[disputed]\nmax_tier = "block"\n'
                        ).disputed_max_tier == "block"
    rule = parse_policy(TIERS_TOML + RULE + "disputed = false\n").rules[0]
    assert rule.disputed is False and rule.checks_identifiers


def test_duplicate_rule_ids_are_refused():
    text = TIERS_TOML + RULE + RULE
    error = error_of(text)
    assert (error.path, error.line) == ("rules[1].id", line_of(text, 'id = "any-phone"', 2))
    assert "duplicate rule id 'any-phone'" in str(error)


@pytest.mark.parametrize(("tier", "key", "value", "message"), [
    ("watch", "monthly_jpy", "1000001", "1000001 is above clear's 1000000"),
    ("high", "monthly_jpy", "100001", "100001 is above watch's 100000"),
    ("block", "monthly_jpy", "20001", "20001 is above high's 20000"),
    ("high", "step_up_auth", "false", "watch has step_up_auth = true, so high must too"),
    ("block", "manual_review", "false", "high has manual_review = true, so block must too"),
])
def test_tiers_out_of_order_are_refused_naming_key_and_line(tier, key, value, message):
    text = _edit(TIERS_TOML, {"tier_value": (tier, key, value)})
    error = error_of(text)
    assert error.path == f"tiers.{tier}.{key}"
    assert "tiers out of order" in error.detail and message in error.detail
    # the line of that key inside that tier's table
    header = line_of(text, f"[tiers.{tier}]")
    assert error.line is not None and error.line > header
    assert text.splitlines()[error.line - 1].startswith(f"{key} =")
    assert f"(line {error.line})" in str(error)


def test_within_a_tier_per_transaction_daily_monthly_must_not_contradict():
    error = error_of(_edit(TIERS_TOML, {"tier_value": ("clear", "per_transaction_jpy",
                                                        "600000")}))
    assert error.path == "tiers.clear.per_transaction_jpy"
    assert "above daily_jpy" in error.detail
    error = error_of(_edit(TIERS_TOML, {"tier_value": ("clear", "daily_jpy", "2000000")}))
    assert error.path == "tiers.clear.daily_jpy"


def test_line_numbers_follow_array_of_tables_and_dotted_keys():
    text = TIERS_TOML + RULE + '\n[[rules]]\nid = "second"\ntier = "high"\n' \
        'types = ["phone",\n  "email"]\ncategories = ["nope"]\n'
    error = error_of(text)
    assert error.path == "rules[1].categories[0]"
    assert error.line == line_of(text, "categories = ")
    # a missing key points at its table's header
    error = error_of(_edit(TIERS_TOML, {"drop_tier_key": ("watch", "daily_jpy")}))
    assert error.line == line_of(TIERS_TOML, "[tiers.watch]")


def test_keys_inside_multiline_strings_do_not_confuse_the_line_finder():
    text = TIERS_TOML + '\n[[rules]]\nid = "r"\ndescription = """\ntier = "fake"\n"""\n' \
        'tier = "severe"\n'
    error = error_of(text)
    assert error.path == "rules[0].tier"
    assert error.line == line_of(text, 'tier = "severe"')


def test_fallback_built_in_code_is_validated_too():
    with pytest.raises(PolicyError, match=r"fallback\.tier"):
        Fallback("amber")
    with pytest.raises(PolicyError, match=r"fallback\.timeout_ms"):
        Fallback("watch", 0)
    assert Fallback("block", 150).timeout == pytest.approx(0.15)


def _edit(text: str, change: dict[str, object]) -> str:
    """Apply one test edit to the tiers TOML."""
    ((kind, arg),) = change.items()
    if kind == "add_top":
        return f"{arg}\n{text}"
    if kind == "add":
        return f"{text}\n{arg}\n"
    if kind == "rule":
        return f"{text}\n[[rules]]\n{arg}\n"
    if kind == "version":
        return text.replace("version = 1", f"version = {arg}")
    if kind == "drop_tier":
        return re.sub(rf"\[tiers\.{arg}\]\n(?:[^\[\n][^\n]*\n)*", "", text)
    tier, key, *rest = arg  # type: ignore[misc]
    section = re.search(rf"\[tiers\.{tier}\]\n(?:[^\[\n][^\n]*\n)*", text)
    assert section is not None
    body = section.group(0)
    if kind == "tier_key":
        new = body + f"{key}\n"  # key is a whole "name = value" line here
    elif kind == "drop_tier_key":
        new = re.sub(rf"^{key} = [^\n]*\n", "", body, flags=re.M)
    else:
        new = re.sub(rf"^{key} = [^\n]*$", f"{key} = {rest[0]}", body, flags=re.M)
    return text.replace(body, new)
