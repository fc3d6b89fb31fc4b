"""Private look-ups (protocol version 2) as plans: evaluate, fetch buckets, open entries.

Internal: use :meth:`clue_client.ClueClient.lookup` (which picks v1 or v2),
``lookup_local``, ``sync_replica`` and ``watch_add`` / ``watch_poll``.

The plans here are driven exactly like those of :mod:`clue_client._calls` (the sync
client with ``_calls.run``, the async one with ``_calls.run_async``), so both clients
share every line below. docs/private-lookups.md §6 is the design; the steps, for each
identifier (its v1 token fields under the newest network-key version):

1. the OPRF input is its token (an e-mail: its folded token), blinded in one batch and
   sent to ``POST /v2/evaluations`` (counted against the look-up quota);
2. the answers are finalized in one batch and the entries derived (an e-mail: both
   entries from its one evaluation);
3. ``POST /v2/buckets`` with the distinct bucket prefixes; each bucket is searched for
   the identifier's entry ids and the entries found are opened (an entry that does not
   open is an error, never a miss).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import keys
from clue_client import _calls
from clue_client._calls import Plan, Tokens
from clue_client._wire import Call
from clue_client.errors import (
    ClueError,
    ConfigError,
    MalformedResponseError,
    NotFoundError,
    PrivateLookupsUnavailable,
    ResponseVerificationError,
    ValidationError,
)
from clue_client.models import LookupResult
from clue_client.private_lookups.entries import (
    ENTRY_ID_BYTES,
    SEALED_BYTES,
    Answer,
    EntryRef,
    SealedAnswerError,
    bucket_prefix,
    derive_email_entries,
    derive_entry,
    merge_answers,
    open_answer,
)
from clue_client.private_lookups.replica import Delta, DeltaError, Replica, parse_delta
from clue_client.private_lookups.store import ReplicaStore, WatchStore
from clue_client.private_lookups.watch import Alert, WatchList
from clue_client.protocol import b64url
from clue_client.tokens import decode_token

__all__ = ["CONFIG_TTL", "DELTA_TYPE", "Bucket", "ConfigCache", "Evaluated", "ServerConfig"]

V2 = "/v2"
#: Seconds the client trusts a fetched ``GET /v2/config``.
CONFIG_TTL = 300.0
#: Seconds between two reports of match counts (``POST /v2/usage``).
USAGE_EVERY = 60.0
#: The content type of a replica delta (docs/private-lookups.md §7).
DELTA_TYPE = "application/vnd.clue.replica-delta"
PREFIX_BITS_CHANGED = "urn:clue:problem:prefix-bits-changed"
CURSOR_EXPIRED = "urn:clue:problem:cursor-expired"
_RECORD_BYTES = ENTRY_ID_BYTES + SEALED_BYTES  # 54: one bucket record


# -- the server's v2 settings ------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    """``GET /v2/config``: what the server's protocol version 2 runs with.

    ``lookup_protocol`` is 2 once the council declared the migration done: from then on
    :meth:`~clue_client.ClueClient.lookup` asks privately by default.
    """

    oprf_version: int
    oprf_versions: tuple[int, ...]
    prefix_bits: int
    lookup_protocol: int
    max_items: int
    max_prefixes: int

    @classmethod
    def from_json(cls, data: Any) -> ServerConfig:
        """Checked: every field present, in range, and ``oprf_version`` among the versions."""
        if not isinstance(data, dict):
            raise MalformedResponseError("the server's answer to v2/config is not an object")
        versions = data.get("oprf_versions")
        if not isinstance(versions, list) or not versions:
            raise MalformedResponseError("v2/config has no oprf_versions list")
        config = cls(
            oprf_version=_int(data, "oprf_version", 1, 0xFFFFFFFF),
            oprf_versions=tuple(_int({"v": v}, "v", 1, 0xFFFFFFFF) for v in versions),
            prefix_bits=_int(data, "prefix_bits", 1, 32),
            lookup_protocol=_int(data, "lookup_protocol", 1, 2),
            max_items=_int(data, "max_items", 1, 1_000_000),
            max_prefixes=_int(data, "max_prefixes", 1, 1_000_000),
        )
        if config.oprf_version not in config.oprf_versions:
            raise MalformedResponseError("v2/config: oprf_version is not one of oprf_versions")
        return config


class UsageTally:
    """How many of this client's private look-ups matched, per UTC day and type, not yet
    reported (``POST /v2/usage``): the server cannot see matches, and the council's hit
    rate comes from these counts. Reported at most every :data:`USAGE_EVERY` seconds,
    after a look-up, and by ``flush_usage``. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._counts: dict[tuple[str, str], int] = {}
        self._sent = clock()
        self._lock = threading.Lock()

    def add(self, results: Sequence[LookupResult]) -> None:
        day = dt.datetime.now(dt.UTC).date().isoformat()
        with self._lock:
            for result in results:
                key = (day, result.id_type)
                self._counts[key] = self._counts.get(key, 0) + int(result.matched)

    def take(self, *, force: bool = False) -> dict[str, dict[str, int]]:
        """``{day: {type: matched}}`` to report now (emptied), or ``{}`` if not due."""
        with self._lock:
            if not self._counts or (not force and self._clock() - self._sent < USAGE_EVERY):
                return {}
            taken, self._counts, self._sent = self._counts, {}, self._clock()
        days: dict[str, dict[str, int]] = {}
        for (day, id_type), count in taken.items():
            days.setdefault(day, {})[id_type] = count
        return days

    def give_back(self, day: str, counts: Mapping[str, int]) -> None:
        """Counts a report failed to deliver: sent again with the next one."""
        with self._lock:
            for id_type, count in counts.items():
                self._counts[(day, id_type)] = self._counts.get((day, id_type), 0) + count


def report_usage(tally: UsageTally, *, force: bool = False,
                 retry: bool = False) -> Plan[int]:
    """Report what ``tally`` holds if due (``force``: now): one ``POST /v2/usage`` per day,
    each with its own Idempotency-Key so a retry is not counted twice. Best effort: what
    fails is kept for the next report. Returns how many matches were reported."""
    delivered = 0
    today = dt.datetime.now(dt.UTC).date()
    for day, counts in tally.take(force=force).items():
        if dt.date.fromisoformat(day) < today - dt.timedelta(days=1):
            continue  # the server takes today and yesterday only
        try:
            yield Call("POST", "/usage", {"day": day, "matched": counts}, api=V2, retry=retry,
                       headers={"Idempotency-Key": f"usage-{uuid.uuid4().hex}"})
        except (ClueError, OSError):
            tally.give_back(day, counts)
            continue
        delivered += sum(counts.values())
    return delivered


def _counted(cache: ConfigCache, results: list[LookupResult]) -> Plan[list[LookupResult]]:
    """Count a private look-up's matches and, when due, report the counts: the results
    are returned whatever the report's fate."""
    cache.usage.add(results)
    yield from report_usage(cache.usage)
    return results


class ConfigCache:
    """The client's protocol-2 state: the last ``GET /v2/config`` answer for
    :data:`CONFIG_TTL` seconds (``None``: the server has no version 2), and the match
    counts still to report (``usage``). Thread-safe: one value replaced atomically."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entry: tuple[float, ServerConfig | None] | None = None
        self._lock = threading.Lock()
        self.usage = UsageTally(clock)

    def get(self) -> tuple[bool, ServerConfig | None]:
        """``(fresh, config)``: fresh is False when the server must be asked again."""
        entry = self._entry
        if entry is None or self._clock() - entry[0] >= CONFIG_TTL:
            return False, None
        return True, entry[1]

    def put(self, config: ServerConfig | None) -> None:
        with self._lock:
            self._entry = (self._clock(), config)

    def forget(self) -> None:
        with self._lock:
            self._entry = None


def server_config(cache: ConfigCache, *, refresh: bool = False,
                  retry: bool = True) -> Plan[ServerConfig | None]:
    """The server's v2 settings (cached), or None if it answers 404 (no version 2).

    Who can forge that 404 gains nothing: with ``private_lookups`` None the server
    chooses the protocol anyway, and with True a 404 is an error, never a downgrade.
    """
    fresh, config = cache.get()
    if fresh and not refresh:
        return config
    try:
        data = yield Call("GET", "/config", api=V2, retry=retry)
    except (NotFoundError, ResponseVerificationError) as exc:
        # A server older than protocol 2 answers /v2 with a 404 it does not sign (it
        # signs only its API's answers). Nothing else unsigned is taken for an answer.
        if isinstance(exc, ResponseVerificationError) and (
                type(exc) is not ResponseVerificationError or exc.status != 404):
            raise
        cache.put(None)
        return None
    config = ServerConfig.from_json(data)
    cache.put(config)
    return config


def required(config: ServerConfig | None) -> ServerConfig:
    if config is None:
        raise PrivateLookupsUnavailable("this CLUE server does not offer private look-ups "
                                        "(protocol version 2): GET /v2/config answered 404")
    return config


def use_private(config: ServerConfig | None, wanted: bool | None) -> bool:
    """Ask privately? ``wanted`` None follows the council (``lookup_protocol``)."""
    if wanted is None:
        return config is not None and config.lookup_protocol >= 2
    if wanted:
        required(config)
    return wanted


# -- choosing v1 or v2 -------------------------------------------------------------------------


def lookup_groups(cache: ConfigCache, groups: Sequence[Sequence[dict[str, Any]]],
                  values: Sequence[str], wanted: bool | None, *,
                  retry: bool = True) -> Plan[list[LookupResult]]:
    """Look up identifiers given as their token fields, one group per identifier (one
    item per network-key version, newest first), by protocol 1 or 2 as the client's
    ``private_lookups`` setting and the server's config say. Results in the order given.
    """
    config = None if wanted is False else (yield from server_config(cache, retry=retry))
    if use_private(config, wanted):
        assert config is not None
        items = [group[0] for group in groups]  # newest network-key version only (§6.5)
        return (yield from lookup_private(cache, config, items, values, retry=retry))
    return (yield from lookup_v1(groups, values, retry=retry))


def lookup_v1(groups: Sequence[Sequence[dict[str, Any]]], values: Sequence[str], *,
              retry: bool = True) -> Plan[list[LookupResult]]:
    """Protocol 1: every group's tokens (all of one width) in ``POST /v1/lookups``, 1,000
    tokens a request; each group's answers merged into one result."""
    width = len(groups[0]) if groups else 1
    per_request = max(_calls.MAX_BATCH // width, 1)
    results: list[LookupResult] = []
    for start in range(0, len(groups), per_request):
        items = [item for group in groups[start:start + per_request] for item in group]
        data = yield Call("POST", "/lookups", {"items": items}, retry=retry)
        answered = _calls.lookup_results(items, data)
        results.extend(_calls.merge(answered[at:at + width])
                       for at in range(0, len(answered), width))
    return [replace(result, value=value) for result, value in zip(results, values, strict=True)]


def token_groups(tokens: Tokens, pairs: Sequence[tuple[str, str]]) -> list[list[dict[str, Any]]]:
    """Each identifier's token fields under every network-key version, newest first."""
    versions = tokens.network_keys.versions
    return [[tokens._token_fields(t, v, version) for version in versions] for t, v in pairs]


# -- evaluating ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluated:
    """One identifier after its evaluation: its entry (an e-mail: and its folded entry)."""

    id_type: str
    exact: EntryRef
    folded: EntryRef | None = None

    @property
    def bucket_id(self) -> bytes:
        """The id whose prefix is revealed: an e-mail's exact entry lives in its folded
        sibling's bucket, so one prefix covers both (docs/private-lookups.md §6.5)."""
        return (self.folded or self.exact).entry_id

    def entries(self) -> list[tuple[EntryRef, str]]:
        """``(entry, kind)``: exact first."""
        found = [(self.exact, "exact")]
        if self.folded is not None:
            found.append((self.folded, "folded"))
        return found


def oprf_inputs(item: Mapping[str, Any]) -> tuple[bytes, bytes | None]:
    """``(OPRF input, exact token)`` of v1 token fields: an e-mail is evaluated on its
    folded token and its exact token bound into its exact entry; any other identifier
    is evaluated on its token (the exact token is then None)."""
    token = decode_token(item["token"])
    if item["type"] == "email":
        return decode_token(item["folded_token"]), token
    return token, None


def evaluate(oprf_version: int, items: Sequence[Mapping[str, Any]], *, retry: bool = True
             ) -> Plan[tuple[list[Evaluated], int]]:
    """One ``POST /v2/evaluations`` for up to ``max_items`` identifiers (each counted):
    their entries, and the ``prefix_bits`` the server answered with."""
    inputs = [oprf_inputs(item) for item in items]
    blinds = keys.oprf_blind_batch([prf_input for prf_input, _ in inputs])
    body = {"oprf_version": oprf_version,
            "items": [{"type": item["type"], "blinded": b64url(blind.blinded_element)}
                      for item, blind in zip(items, blinds, strict=True)]}
    data = yield Call("POST", "/evaluations", body, api=V2, retry=retry)
    elements, prefix_bits = _evaluated(data, oprf_version, len(items))
    try:
        outputs = keys.oprf_finalize_batch(blinds, elements)
    except keys.OprfError:
        raise MalformedResponseError("an evaluated element in the server's answer is not a "
                                     "valid ristretto255 element (the identity, or not a "
                                     "canonical encoding)") from None
    evaluated = []
    for item, (_, exact_token), output in zip(items, inputs, outputs, strict=True):
        if exact_token is None:
            evaluated.append(Evaluated(item["type"], derive_entry(output, "exact")))
        else:
            exact, folded = derive_email_entries(output, exact_token)
            evaluated.append(Evaluated(item["type"], exact, folded))
    return evaluated, prefix_bits


def evaluate_all(config: ServerConfig, items: Sequence[Mapping[str, Any]], *,
                 retry: bool = True) -> Plan[tuple[list[Evaluated], int]]:
    """:func:`evaluate` in chunks of the server's ``max_items``."""
    evaluated: list[Evaluated] = []
    prefix_bits = config.prefix_bits
    for start in range(0, len(items), config.max_items):
        chunk, prefix_bits = yield from evaluate(
            config.oprf_version, items[start:start + config.max_items], retry=retry)
        evaluated.extend(chunk)
    return evaluated, prefix_bits


def _evaluated(data: Any, oprf_version: int, count: int) -> tuple[list[bytes], int]:
    if not isinstance(data, dict) or data.get("oprf_version") != oprf_version:
        raise MalformedResponseError("the evaluations answer is not for the OPRF version asked")
    prefix_bits = _int(data, "prefix_bits", 1, 32)
    elements = data.get("evaluated")
    if not isinstance(elements, list) or len(elements) != count:
        raise MalformedResponseError("the server answered a different number of evaluated "
                                     "elements than identifiers asked")
    try:
        return [decode_token(text) for text in elements], prefix_bits
    except ValueError:
        raise MalformedResponseError("an evaluated element in the server's answer is not "
                                     "43 base64url characters") from None


# -- buckets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    """One bucket of ``POST /v2/buckets``: sealed answers by entry id, and which of them
    are the caller's own (``mine``)."""

    sealed: Mapping[bytes, bytes]
    mine: frozenset[bytes]

    @classmethod
    def from_json(cls, data: Any) -> tuple[int, Bucket]:
        """``(prefix, bucket)``, checked: whole 54-byte records, ids ascending and
        distinct, ``mine`` distinct positions within the bucket."""
        if not isinstance(data, dict):
            raise MalformedResponseError("a bucket in the server's answer is not an object")
        prefix = _int(data, "prefix", 0, 0xFFFFFFFF)
        raw = _b64url_strict(data.get("entries"), "a bucket's entries")
        if len(raw) % _RECORD_BYTES:
            raise MalformedResponseError(f"bucket {prefix}: its entries are {len(raw)} bytes, "
                                         f"not whole {_RECORD_BYTES}-byte records")
        ids = [raw[at:at + ENTRY_ID_BYTES] for at in range(0, len(raw), _RECORD_BYTES)]
        if any(a >= b for a, b in itertools.pairwise(ids)):
            raise MalformedResponseError(f"bucket {prefix}: entries not sorted by id or "
                                         "an id repeated")
        mine = data.get("mine")
        if not isinstance(mine, list) or len(set(mine)) != len(mine) or not all(
                type(p) is int and 0 <= p < len(ids) for p in mine):
            raise MalformedResponseError(f"bucket {prefix}: 'mine' is not a list of distinct "
                                         "positions in the bucket")
        sealed = {entry_id: raw[at + ENTRY_ID_BYTES:at + _RECORD_BYTES]
                  for entry_id, at in zip(ids, range(0, len(raw), _RECORD_BYTES), strict=True)}
        return prefix, cls(sealed, frozenset(ids[p] for p in mine))


def buckets(oprf_version: int, prefix_bits: int, prefixes: Sequence[int], *,
            retry: bool = True) -> Plan[dict[int, Bucket]]:
    """One ``POST /v2/buckets`` (no quota): every prefix asked, answered exactly once."""
    body = {"oprf_version": oprf_version, "prefix_bits": prefix_bits,
            "prefixes": list(prefixes)}
    data = yield Call("POST", "/buckets", body, api=V2, retry=retry)
    if not isinstance(data, dict) or data.get("oprf_version") != oprf_version \
            or data.get("prefix_bits") != prefix_bits:
        raise MalformedResponseError("the buckets answer is not for the OPRF version and "
                                     "prefix length asked")
    _int(data, "cursor", 0, (1 << 64) - 1)
    rows = data.get("buckets")
    if not isinstance(rows, list):
        raise MalformedResponseError("the server's answer has no 'buckets' list")
    found = dict(Bucket.from_json(row) for row in rows)
    if len(found) != len(rows) or set(found) != set(prefixes):
        raise MalformedResponseError("the server answered other buckets than the prefixes "
                                     "asked")
    return found


def all_buckets(config: ServerConfig, prefix_bits: int, prefixes: Sequence[int], *,
                retry: bool = True) -> Plan[dict[int, Bucket]]:
    """:func:`buckets` in chunks of the server's ``max_prefixes``."""
    found: dict[int, Bucket] = {}
    for start in range(0, len(prefixes), config.max_prefixes):
        found.update((yield from buckets(config.oprf_version, prefix_bits,
                                         prefixes[start:start + config.max_prefixes],
                                         retry=retry)))
    return found


def lookup_private(cache: ConfigCache, config: ServerConfig,
                   items: Sequence[Mapping[str, Any]], values: Sequence[str], *,
                   retry: bool = True) -> Plan[list[LookupResult]]:
    """The online private look-up of ``items`` (token fields, one per identifier)."""
    evaluated, prefix_bits = yield from evaluate_all(config, items, retry=retry)
    try:
        found = yield from all_buckets(config, prefix_bits, _prefixes(evaluated, prefix_bits),
                                       retry=retry)
    except ValidationError as exc:
        current = exc.problem.get("prefix_bits")
        if exc.type != PREFIX_BITS_CHANGED or type(current) is not int \
                or not 1 <= current <= 32 or current == prefix_bits:
            raise
        cache.forget()  # the council changed the setting: read it again next time
        prefix_bits = current
        found = yield from all_buckets(config, prefix_bits, _prefixes(evaluated, prefix_bits),
                                       retry=retry)
    return (yield from _counted(cache, [
        match_bucket(config.oprf_version, one, found[bucket_prefix(one.bucket_id, prefix_bits)],
                     value) for one, value in zip(evaluated, values, strict=True)]))


def _prefixes(evaluated: Sequence[Evaluated], prefix_bits: int) -> list[int]:
    return sorted({bucket_prefix(one.bucket_id, prefix_bits) for one in evaluated})


def match_bucket(oprf_version: int, evaluated: Evaluated, bucket: Bucket,
                 value: str = "") -> LookupResult:
    """The result for one identifier from its bucket: each of its entries there opened."""
    answers: list[tuple[str, Answer]] = []
    mine = False
    for entry, kind in evaluated.entries():
        sealed = bucket.sealed.get(entry.entry_id)
        if sealed is not None:
            answers.append((kind, _open(entry, oprf_version, sealed, evaluated.id_type)))
            mine = mine or entry.entry_id in bucket.mine
    return result_of(evaluated.id_type, answers, mine, value)


def _open(entry: EntryRef, oprf_version: int, sealed: bytes, id_type: str) -> Answer:
    try:
        return open_answer(entry, oprf_version, sealed)
    except SealedAnswerError:
        raise MalformedResponseError(f"the server's entry for this {id_type} does not open "
                                     "under its key: the answer is corrupt or forged "
                                     "(not treated as a miss)") from None


def result_of(id_type: str, answers: Sequence[tuple[str, Answer]], mine: bool,
              value: str = "") -> LookupResult:
    """A v1-shaped result from the answers of an identifier's entries that were found
    (``(kind, answer)``): categories sorted by name, as v1 sorts them."""
    if not answers:
        return LookupResult(id_type=id_type, matched=False, value=value)
    merged = merge_answers(answer for _, answer in answers)
    return LookupResult(
        id_type=id_type, matched=True,
        match="exact" if any(kind == "exact" for kind, _ in answers) else "folded",
        categories=tuple(sorted(merged.categories)), reporters=merged.reporters,
        first_reported=merged.first_reported, last_reported=merged.last_reported,
        reported_by_me=mine, disputed=merged.disputed, value=value)


def match_replica(replica: Replica, evaluated: Evaluated, own: frozenset[bytes] | set[bytes],
                  value: str = "") -> LookupResult:
    """The result for one identifier from a local replica (no bucket asked). ``own``:
    this member's own entry ids (from its reports), for ``reported_by_me``."""
    answers: list[tuple[str, Answer]] = []
    mine = False
    for entry, kind in evaluated.entries():
        sealed = replica.sealed(entry.entry_id)
        if sealed is not None:
            answers.append((kind, _open(entry, replica.oprf_version, sealed,
                                        evaluated.id_type)))
            mine = mine or entry.entry_id in own
    return result_of(evaluated.id_type, answers, mine, value)


# -- the replica ---------------------------------------------------------------------------------


def replica_page(oprf_version: int, after: int, limit: int,
                 server_keys: Mapping[str, Ed25519PublicKey]) -> Plan[Delta]:
    """One page of ``GET /v2/replica``, verified with the pinned server keys and checked
    to start at ``after`` and to be for ``oprf_version``. A 410 (cursor expired) raises
    :class:`~clue_client.errors.ServerError` with type :data:`CURSOR_EXPIRED`."""
    data = yield Call("GET", "/replica", params={"oprf_version": oprf_version,
                                                 "after": after, "limit": limit},
                      api=V2, retry=True, binary=DELTA_TYPE)
    try:
        delta = parse_delta(data, server_keys)
    except DeltaError as exc:
        raise MalformedResponseError(f"the server's replica delta is refused: {exc}") from exc
    if delta.oprf_version != oprf_version:
        raise MalformedResponseError("the server's replica delta is for another OPRF version")
    if delta.after != after:
        raise MalformedResponseError(f"the server's replica delta starts after {delta.after}, "
                                     f"not at the cursor {after}")
    return delta


def cursor_expired(exc: ClueError) -> bool:
    """Is ``exc`` the server's "start again from 0" (410 cursor expired)?"""
    return getattr(exc, "type", None) == CURSOR_EXPIRED


# -- checking answers ------------------------------------------------------------------------------


def _int(data: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = data.get(key)
    if type(value) is not int or not low <= value <= high:
        raise MalformedResponseError(f"{key!r} in the server's answer is not an integer "
                                     f"from {low} to {high}")
    return value


def _b64url_strict(text: Any, what: str) -> bytes:
    if not isinstance(text, str) or not text.isascii() or "=" in text:
        raise MalformedResponseError(f"{what} in the server's answer is not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise MalformedResponseError(f"{what} in the server's answer is not base64url") from None
    if b64url(raw) != text:
        raise MalformedResponseError(f"{what} in the server's answer is not base64url")
    return raw


# -- the replica, kept ---------------------------------------------------------------------------

#: Records per replica page: about 5.4 MB, well under the SDK's 16 MB answer limit.
REPLICA_PAGE = 100_000


def sync_replica(cache: ConfigCache, tokens: Tokens, store: ReplicaStore,
                 server_keys: Mapping[str, Ed25519PublicKey], *, limit: int = REPLICA_PAGE,
                 on_delta: Callable[[Delta], None] | None = None) -> Plan[int]:
    """Pull pages into ``store`` until the server has no more; the records applied.

    Each page is verified and must follow on (it starts at the replica's cursor, is for
    its OPRF version, and was issued no earlier than the last page applied); the store
    is saved after each. ``on_delta`` sees each page after it is applied, before it is
    saved. A 410 (cursor expired) starts again from 0. When anything changed, this
    member's own entry ids are read again from its reports (``reported_by_me``):
    registering or withdrawing always changes an entry.
    """
    config = required((yield from server_config(cache)))
    replica = store.replica
    if replica is None or replica.oprf_version not in config.oprf_versions:
        replica = store.start(config.oprf_version)
    applied = 0
    while True:
        try:
            delta = yield from replica_page(replica.oprf_version, replica.cursor, limit,
                                            server_keys)
        except ClueError as exc:
            if not cursor_expired(exc) or replica.cursor == 0:
                raise
            delta = yield from replica_page(replica.oprf_version, 0, limit, server_keys)
        try:
            replica.apply(delta)
        except DeltaError as exc:
            raise MalformedResponseError(f"the server's replica delta is refused: {exc}") from exc
        if on_delta is not None:
            on_delta(delta)
        applied += len(delta.puts) + len(delta.deletes)
        store.save()
        if not delta.more:
            break
    if applied:
        store.own = yield from own_entries(tokens, replica.oprf_version)
        store.save()
    return applied


def own_entries(tokens: Tokens, oprf_version: int) -> Plan[frozenset[bytes]]:
    """The entry ids of this member's reports under ``oprf_version`` (``GET /v1/reports``)."""
    own: set[bytes] = set()
    after: str | None = None
    while True:
        page, after = yield from _calls.reports_page(tokens, after, 500)
        own.update(entry_id for r in page if r.oprf_version == oprf_version
                   for entry_id in (r.entry_id, r.folded_entry_id) if entry_id is not None)
        if not after:
            return frozenset(own)


def lookup_local(cache: ConfigCache, store: ReplicaStore,
                 groups: Sequence[Sequence[dict[str, Any]]], values: Sequence[str]
                 ) -> Plan[list[LookupResult]]:
    """Evaluate (counted, no prefix revealed) and match against the store's replica."""
    config = required((yield from server_config(cache)))
    replica = store.replica
    if replica is None or replica.issued_at == 0:  # no page applied yet
        raise ConfigError(f"{store.directory}: no replica yet: sync it first "
                          "(client.sync_replica)")
    if replica.oprf_version not in config.oprf_versions:
        raise ConfigError(f"{store.directory}: the replica is for OPRF key version "
                          f"{replica.oprf_version}, which the server no longer holds: sync "
                          "it again")
    config = replace(config, oprf_version=replica.oprf_version)
    evaluated, _ = yield from evaluate_all(config, [group[0] for group in groups])
    return (yield from _counted(cache, [match_replica(replica, one, store.own, value)
                                        for one, value in zip(evaluated, values, strict=True)]))


# -- watching ------------------------------------------------------------------------------------


def watch_add(cache: ConfigCache, store: WatchStore, items: Sequence[dict[str, Any]],
              refs: Sequence[str], *,
              progress: Callable[[int, int], None] | None = None) -> Plan[int]:
    """Evaluate the member's own customers (``items``: token fields, newest network-key
    version; ``refs``: the member's reference for each) into the store's watch list,
    chunk by chunk (each identifier one counted evaluation). ``progress(done, total)``
    after each chunk. Returns the number of entries watched afterwards."""
    config = required((yield from server_config(cache)))
    watch = store.watch
    version = config.oprf_version if watch is None else watch.oprf_version
    if version not in config.oprf_versions:
        raise ConfigError(f"{store.directory}: the watch list was evaluated under OPRF key "
                          f"version {version}, which the server no longer holds: start a new "
                          "watch directory and add the customers again")
    config = replace(config, oprf_version=version)
    added: list[tuple[EntryRef, str, str, str]] = []
    for start in range(0, len(items), config.max_items):
        chunk = items[start:start + config.max_items]
        evaluated, _ = yield from evaluate(version, chunk)
        for one, ref in zip(evaluated, refs[start:start + len(chunk)], strict=True):
            added.extend((entry, ref, one.id_type, kind) for entry, kind in one.entries())
        if progress is not None:
            progress(start + len(chunk), len(items))
    store.watch = (WatchList.build(added, version) if watch is None
                   else watch.extended(added))
    store.checked = False
    store.save_watch()
    return len(store.watch)


def watch_poll(cache: ConfigCache, tokens: Tokens, store: WatchStore,
               server_keys: Mapping[str, Ed25519PublicKey],
               on_alert: Callable[[Alert], None] | None, *,
               limit: int = REPLICA_PAGE) -> Plan[list[Alert]]:
    """Sync the watch's replica and raise an alert per watched change.

    Every delta is matched as it is applied (alerts delivered, then the watch state
    saved, then the replica: an alert may come twice after a crash, never not at all).
    After customers were added, or a full re-download, the whole replica is matched
    once instead.
    """
    watch = store.watch
    if watch is None:
        raise ConfigError(f"{store.directory}: no watch list: add customers first "
                          "(clue watch add)")
    if store.replica.replica is not None \
            and store.replica.replica.oprf_version != watch.oprf_version:
        store.replica.start(watch.oprf_version)
    elif store.replica.replica is None:
        store.replica.start(watch.oprf_version)
    alerts: list[Alert] = []

    def deliver(raised: list[Alert]) -> None:
        for alert in raised:
            if on_alert is not None:
                on_alert(alert)
            alerts.append(alert)

    def on_delta(delta: Delta) -> None:
        if delta.after == 0 and store.checked:
            store.checked = False  # a full (re-)download: match all of it at the end
            store.save_state()
        if store.checked:
            deliver(watch.match(delta))
            store.save_state()

    config = required((yield from server_config(cache)))
    if watch.oprf_version not in config.oprf_versions:
        raise ConfigError(f"{store.directory}: the watch list was evaluated under OPRF key "
                          f"version {watch.oprf_version}, which the server no longer holds "
                          f"(it holds {', '.join(map(str, config.oprf_versions))}): start a "
                          "new watch directory and add the customers again")
    yield from sync_replica(cache, tokens, store.replica, server_keys, limit=limit,
                            on_delta=on_delta)
    if not store.checked:
        replica = store.replica.replica
        assert replica is not None
        deliver(watch.match_replica(replica))
        store.checked = True
        store.save_state()
    return alerts
