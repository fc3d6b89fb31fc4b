"""The policy file: which evidence puts a user in which tier, and each tier's limits.

A policy is TOML, read with :mod:`tomllib` and validated completely at load time:
unknown keys, wrong types, tiers whose limits grow from ``clear`` to ``block``, and
rules naming an unknown tier, identifier type, category or QR flag are all refused
with a :class:`PolicyError` that names the key path (``rules[2].tier``) and, where
the file shows it, the line. See docs/decisions.md for the format;
``default_policy.toml`` next to this module is the documented default.

    >>> policy = load_policy()                       # the default
    >>> policy.tiers["watch"].step_up_auth
    True
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from clue_client.canonical import ID_TYPES
from clue_client.errors import ClueError
from clue_client.protocol import CATEGORIES

__all__ = [
    "DEFAULT_POLICY_FILE",
    "MATCH_KINDS",
    "QR_FLAGS",
    "TIERS",
    "Fallback",
    "Limits",
    "Policy",
    "PolicyError",
    "Rule",
    "load_policy",
    "parse_policy",
]

TIERS: tuple[str, ...] = ("clear", "watch", "high", "block")
"""From least to most restrictive; a decision is the strictest tier any rule gives."""

QR_FLAGS: tuple[str, ...] = (
    "invalid_payload", "not_static", "not_jpqr", "payee_reported", "store_swap_reported",
)
"""What a scanned QR code can show (see :mod:`clue_client.decisions.qrscan`)."""

MATCH_KINDS: tuple[str, ...] = ("any", "exact", "folded")
DEFAULT_POLICY_FILE = "default_policy.toml"
POLICY_VERSION = 1
MAX_TIMEOUT_MS = 60_000

_LIMIT_AMOUNTS = ("per_transaction_jpy", "daily_jpy", "monthly_jpy")
_LIMIT_FLAGS = ("step_up_auth", "manual_review")
_RULE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_IDENTIFIER_CONDITIONS = ("types", "categories", "match", "min_reporters",
                          "max_days_since_last", "reported_by_me", "disputed",
                          "min_matched_types")
DEFAULT_DISPUTED_MAX_TIER = "high"


class PolicyError(ClueError, ValueError):
    """A policy file is unreadable or invalid.

    ``path`` is the key path at fault (``"tiers.watch.daily_jpy"``, ``"rules[1].tier"``,
    ``""`` for the whole file), ``line`` its 1-based line when known, ``source`` the
    file name when the policy came from a file.
    """

    def __init__(self, detail: str, *, path: str = "", line: int | None = None,
                 source: str | None = None) -> None:
        self.detail = detail
        self.path = path
        self.line = line
        self.source = source
        where = ": ".join(p for p in (source, _where(path, line)) if p)
        super().__init__(f"{where}: {detail}" if where else detail)


def _where(path: str, line: int | None) -> str:
    if line is None:
        return path
    return f"{path} (line {line})" if path else f"line {line}"


@dataclass(frozen=True)
class Limits:
    """What a provider applies to a user in one tier (amounts in JPY)."""

    per_transaction_jpy: int
    daily_jpy: int
    monthly_jpy: int
    step_up_auth: bool
    manual_review: bool

    def allows(self, amount_jpy: int) -> bool:
        """Whether one payment of ``amount_jpy`` is within the per-transaction cap."""
        return amount_jpy <= self.per_transaction_jpy


@dataclass(frozen=True)
class Fallback:
    """What to decide when CLUE cannot answer in time.

    ``tier`` ``"watch"`` (the default) lets the user on with lowered limits;
    ``"clear"`` is fail-open, ``"block"`` fail-closed. ``timeout_ms`` is the whole
    budget of a check, from the call to the decision (no retries inside it).
    """

    tier: str = "watch"
    timeout_ms: int = 300

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise PolicyError(f"unknown tier {self.tier!r}; one of {', '.join(TIERS)}",
                              path="fallback.tier")
        if (isinstance(self.timeout_ms, bool) or not isinstance(self.timeout_ms, int)
                or not 1 <= self.timeout_ms <= MAX_TIMEOUT_MS):
            raise PolicyError(f"must be a whole number of milliseconds from 1 to "
                              f"{MAX_TIMEOUT_MS}, not {self.timeout_ms!r}",
                              path="fallback.timeout_ms")

    @property
    def timeout(self) -> float:
        """The budget in seconds."""
        return self.timeout_ms / 1000


@dataclass(frozen=True)
class Rule:
    """One ``[[rules]]`` entry: when its conditions hold, the decision is at least ``tier``.

    Identifier conditions are checked on each matched identifier; the rule fires when
    at least ``min_matched_types`` distinct identifier types satisfy all of them. A
    rule with ``qr_flags`` also needs one of those flags; a rule with *only*
    ``qr_flags`` fires on the flags alone. A rule that would not fire without disputed
    answers gives at most ``Policy.disputed_max_tier``, unless it sets ``disputed``.
    """

    id: str
    tier: str
    description: str = ""
    types: frozenset[str] | None = None
    categories: frozenset[str] | None = None
    match: str = "any"
    min_reporters: int = 1
    max_days_since_last: int | None = None
    reported_by_me: bool | None = None
    disputed: bool | None = None
    """``True``: only answers an open dispute covers satisfy the rule; ``False``: only
    undisputed ones; ``None``: either (and then the policy's ``[disputed]`` cap applies)."""
    min_matched_types: int = 1
    qr_flags: frozenset[str] | None = None
    checks_identifiers: bool = True


@dataclass(frozen=True)
class Policy:
    """A validated policy: tier limits, rules in file order, the fallback.

    ``disputed_max_tier`` (``[disputed] max_tier``, default ``"high"``) is the most a
    rule gives when it fires only because of answers an open dispute covers (a rule
    that names ``disputed`` itself is exempt); ``"block"`` turns the softening off.
    """

    tiers: Mapping[str, Limits]
    rules: tuple[Rule, ...]
    fallback: Fallback = field(default_factory=Fallback)
    name: str = ""
    description: str = ""
    disputed_max_tier: str = DEFAULT_DISPUTED_MAX_TIER

    def rank(self, tier: str) -> int:
        return TIERS.index(tier)


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """Read and validate a policy file; ``None`` gives the SDK's default policy."""
    if path is None:
        return _default_policy()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read the policy file: {exc}", source=str(path)) from exc
    return parse_policy(text, source=str(path))


@functools.cache
def _default_policy() -> Policy:
    source = resources.files(__package__ or "clue_client.decisions").joinpath(
        DEFAULT_POLICY_FILE)
    return parse_policy(source.read_text(encoding="utf-8"), source=DEFAULT_POLICY_FILE)


def parse_policy(text: str, *, source: str | None = None) -> Policy:
    """Validate policy TOML given as text (``source`` names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        raise PolicyError(f"not valid TOML: {exc}", line=int(match[1]) if match else None,
                          source=source) from exc
    return _Reader(text, source).policy(data)


class _Reader:
    """Walks the parsed TOML, failing on the first problem with its key path and line."""

    def __init__(self, text: str, source: str | None) -> None:
        self.lines = _KeyLines(text)
        self.source = source

    def fail(self, path: str, detail: str) -> PolicyError:
        return PolicyError(detail, path=path, line=self.lines.find(path), source=self.source)

    # -- shapes ------------------------------------------------------------------------

    def table(self, value: Any, path: str, *, required: tuple[str, ...],
              optional: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a table, not {_kind(value)}")
        for key in value:
            if key not in required and key not in optional:
                known = ", ".join((*required, *optional))
                raise self.fail(_join(path, key), f"unknown key {key!r}; known keys: {known}")
        for key in required:
            if key not in value:
                raise self.fail(_join(path, key) if path else key, "is required")
        return value

    def integer(self, value: Any, path: str, *, minimum: int, maximum: int | None = None) -> int:
        # TOML booleans are Python bools, and bool is an int subclass: refuse them here.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"must be a whole number, not {_kind(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f"≥ {minimum}"
            raise self.fail(path, f"must be {bound}, not {value}")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"must be true or false, not {_kind(value)}")
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"must be a string, not {_kind(value)}")
        return value

    def choice(self, value: Any, path: str, choices: tuple[str, ...], what: str) -> str:
        text = self.string(value, path)
        if text not in choices:
            raise self.fail(path, f"unknown {what} {text!r}; one of {', '.join(choices)}")
        return text

    def choices(self, value: Any, path: str, choices: tuple[str, ...], what: str
                ) -> frozenset[str]:
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list of {what}s, not {_kind(value)}")
        if not value:
            raise self.fail(path, f"must name at least one {what} (leave the key out for any)")
        return frozenset(self.choice(v, f"{path}[{i}]", choices, what)
                         for i, v in enumerate(value))

    # -- the policy ----------------------------------------------------------------------

    def policy(self, data: dict[str, Any]) -> Policy:
        self.table(data, "", required=("version", "tiers"),
                   optional=("name", "description", "fallback", "disputed", "rules"))
        self.integer(data["version"], "version", minimum=POLICY_VERSION, maximum=POLICY_VERSION)
        tiers = self.tiers(data["tiers"])
        rules = self.rules(data.get("rules", []))
        fallback = self.fallback(data.get("fallback", {}))
        disputed = self.disputed(data.get("disputed", {}))
        return Policy(tiers=MappingProxyType(tiers), rules=rules, fallback=fallback,
                      name=self.string(data.get("name", ""), "name"),
                      description=self.string(data.get("description", ""), "description"),
                      disputed_max_tier=disputed)

    def tiers(self, value: Any) -> dict[str, Limits]:
        self.table(value, "tiers", required=TIERS)
        tiers = {name: self.limits(value[name], f"tiers.{name}") for name in TIERS}
        for looser, stricter in itertools.pairwise(TIERS):
            a, b = tiers[looser], tiers[stricter]
            for key in _LIMIT_AMOUNTS:
                if getattr(b, key) > getattr(a, key):
                    raise self.fail(
                        f"tiers.{stricter}.{key}",
                        f"tiers out of order: {getattr(b, key)} is above {looser}'s "
                        f"{getattr(a, key)}; limits must not grow from "
                        f"{' → '.join(TIERS)}")
            for key in _LIMIT_FLAGS:
                if getattr(a, key) and not getattr(b, key):
                    raise self.fail(
                        f"tiers.{stricter}.{key}",
                        f"tiers out of order: {looser} has {key} = true, so {stricter} "
                        "must too")
        return tiers

    def limits(self, value: Any, path: str) -> Limits:
        self.table(value, path, required=(*_LIMIT_AMOUNTS, *_LIMIT_FLAGS))
        amounts = [self.integer(value[k], f"{path}.{k}", minimum=0) for k in _LIMIT_AMOUNTS]
        per_transaction, daily, monthly = amounts
        if per_transaction > daily:
            raise self.fail(f"{path}.per_transaction_jpy",
                            f"{per_transaction} is above daily_jpy ({daily})")
        if daily > monthly:
            raise self.fail(f"{path}.daily_jpy", f"{daily} is above monthly_jpy ({monthly})")
        return Limits(per_transaction, daily, monthly,
                      *(self.boolean(value[k], f"{path}.{k}") for k in _LIMIT_FLAGS))

    def fallback(self, value: Any) -> Fallback:
        self.table(value, "fallback", required=(), optional=("tier", "timeout_ms"))
        tier = self.choice(value.get("tier", "watch"), "fallback.tier", TIERS, "tier")
        timeout = self.integer(value.get("timeout_ms", 300), "fallback.timeout_ms",
                               minimum=1, maximum=MAX_TIMEOUT_MS)
        return Fallback(tier, timeout)

    def disputed(self, value: Any) -> str:
        self.table(value, "disputed", required=(), optional=("max_tier",))
        tier = self.choice(value.get("max_tier", DEFAULT_DISPUTED_MAX_TIER),
                           "disputed.max_tier", TIERS, "tier")
        if tier == "clear":
            raise self.fail("disputed.max_tier", "'clear' would make a rule that fired give "
                            "nothing; to ignore disputed answers, add disputed = false to "
                            "the rules instead")
        return tier

    def rules(self, value: Any) -> tuple[Rule, ...]:
        if not isinstance(value, list):
            raise self.fail("rules", f"must be an array of tables ([[rules]]), not "
                            f"{_kind(value)}")
        seen: set[str] = set()
        rules = []
        for index, raw in enumerate(value):
            rule = self.rule(raw, f"rules[{index}]")
            if rule.id in seen:
                raise self.fail(f"rules[{index}].id", f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
            rules.append(rule)
        return tuple(rules)

    def rule(self, raw: Any, path: str) -> Rule:
        self.table(raw, path, required=("id", "tier"),
                   optional=("description", *_IDENTIFIER_CONDITIONS, "qr_flags"))
        rule_id = self.string(raw["id"], f"{path}.id")
        if not _RULE_ID.fullmatch(rule_id):
            raise self.fail(f"{path}.id", f"{rule_id!r} is not a rule id: use lower-case "
                            "letters, digits, '-' and '_' (at most 64)")
        if rule_id == "fallback":
            raise self.fail(f"{path}.id", "'fallback' is reserved for decisions made without "
                            "CLUE's answer")
        tier = self.choice(raw["tier"], f"{path}.tier", TIERS, "tier")
        if tier == "clear":
            raise self.fail(f"{path}.tier", "a rule cannot give 'clear': a decision is the "
                            "strictest tier any rule gives, and 'clear' when none fires")
        get = raw.get
        types = get("types")
        categories = get("categories")
        days = get("max_days_since_last")
        by_me = get("reported_by_me")
        disputed = get("disputed")
        qr_flags = get("qr_flags")
        return Rule(
            id=rule_id, tier=tier,
            description=self.string(get("description", ""), f"{path}.description"),
            types=None if types is None else self.choices(types, f"{path}.types", ID_TYPES,
                                                          "identifier type"),
            categories=None if categories is None else self.choices(
                categories, f"{path}.categories", CATEGORIES, "category"),
            match=self.choice(get("match", "any"), f"{path}.match", MATCH_KINDS, "match kind"),
            min_reporters=self.integer(get("min_reporters", 1), f"{path}.min_reporters",
                                       minimum=1),
            max_days_since_last=None if days is None else self.integer(
                days, f"{path}.max_days_since_last", minimum=0),
            reported_by_me=None if by_me is None else self.boolean(
                by_me, f"{path}.reported_by_me"),
            disputed=None if disputed is None else self.boolean(disputed, f"{path}.disputed"),
            min_matched_types=self.integer(get("min_matched_types", 1),
                                           f"{path}.min_matched_types", minimum=1,
                                           maximum=len(ID_TYPES)),
            qr_flags=None if qr_flags is None else self.choices(
                qr_flags, f"{path}.qr_flags", QR_FLAGS, "QR flag"),
            checks_identifiers=qr_flags is None or any(k in raw for k in _IDENTIFIER_CONDITIONS),
        )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "an array", dict: "a table"}
    return kinds.get(type(value), type(value).__name__) + (
        f" ({value!r})" if isinstance(value, bool | int | float | str) else "")


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
                  r"""(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")


class _KeyLines:
    """Best-effort map from key paths to the lines that define them.

    tomllib reports lines for syntax errors only; for a value that parses but is
    wrong, this scans the text for table headers (``[tiers.watch]``,
    ``[[rules]]``) and ``key =`` lines. Keys inside inline tables or multi-line
    values are not found, and then the error names the key path alone.
    """

    def __init__(self, text: str) -> None:
        self.where: dict[str, int] = {}
        table = ""
        counts: dict[str, int] = {}
        in_string: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_string is not None:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            header = _HEADER.match(line)
            if header:
                name = _dotted(header[2])
                if header[1] == "[[":
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    table = f"{name}[{index}]"
                else:
                    table = name
                self.where.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                self.where.setdefault(_join(table, _dotted(key[1])), number)
                rest = line[key.end():]
                for quote in ('"""', "'''"):
                    if rest.count(quote) % 2 == 1:
                        in_string = quote

    def find(self, path: str) -> int | None:
        # An item of an array value (types[2]) is on its key's line, as is a missing
        # key's parent table: walk up until something is known.
        while path:
            if path in self.where:
                return self.where[path]
            path = re.sub(r"(\[\d+\]|\.[^.\[]+)$", "", path) if re.search(
                r"(\[\d+\]|\.[^.\[]+)$", path) else ""
        return None


def _dotted(key: str) -> str:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", key)
    return ".".join(p.strip("\"'") for p in parts)
