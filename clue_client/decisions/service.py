"""A check: tokenise, ask CLUE once (within a deadline), decide, never fail the caller.

Internal: use :meth:`ClueClient.check_signup` / :meth:`ClueClient.check_payment` /
:meth:`ClueClient.check_static_qr` (which runs :meth:`DecisionService.check_qr`).

One check is at most one signed ``POST /lookups`` for everything not in the cache
(the account's identifiers and, for a scanned QR code, its payees and store), sent
without retries and abandoned at the deadline (``Fallback.timeout_ms`` after the
call, 300 ms by default). The request runs on a small shared thread pool so that
the deadline holds however the server or the network misbehaves; a request
abandoned at the deadline finishes (or times out) in the background and is ignored.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from clue_client.decisions.cache import LookupCache, request_key
from clue_client.decisions.engine import decide, decide_degraded
from clue_client.decisions.models import Decision, Evidence, IdentifierEvidence, QrEvidence
from clue_client.decisions.policy import Fallback, Policy, load_policy
from clue_client.decisions.qrscan import QrUnavailable, ScannedQr, read_qr
from clue_client.errors import (
    ClueError,
    InvalidIdentifier,
    ResponseVerificationError,
    TransportError,
)
from clue_client.models import LookupResult

if TYPE_CHECKING:
    from clue_client.client import ClueClient

__all__ = ["DecisionService"]

log = logging.getLogger("clue_client.decisions")

MAX_ITEMS = 1000  # the server's batch limit; a check asks far fewer
_POOL_WORKERS = 16
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_POOL_WORKERS,
                                       thread_name_prefix="clue-decision")
        return _pool


if hasattr(os, "register_at_fork"):  # a forked worker must not inherit the parent's threads
    def _reset_pool() -> None:
        global _pool
        _pool = None

    os.register_at_fork(after_in_child=_reset_pool)


@dataclass(frozen=True)
class _Ask:
    """One identifier to look up: its items (one per network-key version) and cache key."""

    id_type: str
    items: tuple[dict[str, Any], ...]
    key: str
    from_qr: bool
    value: str = field(default="", repr=False)
    """The identifier as given; kept only for a scanned code's own payees and store."""


class DecisionService:
    """Turns a client's look-ups into decisions under one policy."""

    def __init__(self, client: ClueClient, *, policy: Policy, fallback: Fallback,
                 cache: LookupCache | None = None, strict: bool = False) -> None:
        self.client = client
        self.policy = policy
        self.fallback = fallback
        self.cache = cache
        self.strict = strict

    @classmethod
    def create(cls, client: ClueClient, *, policy: Policy | str | os.PathLike[str] | None,
               fallback: Fallback | str | None, cache: LookupCache | None,
               strict: bool | None) -> DecisionService:
        """Resolve the client's keywords: a policy file path or ``None`` (the default
        policy); a fallback tier name, a :class:`Fallback` or ``None`` (the policy's)."""
        if not isinstance(policy, Policy):
            policy = load_policy(policy)
        if fallback is None:
            fallback = policy.fallback
        elif isinstance(fallback, str):
            fallback = Fallback(fallback, policy.fallback.timeout_ms)
        if cache is not None and not isinstance(cache, LookupCache):
            raise TypeError("cache must be a clue_client.decisions.LookupCache or None")
        return cls(client, policy=policy, fallback=fallback, cache=cache, strict=bool(strict))

    def check(self, identifiers: Mapping[str, str | None], *, qr_payload: str | None = None,
              amount_jpy: int | None = None,
              now: dt.datetime | dt.date | None = None) -> Decision:
        decision, _answers = self._check(identifiers, qr_payload, amount_jpy, now)
        return decision

    def check_qr(self, payload: str, *, now: dt.datetime | dt.date | None = None
                 ) -> tuple[Decision, tuple[LookupResult, ...]]:
        """A scanned code alone, under the policy: the decision and CLUE's answers for
        the code's payees and store, in that order (value: the ``qr_payee`` string or
        the store ID). An answer CLUE did not give in time is missing; the decision is
        then degraded, as for :meth:`check`."""
        if not isinstance(payload, str):
            raise TypeError(f"payload must be a str, not {type(payload).__name__}")
        decision, answers = self._check({}, payload, None, now)
        return decision, tuple(replace(result, value=value) for value, result in answers)

    def _check(self, identifiers: Mapping[str, str | None], qr_payload: str | None,
               amount_jpy: int | None, now: dt.datetime | dt.date | None
               ) -> tuple[Decision, list[tuple[str, LookupResult]]]:
        deadline = time.monotonic() + self.fallback.timeout
        if amount_jpy is not None and (isinstance(amount_jpy, bool)
                                       or not isinstance(amount_jpy, int) or amount_jpy < 0):
            raise ValueError(f"amount_jpy must be a whole number of yen ≥ 0, not {amount_jpy!r}")
        given = {t: v for t, v in identifiers.items() if v is not None and v != ""}
        if not given and qr_payload is None:
            raise ValueError("give at least one identifier (or a qr_payload) to check")
        asks: list[_Ask] = []
        unchecked: list[tuple[str, str]] = []
        for id_type, value in given.items():
            try:
                asks.append(self._ask(id_type, value, from_qr=False))
            except InvalidIdentifier as exc:
                if self.strict:
                    raise
                unchecked.append((id_type, exc.reason))
        scan, problem = self._scan(qr_payload, asks, unchecked)

        answers: dict[int, LookupResult] = {}
        pending: list[int] = []
        for index, ask in enumerate(asks):
            cached = self.cache.get(ask.key) if self.cache is not None else None
            if cached is None:
                pending.append(index)
            else:
                answers[index] = cached
        if pending:
            try:
                fresh = self._fetch([asks[i] for i in pending], deadline)
            except ClueError as exc:
                if self.strict:
                    raise
                problem = problem or _describe(exc)
                unchecked.extend((asks[i].id_type, "CLUE unavailable") for i in pending)
            else:
                for index, result in zip(pending, fresh, strict=True):
                    answers[index] = result
                    if self.cache is not None:
                        self.cache.put(asks[index].key, result)

        today = _today(now)
        evidence = Evidence(
            identifiers=tuple(IdentifierEvidence.from_lookup(answers[i], today,
                                                             from_qr=asks[i].from_qr)
                              for i in sorted(answers)),
            qr=_qr_evidence(scan, [(asks[i], answers[i]) for i in sorted(answers)]),
            unchecked=tuple(unchecked), today=today, amount_jpy=amount_jpy)
        qr_answers = [(asks[i].value, answers[i]) for i in sorted(answers) if asks[i].from_qr]
        if problem is not None:
            decision = decide_degraded(self.policy, evidence, self.fallback, problem)
            log.warning("CLUE check degraded to %r: %s", decision.tier, problem)
            return decision, qr_answers
        return decide(self.policy, evidence), qr_answers

    # -- steps ---------------------------------------------------------------------------

    def _ask(self, id_type: str, value: str, *, from_qr: bool) -> _Ask:
        client = self.client
        items = tuple(client._token_fields(id_type, value, version)
                      for version in client.network_keys.versions)
        return _Ask(id_type, items, request_key(client._http.key_id, items), from_qr,
                    value if from_qr else "")

    def _scan(self, payload: str | None, asks: list[_Ask], unchecked: list[tuple[str, str]]
              ) -> tuple[ScannedQr | None, str | None]:
        """Parse a QR payload locally, adding its payees and store to ``asks``."""
        if payload is None:
            return None, None
        try:
            scan = read_qr(payload)
        except QrUnavailable as exc:
            if self.strict:
                raise
            unchecked.append(("qr_payload", str(exc)))
            return None, "QR parser unavailable"
        qr_ids = [("qr_payee", p) for p in scan.payees]
        if scan.store_id is not None:
            qr_ids.append(("jpqr_store", scan.store_id))
        for id_type, value in qr_ids:
            try:
                asks.append(self._ask(id_type, value, from_qr=True))
            except InvalidIdentifier as exc:  # the payload's own data: never the caller's fault
                unchecked.append((id_type, exc.reason))
        return scan, None

    def _fetch(self, asks: Sequence[_Ask], deadline: float) -> list[LookupResult]:
        items = [item for ask in asks for item in ask.items]
        if len(items) > MAX_ITEMS:
            raise ValueError(f"a check asks at most {MAX_ITEMS} tokens")
        budget = deadline - time.monotonic()
        if budget <= 0:
            raise TransportError(f"no time left for CLUE within {self.fallback.timeout_ms} ms")
        # The client's own signed session (same keys, same connection pool), with the
        # check's budget as its timeout and no retries.
        session = copy.copy(self.client._http)
        session.timeout = budget
        session.retries = 0
        future: Future[Any] = _executor().submit(session.request, "POST", "/lookups",
                                                 {"items": items})
        try:
            data = future.result(timeout=budget)
        except FutureTimeout as exc:
            future.cancel()
            raise TransportError(f"no answer from CLUE within {self.fallback.timeout_ms} ms"
                                 ) from exc
        rows = data.get("results") if isinstance(data, dict) else None
        if not isinstance(rows, list) or len(rows) != len(items):
            raise ResponseVerificationError("the server answered a different number of "
                                            "results than identifiers asked")
        try:
            results = [LookupResult.from_json(item["type"], row)
                       for item, row in zip(items, rows, strict=True)]
        except (KeyError, TypeError, ValueError) as exc:
            raise ResponseVerificationError(f"malformed look-up result: {exc!r}") from exc
        merged: list[LookupResult] = []
        start = 0
        for ask in asks:
            group = results[start:start + len(ask.items)]
            start += len(ask.items)
            result = group[0]
            for other in group[1:]:
                result = result.merge(other)
            merged.append(result)
        return merged


def _qr_evidence(scan: ScannedQr | None, answered: list[tuple[_Ask, LookupResult]]
                 ) -> QrEvidence | None:
    if scan is None:
        return None
    flags = set(scan.flags)
    for ask, result in answered:
        if ask.from_qr and result.matched:
            flags.add("payee_reported" if ask.id_type == "qr_payee" else "store_swap_reported")
    return QrEvidence(frozenset(flags), error_code=scan.error_code, store_id=scan.store_id,
                      payees=len(scan.payees), warnings=scan.warnings)


def _today(now: dt.datetime | dt.date | None) -> dt.date:
    if now is None:
        return dt.datetime.now(dt.UTC).date()
    if isinstance(now, dt.datetime):
        return now.astimezone(dt.UTC).date() if now.tzinfo is not None else now.date()
    return now


def _describe(exc: ClueError) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:197] + "..."
