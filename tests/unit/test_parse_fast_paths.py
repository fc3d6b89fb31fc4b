"""The one-pass checks for the usual look-up and registration item agree with the full,
rule-by-rule checks: whatever the fast path accepts, the full checks accept identically,
and whatever the full checks refuse, the fast path leaves to them."""

from __future__ import annotations

import base64
import os
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clue_client.canonical import ID_TYPES
from clue_client.protocol import CATEGORIES, b64url
from clue_server.errors import ClueError
from clue_server.lookups import services as lookups
from clue_server.reports import services as reports
from clue_server.validation import _CANONICAL_TOKEN, strict_b64url

TOKEN = b64url(bytes(range(32)))
RETENTION = {t: (30 if t == "ip" else 365) for t in ID_TYPES}

_values = st.one_of(
    st.sampled_from([*ID_TYPES, *CATEGORIES, "EMAIL", "", "phone\x00"]),
    st.integers(min_value=-3, max_value=1_000_003), st.booleans(), st.none(),
    st.floats(allow_nan=False), st.just(TOKEN), st.just(TOKEN[:-1] + "B"),
    st.just(TOKEN + "A"), st.just(TOKEN.replace("A", "+")), st.text(max_size=50),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                         max_size=2),
)
_lookup_fields = st.sampled_from(["type", "key_version", "token", "folded_token", "colour"])
_report_fields = st.sampled_from(["type", "category", "key_version", "token", "folded_token",
                                  "expires_in_days", "note", "colour"])


def _valid_lookup(draw: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"type": draw(st.sampled_from(ID_TYPES)),
                            "key_version": draw(st.integers(1, 1_000_000)),
                            "token": b64url(os.urandom(32))}
    if item["type"] == "email" and draw(st.booleans()):
        item["folded_token"] = b64url(os.urandom(32))
    return item


@st.composite
def lookup_items(draw: Any) -> Any:
    item = _valid_lookup(draw)
    for _ in range(draw(st.integers(0, 3))):  # then spoil it, or not
        item[draw(_lookup_fields)] = draw(_values)
    if draw(st.booleans()) and item:
        item.pop(draw(st.sampled_from(sorted(item))))
    return item if draw(st.integers(0, 20)) else draw(_values)


@st.composite
def report_items(draw: Any) -> Any:
    item = _valid_lookup(draw)
    item["category"] = draw(st.sampled_from(CATEGORIES))
    if draw(st.booleans()):
        item["expires_in_days"] = draw(st.integers(-1, 400))
    for _ in range(draw(st.integers(0, 3))):
        item[draw(_report_fields)] = draw(_values)
    if draw(st.booleans()) and item:
        item.pop(draw(st.sampled_from(sorted(item))))
    return item if draw(st.integers(0, 20)) else draw(_values)


def _full(check: Any, *args: Any) -> Any:
    try:
        return check(*args)
    except ClueError as error:
        return error


@settings(max_examples=3000, deadline=None)
@given(lookup_items())
def test_lookup_items_fast_and_full_agree(raw: Any) -> None:
    fast = lookups._usual_item(raw)
    full = _full(lookups.checked_item, raw, 0)
    if isinstance(full, ClueError):
        assert fast is None
    else:
        assert fast in (None, full)
        assert fast == full  # every valid look-up item takes the fast path


@settings(max_examples=3000, deadline=None)
@given(report_items())
def test_report_items_fast_and_full_agree(raw: Any) -> None:
    fast = reports._usual_item(raw, RETENTION)
    full = _full(reports.checked_item, raw, 0, RETENTION)
    if isinstance(full, ClueError):
        assert fast is None
    else:
        assert fast in (None, full)
        if not (isinstance(raw, dict) and "note" in raw):
            assert fast == full


@given(st.binary(min_size=32, max_size=32), st.text(alphabet=st.characters(
    min_codepoint=33, max_codepoint=126), min_size=43, max_size=43))
def test_the_canonical_token_pattern_is_exactly_strict_base64url_of_32_bytes(
        data: bytes, text: str) -> None:
    spelled = b64url(data)
    assert _CANONICAL_TOKEN.fullmatch(spelled)
    assert base64.urlsafe_b64decode(spelled + "=") == data
    decoded = strict_b64url(text)
    assert bool(_CANONICAL_TOKEN.fullmatch(text)) == (decoded is not None and len(decoded) == 32)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", spelled)
