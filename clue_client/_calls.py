"""Every API call as a *plan*: what to ask and how to read the answers, with no I/O.

Internal: use :class:`clue_client.ClueClient` or :class:`clue_client.AsyncClueClient`.

A plan is a generator that yields :class:`~clue_client._wire.Call` objects and receives
each call's verified JSON answer (or has the call's error thrown in at the ``yield``);
its return value is the method's result. The sync client runs plans with :func:`run`,
the async client with :func:`run_async`, so both share every line of tokenising,
request building and answer checking::

    def withdraw(report_id):
        yield Call("DELETE", f"/reports/{quote(report_id, safe='')}")

Every answer is checked for the shape the method promises; anything else is a
:class:`~clue_client.errors.MalformedResponseError`, never a ``KeyError``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import keys
from clue_client import notes, stickers
from clue_client._wire import Call
from clue_client.disputes import ANSWERS, check_reason
from clue_client.errors import (
    ClueError,
    ConfigError,
    InvalidIdentifier,
    MalformedResponseError,
    NotFoundError,
)
from clue_client.models import (
    DisputeAnswer,
    FiledDispute,
    IncomingDispute,
    LookupResult,
    OutgoingDispute,
    Report,
    ReportInput,
)
from clue_client.protocol import CATEGORIES

T = TypeVar("T")
Plan = Generator[Call, Any, T]

MAX_BATCH = 1000
ID_PARAMETERS = ("phone", "email", "ip", "device_id", "bank_account", "jpqr_store", "qr_payee")


class Tokens(Protocol):
    """What plans need from a client: its keys, read at call time."""

    notes_key: keys.SymmetricKey | None

    @property
    def network_keys(self) -> keys.Keyring: ...

    def _token_fields(self, id_type: str, value: str, version: int) -> dict[str, Any]: ...


# -- running plans ----------------------------------------------------------------------------


def run(plan: Plan[T], send: Callable[[Call], Any]) -> T:
    """Drive ``plan`` with a blocking ``send``."""
    reply: Any = None
    error: ClueError | None = None
    while True:
        try:
            call = plan.send(reply) if error is None else plan.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            reply, error = send(call), None
        except ClueError as exc:
            reply, error = None, exc


async def run_async(plan: Plan[T], send: Callable[[Call], Awaitable[Any]]) -> T:
    """Drive ``plan`` with an awaitable ``send``."""
    reply: Any = None
    error: ClueError | None = None
    while True:
        try:
            call = plan.send(reply) if error is None else plan.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            reply, error = await send(call), None
        except ClueError as exc:
            reply, error = None, exc


# -- plumbing -----------------------------------------------------------------------------------


def ping() -> Plan[dict[str, Any]]:
    data = yield Call("GET", "/ping", retry=True)
    return _object(data, "ping")


def me() -> Plan[dict[str, Any]]:
    data = yield Call("GET", "/members/me", retry=True)
    return _object(data, "members/me")


def server_key_info() -> Plan[dict[str, Any]]:
    data = yield Call("GET", "/server-key", retry=True)
    return _object(data, "server-key")


def network_directory() -> Plan[dict[str, Any]]:
    data = yield Call("GET", "/network-keys", retry=True)
    return _object(data, "network-keys")


def my_envelopes() -> Plan[list[dict[str, Any]]]:
    data = yield Call("GET", "/network-keys/envelopes", retry=True)
    envelopes = _list(data, "envelopes")
    if not all(isinstance(e, dict) for e in envelopes):
        raise MalformedResponseError("an envelope in the server's answer is not an object")
    return envelopes


def simple(call: Call) -> Plan[None]:
    """A call whose answer carries nothing the caller needs (it is still verified)."""
    yield call


# -- looking up ---------------------------------------------------------------------------------


def identifiers_given(given: dict[str, str | None]) -> list[tuple[str, str]]:
    pairs = [(t, v) for t, v in given.items() if v is not None]
    if not pairs:
        raise ValueError("give at least one identifier to look up")
    return pairs


def as_pairs(identifiers: Iterable[tuple[str, str] | dict[str, str]]) -> list[tuple[str, str]]:
    return [(i["type"], i["value"]) if isinstance(i, dict) else (i[0], i[1])
            for i in identifiers]


def lookup_results(items: Sequence[dict[str, Any]], data: Any,
                   values: Sequence[str] | None = None) -> list[LookupResult]:
    """The answers to ``POST /lookups`` for ``items``, one per item, checked."""
    rows = _list(data, "results")
    if len(rows) != len(items):
        raise MalformedResponseError("the server answered a different number of results "
                                     "than identifiers asked")
    named = values if values is not None else [""] * len(items)
    return _parse("look-up result", lambda: [
        LookupResult.from_json(item["type"], row, value)
        for item, row, value in zip(items, rows, named, strict=True)])


def merge(group: Sequence[LookupResult]) -> LookupResult:
    """One identifier's answers under each network-key version, as one."""
    result = group[0]
    for other in group[1:]:
        result = result.merge(other)
    return result


# -- registering --------------------------------------------------------------------------------


def register_many(tokens: Tokens, items: Sequence[ReportInput],
                  idempotency_key: str | None) -> Plan[list[Report]]:
    if not items:
        return []
    if len(items) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} identifiers per request; split the batch")
    body = {"reports": [_report_fields(tokens, index, item) for index, item in enumerate(items)]}
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    data = yield Call("POST", "/reports", body, headers=headers, retry=True)
    rows = _list(data, "reports")
    if len(rows) != len(items):
        raise MalformedResponseError("the server answered a different number of reports "
                                     "than identifiers registered")
    return [_report(tokens, row) for row in rows]


def _report_fields(tokens: Tokens, index: int, item: ReportInput) -> dict[str, Any]:
    if item.category not in CATEGORIES:
        raise InvalidIdentifier(item.id_type, f"item {index}: unknown category "
                                f"{item.category!r}; one of {', '.join(CATEGORIES)}")
    fields = tokens._token_fields(item.id_type, item.value, tokens.network_keys.current.version)
    fields["category"] = item.category
    if item.expires_in_days is not None:
        fields["expires_in_days"] = item.expires_in_days
    if item.note is not None:
        if tokens.notes_key is None:
            raise ConfigError("a note needs this member's notes key (member-notes.key)")
        fields["note"] = notes.seal(tokens.notes_key, item.note, id_type=item.id_type,
                                    category=item.category)
    return fields


def _report(tokens: Tokens, data: Any) -> Report:
    def read() -> Report:
        note = None
        if data.get("note") and tokens.notes_key is not None:
            note = notes.open_note(tokens.notes_key, data["note"], id_type=data["type"],
                                   category=data["category"])
        return Report.from_json(data, note=note)

    return _parse("report", read)


def withdraw(report_id: str) -> Plan[None]:
    yield Call("DELETE", f"/reports/{quote(report_id, safe='')}")


def reports_page(tokens: Tokens, after: str | None,
                 page_size: int) -> Plan[tuple[list[Report], str | None]]:
    params: dict[str, Any] = {"limit": page_size}
    if after:
        params["after"] = after
    data = yield Call("GET", "/reports", params=params, retry=True)
    page = [_report(tokens, row) for row in _list(data, "reports")]
    following = data.get("next_after")
    if following is not None and not isinstance(following, str):
        raise MalformedResponseError("next_after in the server's answer is not a string")
    return page, following or None


def find_reports(tokens: Tokens, pairs: Sequence[tuple[str, str]]
                 ) -> Plan[list[tuple[list[Report], list[Report]]]]:
    """This member's own reports for each identifier, ``(exact, folded)``, asked under
    every network-key version held, tokens in the body of ``POST /reports/search``."""
    versions = tokens.network_keys.versions
    width = len(versions)
    items = [tokens._token_fields(t, v, version) for t, v in pairs for version in versions]
    rows: list[Any] = []
    per_request = MAX_BATCH // width * width
    for start in range(0, len(items), per_request):
        chunk = items[start:start + per_request]
        data = yield Call("POST", "/reports/search", {"items": chunk}, retry=True)
        results = _list(data, "results")
        if len(results) != len(chunk):
            raise MalformedResponseError("the server answered a different number of results "
                                         "than identifiers asked")
        rows.extend(results)
    found = []
    for index in range(len(pairs)):
        exact: dict[str, Report] = {}
        folded: dict[str, Report] = {}
        for row in rows[index * width:(index + 1) * width]:
            if not isinstance(row, dict):
                raise MalformedResponseError("a search result in the server's answer is not "
                                             "an object")
            exact.update((r.id, r) for r in (_report(tokens, d) for d in _list(row, "exact")))
            folded.update((r.id, r) for r in (_report(tokens, d) for d in _list(row, "folded")))
        # Only the folded form matched: listed apart, so a withdrawal by value never
        # takes it by accident.
        found.append(([exact[k] for k in sorted(exact)],
                      [folded[k] for k in sorted(folded) if k not in exact]))
    return found


def limits() -> Plan[dict[str, Any]]:
    data = yield Call("GET", "/limits", retry=True)
    return _object(data, "limits")


# -- disputes -----------------------------------------------------------------------------------


def open_dispute(tokens: Tokens, id_type: str, value: str, reason: str) -> Plan[FiledDispute]:
    """Newest network-key version first: reports made under an older one match its token."""
    check_reason(reason)
    versions = tokens.network_keys.versions
    for position, version in enumerate(versions):
        body = tokens._token_fields(id_type, value, version)
        body["reason"] = reason
        try:
            data = yield Call("POST", "/disputes", body)
        except NotFoundError:
            if position == len(versions) - 1:
                raise
            continue
        return _parse("dispute", FiledDispute.from_json, data)
    raise AssertionError("unreachable: a keyring holds at least one version")


def incoming_disputes() -> Plan[list[IncomingDispute]]:
    data = yield Call("GET", "/disputes/incoming", retry=True)
    rows = _list(data, "disputes")
    return _parse("dispute", lambda: [IncomingDispute.from_json(row) for row in rows])


def outgoing_disputes() -> Plan[list[OutgoingDispute]]:
    data = yield Call("GET", "/disputes/outgoing", retry=True)
    rows = _list(data, "disputes")
    return _parse("dispute", lambda: [OutgoingDispute.from_json(row) for row in rows])


def answer_dispute(dispute_id: str, answer: str, reason: str) -> Plan[DisputeAnswer]:
    if answer not in ANSWERS:
        raise ValueError(f"answer one of {', '.join(ANSWERS)}, not {answer!r}")
    data = yield Call("POST", f"/disputes/{quote(dispute_id, safe='')}/answer",
                      {"answer": answer, "reason": reason})
    return _parse("dispute answer", lambda: DisputeAnswer.from_json(data))


# -- static QR stickers ---------------------------------------------------------------------------


def report_sticker_swap(tokens: Tokens, forged_payload: str, genuine_store_id: str | None,
                        note: str | None) -> Plan[list[Report]]:
    items = stickers.swap_report_items(forged_payload, genuine_store_id=genuine_store_id,
                                       note=note)
    return (yield from register_many(tokens, items, None))


# -- checking answers ------------------------------------------------------------------------


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise MalformedResponseError(f"the server's answer to {what} is not a JSON object")
    return data


def _list(data: Any, key: str) -> list[Any]:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list):
        raise MalformedResponseError(f"the server's answer has no {key!r} list")
    return value


def _parse(what: str, read: Callable[..., T], *args: Any) -> T:
    try:
        return read(*args)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise MalformedResponseError(f"malformed {what} in the server's answer: "
                                     f"{type(exc).__name__}: {exc}") from exc
