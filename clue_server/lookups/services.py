"""Answering look-ups with least disclosure.

A result says: matched or not, how (exact or folded e-mail), the categories,
how many distinct members reported it, the first and last report dates (days,
not times), and whether the caller itself reported it. It never says who.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from clue_server.config import ID_TYPES, Settings
from clue_server.keystore import ServerKeys
from clue_server.reports.services import MAX_KEY_VERSION
from clue_server.validation import (
    expect_choice,
    expect_int,
    expect_item,
    expect_list,
    expect_object,
    expect_tokens,
    token_or_none,
)

if TYPE_CHECKING:
    from clue_server.quotas.counters import LookupCounter, NonceClaim


@dataclass(frozen=True)
class LookupItem:
    id_type: str
    key_version: int
    token: bytes
    folded_token: bytes | None


_FIELDS = frozenset({"type", "key_version", "token", "folded_token"})
_TYPES = frozenset(ID_TYPES)


def parse_lookup_body(body: Any, settings: Settings) -> list[LookupItem]:
    root = expect_object(body, "", required={"items"})
    items = expect_list(root["items"], "/items", max_items=settings.max_batch_items)
    return [_usual_item(raw) or checked_item(raw, index) for index, raw in enumerate(items)]


def _usual_item(raw: Any) -> LookupItem | None:
    """The usual, valid item in one pass; None for anything else (``checked_item`` then
    says exactly what is wrong). tests/unit/test_parse_fast_paths.py holds the two equal."""
    if type(raw) is not dict or not raw.keys() <= _FIELDS:
        return None
    id_type, version = raw.get("type"), raw.get("key_version")
    token = token_or_none(raw.get("token"))
    folded_text = raw.get("folded_token")
    folded = token_or_none(folded_text) if folded_text is not None else None
    if (type(id_type) is str and id_type in _TYPES and type(version) is int
            and 1 <= version <= MAX_KEY_VERSION and token is not None
            and ((folded_text is None and "folded_token" not in raw)
                 or (folded is not None and id_type == "email"))):
        return LookupItem(id_type, version, token, folded)
    return None


def checked_item(raw: Any, index: int) -> LookupItem:
    """One item, every rule checked in turn, the first one broken named in the error."""
    pointer = "/items"
    raw = expect_item(raw, pointer, index, allowed=_FIELDS,
                      required=("type", "key_version", "token"))
    id_type = expect_choice(raw, "type", pointer, index, ID_TYPES)
    key_version = expect_int(raw, "key_version", pointer, index, minimum=1,
                             maximum=MAX_KEY_VERSION)
    return LookupItem(id_type, key_version, *expect_tokens(raw, pointer, index, id_type))


class Match(NamedTuple):
    """A live report one of the items matched (``hotpath.HotPath.match`` rows)."""

    id: str
    member_id: str
    id_type: str
    category: str
    created_at: dt.datetime
    token_hash: bytes
    folded_hash: bytes | None
    disputed: bool


def lookup(counter: LookupCounter, member_id: str, items: list[LookupItem],
           server_keys: ServerKeys, *, now: dt.datetime, nonce: NonceClaim
           ) -> list[dict[str, Any]]:
    """Claim the nonce, count the batch against the quota and match, in as few round
    trips as the counter can (``quotas.counters``): the answers, in the items' order."""
    exact_of: dict[bytes, list[int]] = defaultdict(list)
    folded_of: dict[bytes, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        for h in server_keys.token_hashes(item.token):
            exact_of[h].append(index)
        if item.folded_token is not None:
            for h in server_keys.token_hashes(item.folded_token):
                folded_of[h].append(index)
    exact_rows: dict[int, list[Match]] = defaultdict(list)
    folded_rows: dict[int, list[Match]] = defaultdict(list)

    def hits_of(found: list[tuple[Any, ...]]) -> Counter[str]:
        for raw in found:
            row = Match(*raw)
            for index in exact_of.get(row.token_hash, ()):
                if items[index].id_type == row.id_type:
                    exact_rows[index].append(row)
            if row.folded_hash is not None:
                for index in folded_of.get(row.folded_hash, ()):
                    if items[index].id_type == row.id_type:
                        folded_rows[index].append(row)
        return Counter(items[i].id_type for i in set(exact_rows) | set(folded_rows))

    types = [item.id_type for item in items]
    counter.lookup(member_id, Counter(types), exact_of, folded_of, types, now, nonce, hits_of)
    return [_result(member_id, exact_rows[i], folded_rows.get(i, []))
            if i in exact_rows or i in folded_rows else _NO_MATCH for i in range(len(items))]


_NO_MATCH: dict[str, Any] = {
    "matched": False, "match": None, "categories": [], "reporters": 0, "first_reported": None,
    "last_reported": None, "reported_by_me": False, "disputed": False}


def _result(member_id: str, exact: list[Any], folded: list[Any],
            disputed: set[str] | frozenset[str] | None = None) -> dict[str, Any]:
    """One item's answer from the rows it matched exactly and by its folded form.
    ``disputed``: the ids an open dispute covers (default: each row's own flag)."""
    rows = {r.id: r for r in exact + folded}.values()
    if not rows:
        return dict(_NO_MATCH)
    return {
        "matched": True,
        "match": "exact" if exact else "folded",
        "categories": sorted({r.category for r in rows}),
        "reporters": len({r.member_id for r in rows}),
        "first_reported": min(r.created_at for r in rows).date().isoformat(),
        "last_reported": max(r.created_at for r in rows).date().isoformat(),
        "reported_by_me": any(r.member_id == member_id for r in rows),
        # An open dispute covers a matching report (see docs/disputes.md).
        "disputed": any(r.id in disputed if disputed is not None else r.disputed
                        for r in rows),
    }
