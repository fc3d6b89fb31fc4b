"""A check: tokenise, ask CLUE once (within a deadline), decide, never fail the caller.

Internal: use :meth:`ClueClient.check_signup` / :meth:`ClueClient.check_payment` /
:meth:`ClueClient.check_static_qr` (which runs :meth:`DecisionService.check_qr`), or
the same methods of :class:`AsyncClueClient` (``check_async`` / ``check_qr_async``).

One check is at most one signed ``POST /lookups`` for everything not in the cache
(the account's identifiers and, for a scanned QR code, its payees and store) -- or,
with private look-ups (protocol 2), one evaluation and one bucket request, after a
``GET /v2/config`` at most every 300 s -- sent
without retries and abandoned at the deadline (``Fallback.timeout_ms`` after the
call, 300 ms by default; ``check_static_qr(timeout=)`` may set its own). The sync
client runs the request on a small shared thread pool so that the deadline holds
whatever transport is in use; the request itself carries the same deadline down to
its sockets, so an abandoned one ends by then too and never holds a pool thread (a
server trickling its answer cannot starve the pool). The async client awaits the
request under the same deadline instead.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from clue_client._calls import Plan, run, run_async
from clue_client._private import lookup_groups
from clue_client._wire import Deadline
from clue_client.decisions.cache import LookupCache, request_key
from clue_client.decisions.engine import decide, decide_degraded
from clue_client.decisions.models import Decision, Evidence, IdentifierEvidence, QrEvidence
from clue_client.decisions.policy import Fallback, Policy, load_policy
from clue_client.decisions.qrscan import QrUnavailable, ScannedQr, read_qr
from clue_client.errors import ClueError, DeadlineExceeded, InvalidIdentifier
from clue_client.models import LookupResult

if TYPE_CHECKING:
    from clue_client.client import ClientBase

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


@dataclass
class _Pending:
    """A check between its local part and CLUE's answer."""

    asks: list[_Ask]
    answers: dict[int, LookupResult]  # by index in asks: from the cache so far
    fetch: list[int]  # indexes in asks to ask CLUE about
    unchecked: list[tuple[str, str]]
    scan: ScannedQr | None
    problem: str | None
    amount_jpy: int | None
    deadline: Deadline


class DecisionService:
    """Turns a client's look-ups into decisions under one policy."""

    def __init__(self, client: ClientBase, *, policy: Policy, fallback: Fallback,
                 cache: LookupCache | None = None, strict: bool = False) -> None:
        self.client = client
        self.policy = policy
        self.fallback = fallback
        self.cache = cache
        self.strict = strict

    @classmethod
    def create(cls, client: ClientBase, *, policy: Policy | str | os.PathLike[str] | None,
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
        """The decision, asking CLUE (sync client) within the fallback's budget."""
        decision, _answers = self._decide(self._prepare(identifiers, qr_payload, amount_jpy,
                                                        None), now)
        return decision

    async def check_async(self, identifiers: Mapping[str, str | None], *,
                          qr_payload: str | None = None, amount_jpy: int | None = None,
                          now: dt.datetime | dt.date | None = None) -> Decision:
        """The same decision for the async client: the request is awaited, not pooled."""
        pending = self._prepare(identifiers, qr_payload, amount_jpy, None)
        decision, _answers = await self._decide_async(pending, now)
        return decision

    def check_qr(self, payload: str, *, now: dt.datetime | dt.date | None = None,
                 timeout: float | None = None
                 ) -> tuple[Decision, tuple[LookupResult, ...]]:
        """A scanned code alone, under the policy: the decision and CLUE's answers for
        the code's payees and store, in that order (value: the ``qr_payee`` string or
        the store ID). An answer CLUE did not give in time is missing; the decision is
        then degraded, as for :meth:`check`. ``timeout`` (seconds) replaces the
        fallback's budget for this call."""
        decision, answers = self._decide(self._prepare_qr(payload, timeout), now)
        return decision, _valued(answers)

    async def check_qr_async(self, payload: str, *, now: dt.datetime | dt.date | None = None,
                             timeout: float | None = None
                             ) -> tuple[Decision, tuple[LookupResult, ...]]:
        """:meth:`check_qr` for the async client."""
        decision, answers = await self._decide_async(self._prepare_qr(payload, timeout), now)
        return decision, _valued(answers)

    def _decide(self, pending: _Pending, now: dt.datetime | dt.date | None
                ) -> tuple[Decision, list[tuple[str, LookupResult]]]:
        fresh: list[LookupResult] | None = None
        error: ClueError | None = None
        if pending.fetch:
            try:
                fresh = self._fetch(pending)
            except ClueError as exc:
                if self.strict:
                    raise
                error = exc
        return self._conclude(pending, fresh, error, now)

    async def _decide_async(self, pending: _Pending, now: dt.datetime | dt.date | None
                            ) -> tuple[Decision, list[tuple[str, LookupResult]]]:
        fresh: list[LookupResult] | None = None
        error: ClueError | None = None
        if pending.fetch:
            try:
                plan = self._plan(pending)
                deadline = pending.deadline
                fresh = await run_async(
                    plan, lambda call: self.client._http.request(call, deadline))
            except ClueError as exc:
                if self.strict:
                    raise
                error = exc
        return self._conclude(pending, fresh, error, now)

    def _prepare_qr(self, payload: str, timeout: float | None) -> _Pending:
        if not isinstance(payload, str):
            raise TypeError(f"payload must be a str, not {type(payload).__name__}")
        return self._prepare({}, payload, None, timeout)

    def _prepare(self, identifiers: Mapping[str, str | None], qr_payload: str | None,
                 amount_jpy: int | None, timeout: float | None) -> _Pending:
        deadline = Deadline(self.fallback.timeout if timeout is None else timeout)
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
        fetch: list[int] = []
        for index, ask in enumerate(asks):
            cached = self.cache.get(ask.key) if self.cache is not None else None
            if cached is None:
                fetch.append(index)
            else:
                answers[index] = cached
        return _Pending(asks, answers, fetch, unchecked, scan, problem, amount_jpy, deadline)

    def _conclude(self, pending: _Pending, fresh: list[LookupResult] | None,
                  error: ClueError | None, now: dt.datetime | dt.date | None
                  ) -> tuple[Decision, list[tuple[str, LookupResult]]]:
        asks, answers, unchecked, problem = (pending.asks, pending.answers, pending.unchecked,
                                             pending.problem)
        if error is not None:
            problem = problem or _describe(error)
            unchecked.extend((asks[i].id_type, "CLUE unavailable") for i in pending.fetch)
        elif fresh is not None:
            for index, result in zip(pending.fetch, fresh, strict=True):
                answers[index] = result
                if self.cache is not None:
                    self.cache.put(asks[index].key, result)

        today = _today(now)
        evidence = Evidence(
            identifiers=tuple(IdentifierEvidence.from_lookup(answers[i], today,
                                                             from_qr=asks[i].from_qr)
                              for i in sorted(answers)),
            qr=_qr_evidence(pending.scan, [(asks[i], answers[i]) for i in sorted(answers)]),
            unchecked=tuple(unchecked), today=today, amount_jpy=pending.amount_jpy)
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
        return _Ask(id_type, items, request_key(client.key_id, items), from_qr,
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

    def _plan(self, pending: _Pending) -> Plan[list[LookupResult]]:
        """The look-up of every ask to fetch, by protocol 1 or 2 as the client chooses
        (``private_lookups``; the server's config is cached for 300 s)."""
        asks = [pending.asks[i] for i in pending.fetch]
        if sum(len(ask.items) for ask in asks) > MAX_ITEMS:
            raise ValueError(f"a check asks at most {MAX_ITEMS} tokens")
        if pending.deadline.left() <= 0:
            raise DeadlineExceeded(f"no time left for CLUE within "
                                   f"{pending.deadline.timeout * 1000:.0f} ms",
                                   pending.deadline.timeout)
        # No retries: the budget is too short for one, and a fallback is the answer.
        return lookup_groups(self.client._v2, [ask.items for ask in asks], [""] * len(asks),
                             self.client.private_lookups, retry=False)

    def _fetch(self, pending: _Pending) -> list[LookupResult]:
        if inspect.iscoroutinefunction(self.client._http.request):
            raise TypeError("an AsyncClueClient's checks are awaited: use check_async")
        plan = self._plan(pending)
        deadline = pending.deadline
        # The client's own signed transport (same keys, same connection pool), with the
        # check's deadline, which it enforces on every socket operation. A private
        # look-up is two requests (evaluation, bucket), both within the deadline.
        future: Future[list[LookupResult]] = _executor().submit(
            run, plan, lambda call: self.client._http.request(call, deadline))
        try:
            return future.result(timeout=max(deadline.left(), 0))
        except FutureTimeout as exc:
            future.cancel()
            raise deadline.exceeded() from exc


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


def _valued(answers: list[tuple[str, LookupResult]]) -> tuple[LookupResult, ...]:
    """A scanned code's answers, each carrying the payee or store ID it answers for."""
    return tuple(replace(result, value=value) for value, result in answers)


def _today(now: dt.datetime | dt.date | None) -> dt.date:
    if now is None:
        return dt.datetime.now(dt.UTC).date()
    if isinstance(now, dt.datetime):
        return now.astimezone(dt.UTC).date() if now.tzinfo is not None else now.date()
    return now


def _describe(exc: ClueError) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:197] + "..."
