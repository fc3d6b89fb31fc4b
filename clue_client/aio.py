"""The asyncio client: the same surface as :class:`clue_client.ClueClient`, awaited.

    from clue_client import AsyncClueClient

    async with AsyncClueClient.from_config("var/clue.json") as client:
        decision = await client.check_signup(phone="090-1234-5678")
        result = (await client.lookup(email="a@example.com"))["email"]

For asyncio backends (FastAPI, aiohttp, Starlette). Canonicalisation, tokens, request
signing, answer verification, models, errors and the decision code are the sync
client's own (``clue_client._calls``, ``clue_client._wire``); only the I/O differs: an
``httpx.AsyncClient`` with keep-alive connections, each call under one
``asyncio.timeout`` covering connecting, sending, every retry and back-off and the
whole answer. Use one client per event loop; it is safe to share between the tasks of
that loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

import keys
from clue_client import _calls, _private
from clue_client._calls import Plan
from clue_client._private import ServerConfig
from clue_client._wire import MAX_ANSWER_BYTES, Answer, Call, Deadline, Outgoing, Wire
from clue_client.client import DEFAULT_TIMEOUT, ClientBase, ClientOptions, _raw
from clue_client.errors import ClueError, TransportError
from clue_client.models import (
    DisputeAnswer,
    FiledDispute,
    IncomingDispute,
    LookupResult,
    OutgoingDispute,
    Report,
    ReportInput,
)
from clue_client.private_lookups.replica import Delta
from clue_client.private_lookups.store import ReplicaStore, WatchStore
from clue_client.private_lookups.watch import Alert
from clue_client.stickers import QrCheck, qr_check

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from clue_client.decisions import Decision, Fallback, LookupCache, Policy

__all__ = ["AsyncClueClient", "AsyncClueClientOptions"]

T = TypeVar("T")


class AsyncClueClientOptions(ClientOptions, total=False):
    http_client: httpx.AsyncClient | None


class AsyncTransport:
    """Sign, send, verify and retry under one deadline, awaiting an ``httpx.AsyncClient``."""

    def __init__(self, wire: Wire, *, retries: int = 2,
                 http_client: httpx.AsyncClient | None = None) -> None:
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self.wire = wire
        self.retries = retries
        self._own = http_client is None
        # No httpx timeouts of its own: the call's deadline covers everything.
        self.http = http_client or httpx.AsyncClient(
            timeout=None, follow_redirects=False,  # noqa: S113 (the deadline bounds each call)
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))
        self.closed = False

    @property
    def key_id(self) -> str:
        return self.wire.key_id

    async def request(self, call: Call, deadline: Deadline) -> Any:
        """The verified JSON answer to ``call``, or the last error once no retry fits."""
        attempts = 1 + self.retries
        attempt = 0
        while True:
            if deadline.left() <= 0:
                raise deadline.exceeded(self.wire.base_url)
            out = self.wire.prepare(call)
            try:
                answer = await self._send(out, deadline)
                return self.wire.check(out, answer.status, answer.headers, answer.body,
                                       call.binary)
            except ClueError as exc:
                attempt += 1
                delay = (self.wire.retry_delay(exc, attempt - 1, deadline.left(),
                                               repeatable=call.retry)
                         if attempt < attempts else None)
                if delay is None:
                    raise
                await asyncio.sleep(delay)

    async def _send(self, out: Outgoing, deadline: Deadline) -> Answer:
        if self.closed:
            raise TransportError("this CLUE client is closed")
        where = self.wire.base_url
        try:
            async with asyncio.timeout(deadline.left()):
                async with self.http.stream(out.method, out.url, content=out.body,
                                            headers=out.headers) as response:
                    body = bytearray()
                    # aiter_bytes, not aiter_raw: mock transports hand back read bodies.
                    # (Accept-Encoding: identity, so nothing is decoded in between.)
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_ANSWER_BYTES:
                            raise TransportError(f"the answer from {where} exceeds "
                                                 f"{MAX_ANSWER_BYTES} bytes")
                    headers: dict[str, str] = {}
                    for name, value in response.headers.multi_items():
                        headers.setdefault(name.lower(), value)
                    return Answer(response.status_code, headers, bytes(body))
        except TimeoutError as exc:
            raise deadline.exceeded(where) from exc
        except httpx.HTTPError as exc:
            raise TransportError(f"cannot reach CLUE at {where}: {exc}") from exc

    async def aclose(self) -> None:
        self.closed = True
        if self._own:
            await self.http.aclose()


class AsyncClueClient(ClientBase):
    """A member's asyncio client for one CLUE server (see :class:`clue_client.ClueClient`
    for the keyword arguments; ``http_client`` replaces ``session``)."""

    _http: AsyncTransport

    def __init__(self, server_url: str, *, signing_key: Ed25519PrivateKey,
                 server_public_key: Ed25519PublicKey, server_key_id: str | None = None,
                 network_keys: keys.Keyring | None, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = 2, http_client: httpx.AsyncClient | None = None,
                 next_server_public_key: Ed25519PublicKey | None = None,
                 notes_key: keys.SymmetricKey | None = None,
                 policy: Policy | str | os.PathLike[str] | None = None,
                 fallback: Fallback | str | None = None, cache: LookupCache | None = None,
                 strict: bool | None = None, clock: Callable[[], float] | None = None,
                 private_lookups: bool | None = None) -> None:
        wire = self._setup(server_url, signing_key=signing_key,
                           server_public_key=server_public_key, server_key_id=server_key_id,
                           network_keys=network_keys, timeout=timeout,
                           next_server_public_key=next_server_public_key, notes_key=notes_key,
                           clock=clock, private_lookups=private_lookups)
        self._http = AsyncTransport(wire, retries=retries, http_client=http_client)
        self._setup_decisions(policy, fallback, cache, strict)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, *,
                    passphrase: bytes | None = None,
                    **overrides: Unpack[AsyncClueClientOptions]) -> AsyncClueClient:
        """Build a client from ``clue keys init``'s config file (reads key files: call it
        at start-up, not inside a request)."""
        arguments = cls._config_arguments(path, passphrase)
        arguments.update(overrides)
        return cls(**arguments)

    # -- lifetime ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Report the match counts not yet sent (best effort), then close the kept-alive
        connections (and the httpx client, if this client made it)."""
        try:
            await self.flush_usage()
        finally:
            await self._http.aclose()

    close = aclose

    async def __aenter__(self) -> AsyncClueClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def _run(self, plan: Plan[T], timeout: float | None) -> T:
        deadline = self._deadline(timeout)
        return await _calls.run_async(plan, lambda call: self._http.request(call, deadline))

    async def _run_each(self, plan: Plan[T], timeout: float) -> T:
        """Run a long plan (replica pages, watch chunks) with ``timeout`` for each call."""
        return await _calls.run_async(plan,
                                      lambda call: self._http.request(call, Deadline(timeout)))

    # -- plumbing -----------------------------------------------------------------------------

    async def ping(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Check the connection, the signatures both ways, and the member's standing."""
        return await self._run(_calls.ping(), timeout)

    # -- registering ----------------------------------------------------------------------------

    async def register(self, id_type: str, value: str, category: str, *,
                       expires_in_days: int | None = None, note: str | None = None,
                       idempotency_key: str | None = None,
                       timeout: float | None = None) -> Report:
        """Register one identifier; returns the report (an existing one if already there)."""
        reports = await self.register_many(
            [ReportInput(id_type, value, category, expires_in_days, note)],
            idempotency_key=idempotency_key, timeout=timeout)
        return reports[0]

    async def register_many(self, items: Sequence[ReportInput], *,
                            idempotency_key: str | None = None,
                            timeout: float | None = None) -> list[Report]:
        """Register up to 1,000 identifiers in one all-or-nothing request."""
        return await self._run(_calls.register_many(self, items, idempotency_key), timeout)

    async def withdraw(self, report_id: str, *, timeout: float | None = None) -> None:
        """Withdraw one of the member's own reports (404 for anyone else's)."""
        await self._run(_calls.withdraw(report_id), timeout)

    async def reports(self, *, page_size: int = 500,
                      timeout: float | None = None) -> AsyncIterator[Report]:
        """Every report of this member, oldest first (``async for``; ``timeout`` per page)."""
        after: str | None = None
        while True:
            page, after = await self._run(_calls.reports_page(self, after, page_size), timeout)
            for report in page:
                yield report
            if not after:
                return

    async def find_reports(self, identifiers: Iterable[tuple[str, str]], *,
                           timeout: float | None = None
                           ) -> list[tuple[list[Report], list[Report]]]:
        """This member's own reports for each ``(type, value)``: ``(exact, folded)``
        (see :meth:`ClueClient.find_reports`)."""
        return await self._run(_calls.find_reports(self, list(identifiers)), timeout)

    async def limits(self, *, timeout: float | None = None) -> dict[str, Any]:
        """What the server accepts from this member (``GET /v1/limits``)."""
        return await self._run(_calls.limits(), timeout)

    # -- disputes -------------------------------------------------------------------------------

    async def open_dispute(self, id_type: str, value: str, reason: str, *,
                           timeout: float | None = None) -> FiledDispute:
        """File a data subject's dispute on an identifier (tokenised here, never sent)."""
        return await self._run(_calls.open_dispute(self, id_type, value, reason), timeout)

    async def incoming_disputes(self, *, timeout: float | None = None) -> list[IncomingDispute]:
        """Disputes routed to this member's reports (the filer is never named): open ones,
        and expired ones that got a report of this member suspended."""
        return await self._run(_calls.incoming_disputes(), timeout)

    async def outgoing_disputes(self, *, timeout: float | None = None) -> list[OutgoingDispute]:
        """Disputes this member filed, with answer counts (the reporters are never named)."""
        return await self._run(_calls.outgoing_disputes(), timeout)

    async def answer_dispute(self, dispute_id: str, answer: str, reason: str, *,
                             timeout: float | None = None) -> DisputeAnswer:
        """Answer ``withdraw`` (withdraws this member's disputed reports) or ``uphold``."""
        return await self._run(_calls.answer_dispute(dispute_id, answer, reason), timeout)

    # -- static QR stickers -----------------------------------------------------------------------

    async def check_static_qr(self, payload: str, *, timeout: float | None = None) -> QrCheck:
        """Check a scanned static QR code (see :meth:`ClueClient.check_static_qr`)."""
        return qr_check(*await self.decisions.check_qr_async(payload, timeout=timeout))

    async def report_sticker_swap(self, forged_payload: str, genuine_store_id: str | None = None,
                                  note: str | None = None, *,
                                  timeout: float | None = None) -> list[Report]:
        """Report a forged or swapped sticker: its payee(s) and, if known, the genuine store."""
        return await self._run(_calls.report_sticker_swap(self, forged_payload,
                                                          genuine_store_id, note), timeout)

    # -- keys ------------------------------------------------------------------------------------

    async def me(self, *, timeout: float | None = None) -> dict[str, Any]:
        """This member as the server knows it: id, status, signing keys, HPKE key."""
        return await self._run(_calls.me(), timeout)

    async def publish_hpke_key(self, public_key: X25519PublicKey, *,
                               timeout: float | None = None) -> None:
        """Register the X25519 key other members seal network keys to."""
        await self._run(_calls.simple(Call("PUT", "/members/me/hpke-key",
                                           {"public_key": _raw(public_key)})), timeout)

    async def add_signing_key(self, public_key: Ed25519PublicKey, *,
                              timeout: float | None = None) -> None:
        """Register another signing key for this member (signed with the current one)."""
        await self._run(_calls.simple(Call("POST", "/members/me/keys",
                                           {"public_key": _raw(public_key)})), timeout)

    async def revoke_signing_key(self, key_id: str, *, timeout: float | None = None) -> None:
        """Revoke one of this member's signing keys; requests signed with it then get 401."""
        await self._run(_calls.simple(
            Call("DELETE", f"/members/me/keys/{quote(key_id, safe='')}")), timeout)

    async def network_directory(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Known network-key versions and the members (with HPKE keys) to share them with."""
        return await self._run(_calls.network_directory(), timeout)

    async def upload_envelopes(self, version: int, envelopes: list[dict[str, str]], *,
                               timeout: float | None = None) -> None:
        await self._run(_calls.simple(Call("POST", f"/network-keys/{version}/envelopes",
                                           {"envelopes": envelopes}, retry=True)), timeout)

    async def my_envelopes(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        return await self._run(_calls.my_envelopes(), timeout)

    async def server_key_info(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The server's current (and staged next) signing key, as a signed answer."""
        return await self._run(_calls.server_key_info(), timeout)

    # -- looking up -------------------------------------------------------------------------------

    async def lookup(self, *, phone: str | None = None, email: str | None = None,
                     ip: str | None = None, device_id: str | None = None,
                     bank_account: str | None = None, jpqr_store: str | None = None,
                     qr_payee: str | None = None,
                     timeout: float | None = None) -> dict[str, LookupResult]:
        """Look up the given identifiers in one request; results keyed by type."""
        pairs = _calls.identifiers_given({
            "phone": phone, "email": email, "ip": ip, "device_id": device_id,
            "bank_account": bank_account, "jpqr_store": jpqr_store, "qr_payee": qr_payee})
        results = await self._run(self._lookup_plan(pairs), timeout)
        return {r.id_type: r for r in results}

    async def lookup_many(self, identifiers: Iterable[tuple[str, str] | dict[str, str]], *,
                          timeout: float | None = None) -> list[LookupResult]:
        """Look up many ``(type, value)`` pairs at once, in the order given (protocol 1
        or 2 as :meth:`ClueClient.lookup_many` chooses)."""
        return await self._run(self._lookup_plan(_calls.as_pairs(identifiers)), timeout)

    # -- private look-ups (protocol version 2; see ClueClient) ------------------------------------
    # Callbacks (on_delta, progress, on_alert) are plain functions, and the replica and
    # watch files are read and written in the event loop: run these in a monitoring
    # task, not on a request's path (lookup / lookup_many are fine there).

    async def private_config(self, *, refresh: bool = False,
                             timeout: float | None = None) -> ServerConfig | None:
        """The server's protocol-2 settings (cached 300 s), or None without version 2."""
        return await self._run(_private.server_config(self._v2, refresh=refresh), timeout)

    async def flush_usage(self, *, timeout: float | None = None) -> int:
        """See :meth:`ClueClient.flush_usage`."""
        return await self._run(_private.report_usage(self._v2.usage, force=True), timeout)

    async def sync_replica(self, store: ReplicaStore | str | os.PathLike[str], *,
                           on_delta: Callable[[Delta], None] | None = None,
                           timeout: float | None = None) -> int:
        """See :meth:`ClueClient.sync_replica`."""
        return await self._run_each(self._sync_plan(store, on_delta),
                                    self._each_deadline(timeout, 60.0))

    async def lookup_local(self, *, phone: str | None = None, email: str | None = None,
                           ip: str | None = None, device_id: str | None = None,
                           bank_account: str | None = None, jpqr_store: str | None = None,
                           qr_payee: str | None = None, replica: ReplicaStore | None = None,
                           timeout: float | None = None) -> dict[str, LookupResult]:
        """See :meth:`ClueClient.lookup_local`."""
        pairs = _calls.identifiers_given({
            "phone": phone, "email": email, "ip": ip, "device_id": device_id,
            "bank_account": bank_account, "jpqr_store": jpqr_store, "qr_payee": qr_payee})
        results = await self._run(self._local_plan(pairs, replica), timeout)
        return {r.id_type: r for r in results}

    async def lookup_local_many(self, identifiers: Iterable[tuple[str, str] | dict[str, str]],
                                *, replica: ReplicaStore | None = None,
                                timeout: float | None = None) -> list[LookupResult]:
        """See :meth:`ClueClient.lookup_local_many`."""
        return await self._run(self._local_plan(_calls.as_pairs(identifiers), replica),
                               timeout)

    async def watch_add(self, store: WatchStore | str | os.PathLike[str],
                        customers: Iterable[tuple[str, str, str]], *,
                        progress: Callable[[int, int], None] | None = None,
                        timeout: float | None = None) -> int:
        """See :meth:`ClueClient.watch_add`."""
        return await self._run_each(self._watch_add_plan(store, customers, progress),
                                    self._each_deadline(timeout, 30.0))

    async def watch_poll(self, store: WatchStore | str | os.PathLike[str], *,
                         on_alert: Callable[[Alert], None] | None = None,
                         timeout: float | None = None) -> list[Alert]:
        """See :meth:`ClueClient.watch_poll`."""
        return await self._run_each(self._watch_poll_plan(store, on_alert),
                                    self._each_deadline(timeout, 60.0))

    # -- risk decisions ---------------------------------------------------------------------------

    async def check_signup(self, *, phone: str | None = None, email: str | None = None,
                           ip: str | None = None, device_id: str | None = None,
                           bank_account: str | None = None,
                           now: dt.datetime | dt.date | None = None) -> Decision:
        """Decide what to allow a new account (see :meth:`ClueClient.check_signup`)."""
        return await self.decisions.check_async(
            {"phone": phone, "email": email, "ip": ip, "device_id": device_id,
             "bank_account": bank_account}, now=now)

    async def check_payment(self, *, phone: str | None = None, email: str | None = None,
                            ip: str | None = None, device_id: str | None = None,
                            bank_account: str | None = None, amount_jpy: int | None = None,
                            qr_payload: str | None = None,
                            now: dt.datetime | dt.date | None = None) -> Decision:
        """Decide on a payment (see :meth:`ClueClient.check_payment`)."""
        return await self.decisions.check_async(
            {"phone": phone, "email": email, "ip": ip, "device_id": device_id,
             "bank_account": bank_account}, qr_payload=qr_payload, amount_jpy=amount_jpy,
            now=now)
