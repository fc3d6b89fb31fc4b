"""The public client: canonicalise and tokenise locally, then ask the server.

    with ClueClient.from_config("var/clue.json") as client:
        client.lookup(phone="090-1234-5678")["phone"].matched

Nothing that leaves this module contains a raw identifier, its canonical form,
or an unkeyed hash of either: only HMAC tokens under the network key.

:class:`ClueClient` (blocking, thread-safe) and :class:`clue_client.AsyncClueClient`
(asyncio) share everything but the I/O: the keys and settings below
(:class:`ClientBase`), the requests and answer checks (``clue_client._calls``), the
signing and verification (``clue_client._wire``) and the decision code.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar
from urllib.parse import quote

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import keys
from clue_client import _calls, _private, canonical, notes, protocol, tokens
from clue_client._calls import MAX_BATCH, Plan
from clue_client._transport import SyncTransport
from clue_client._wire import Call, Deadline, Wire
from clue_client.config import (
    NETWORK_PURPOSE,
    NEXT_SERVER_KEY_FILE,
    NOTES_KEY_FILE,
    ClientConfig,
    config_path,
)
from clue_client.errors import ConfigError
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
from clue_client.protocol import CATEGORIES, b64url
from clue_client.stickers import QrCheck, qr_check

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from clue_client.decisions import Decision, Fallback, LookupCache, Policy
    from clue_client.decisions.service import DecisionService

__all__ = ["CATEGORIES", "DEFAULT_TIMEOUT", "MAX_BATCH", "ClientBase", "ClientOptions",
           "ClueClient", "ClueClientOptions"]

#: Seconds one call may take, all told (connecting, sending, retries and back-off,
#: reading the whole answer): suited to a signup or payment path.
DEFAULT_TIMEOUT = 2.0
T = TypeVar("T")


class ClientOptions(TypedDict, total=False):
    """The settings both clients take besides the keys (``from_config``'s overrides)."""

    timeout: float
    retries: int
    policy: Policy | str | os.PathLike[str] | None
    fallback: Fallback | str | None
    cache: LookupCache | None
    strict: bool | None
    clock: Callable[[], float] | None
    private_lookups: bool | None


class ClueClientOptions(ClientOptions, total=False):
    session: requests.Session | None
    ssl_context: ssl.SSLContext | None


class ClientBase:
    """Keys, settings and tokenising: everything a client is besides its I/O."""

    notes_key: keys.SymmetricKey | None
    decisions: DecisionService
    timeout: float
    #: Protocol version 2 for look-ups: None follows the server (``lookup_protocol`` of
    #: ``GET /v2/config``), True always, False never.
    private_lookups: bool | None
    #: The replica store :meth:`ClueClient.sync_replica` last synced (``lookup_local``'s
    #: default).
    replica_store: ReplicaStore | None
    _wire: Wire
    _v2: _private.ConfigCache
    _http: Any  # the client's transport: SyncTransport or AsyncTransport

    def _setup(self, server_url: str, *, signing_key: Ed25519PrivateKey,
               server_public_key: Ed25519PublicKey, server_key_id: str | None,
               network_keys: keys.Keyring | None, timeout: float,
               next_server_public_key: Ed25519PublicKey | None,
               notes_key: keys.SymmetricKey | None,
               clock: Callable[[], float] | None,
               private_lookups: bool | None = None) -> Wire:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if private_lookups not in (None, True, False):
            raise ValueError(f"private_lookups must be None, True or False, "
                             f"not {private_lookups!r}")
        self.timeout = float(timeout)
        self.private_lookups = private_lookups
        self.replica_store = None
        self._v2 = _private.ConfigCache()
        self._network_keys = network_keys
        self.notes_key = notes_key
        pinned = {server_key_id or protocol.server_key_id(server_public_key): server_public_key}
        if next_server_public_key is not None:
            pinned[protocol.server_key_id(next_server_public_key)] = next_server_public_key
        self._wire = Wire(server_url, key_id=keys.key_id(signing_key.public_key()),
                          signing_key=signing_key, server_keys=pinned,
                          clock=clock or time.time)
        return self._wire

    def _setup_decisions(self, policy: Policy | str | os.PathLike[str] | None,
                         fallback: Fallback | str | None, cache: LookupCache | None,
                         strict: bool | None) -> None:
        # Risk decisions (check_signup / check_payment): see clue_client.decisions.
        from clue_client.decisions.service import DecisionService

        self.decisions = DecisionService.create(self, policy=policy, fallback=fallback,
                                                cache=cache, strict=strict)

    @staticmethod
    def _config_arguments(path: str | os.PathLike[str] | None,
                          passphrase: bytes | None) -> dict[str, Any]:
        """The constructor arguments ``clue keys init``'s config file gives (``CLUE_CONFIG``)."""
        path = config_path(path)
        config = ClientConfig.load(path)
        base = path.parent
        try:
            signing_key, _ = keys.load_private_key(config.resolve(base, config.signing_key),
                                                   purpose="member-signing",
                                                   passphrase=passphrase)
            server_key = keys.load_public_key(config.resolve(base, config.server_public_key))
            notes_path = config.resolve(base, NOTES_KEY_FILE)
            notes_key = (keys.load_symmetric_key(notes_path, purpose=notes.PURPOSE,
                                                 passphrase=passphrase)
                         if notes_path.exists() else None)
            next_path = config.resolve(base, NEXT_SERVER_KEY_FILE)
            next_key = keys.load_public_key(next_path) if next_path.exists() else None
            try:
                network: keys.Keyring | None = keys.load_keyring(
                    config.resolve(base, "."), NETWORK_PURPOSE, passphrase=passphrase)
            except FileNotFoundError:
                network = None  # key management still works; tokens need a network key
        except FileNotFoundError as exc:
            raise ConfigError(f"key file missing: {exc.filename}") from exc
        except keys.KeyFileError as exc:
            raise ConfigError(str(exc)) from exc
        if not isinstance(signing_key, Ed25519PrivateKey):
            raise ConfigError(f"{config.signing_key}: not an Ed25519 signing key")
        if not isinstance(server_key, Ed25519PublicKey):
            raise ConfigError(f"{config.server_public_key}: not an Ed25519 public key")
        if next_key is not None and not isinstance(next_key, Ed25519PublicKey):
            raise ConfigError(f"{NEXT_SERVER_KEY_FILE}: not an Ed25519 public key")
        return {"server_url": config.server_url, "signing_key": signing_key,
                "server_public_key": server_key, "server_key_id": config.server_key_id,
                "network_keys": network, "next_server_public_key": next_key,
                "notes_key": notes_key, "timeout": config.timeout}

    @property
    def network_keys(self) -> keys.Keyring:
        if self._network_keys is None:
            raise ConfigError("no network key yet: fetch it (`clue keys network fetch`) or, "
                              "for a new network, create one (`clue keys network new`)")
        return self._network_keys

    @property
    def server_url(self) -> str:
        return self._wire.base_url

    @property
    def key_id(self) -> str:
        """This member's signing-key id (``keyid`` of every request)."""
        return self._wire.key_id

    @property
    def clock_offset(self) -> float | None:
        """The server's clock minus this machine's, in seconds (positive: this machine is
        behind), from the ``Date`` of the last answer; ``None`` before any answer."""
        return self._wire.clock_offset

    def _deadline(self, timeout: float | None) -> Deadline:
        return Deadline(self.timeout if timeout is None else timeout)

    def _token_fields(self, id_type: str, value: str, version: int) -> dict[str, Any]:
        key = self.network_keys.get(version).secret
        canon = canonical.canonicalize(id_type, value)
        fields: dict[str, Any] = {
            "type": id_type, "key_version": version,
            "token": tokens.encode_token(tokens.derive_token(key, id_type, canon)),
        }
        if id_type == "email":
            folded = canonical.email_folded(canon)
            fields["folded_token"] = tokens.encode_token(tokens.derive_token(key, id_type, folded))
        return fields


    # -- plans both clients run (protocol version 2) ------------------------------------------

    def _lookup_plan(self, pairs: Sequence[tuple[str, str]]) -> Plan[list[LookupResult]]:
        return _private.lookup_groups(self._v2, _private.token_groups(self, pairs),
                                      [v for _, v in pairs], self.private_lookups)

    def _local_plan(self, pairs: Sequence[tuple[str, str]],
                    store: ReplicaStore | None) -> Plan[list[LookupResult]]:
        store = store or self.replica_store
        if store is None:
            raise ConfigError("no replica: sync one first (client.sync_replica(directory))")
        return _private.lookup_local(self._v2, store, _private.token_groups(self, pairs),
                                     [v for _, v in pairs])

    def _sync_plan(self, store: ReplicaStore | str | os.PathLike[str],
                   on_delta: Callable[[Delta], None] | None) -> Plan[int]:
        if not isinstance(store, ReplicaStore):
            store = ReplicaStore(store)
        self.replica_store = store
        return _private.sync_replica(self._v2, self, store, self._wire.server_keys,
                                     on_delta=on_delta)

    def _watch_add_plan(self, store: WatchStore | str | os.PathLike[str],
                        customers: Iterable[tuple[str, str, str]],
                        progress: Callable[[int, int], None] | None) -> Plan[int]:
        if not isinstance(store, WatchStore):
            store = WatchStore(store)
        version = self.network_keys.current.version
        items: list[dict[str, Any]] = []
        refs: list[str] = []
        for id_type, value, ref in customers:
            items.append(self._token_fields(id_type, value, version))
            refs.append(ref)
        return _private.watch_add(self._v2, store, items, refs, progress=progress)

    def _watch_poll_plan(self, store: WatchStore | str | os.PathLike[str],
                         on_alert: Callable[[Alert], None] | None) -> Plan[list[Alert]]:
        if not isinstance(store, WatchStore):
            store = WatchStore(store)
        return _private.watch_poll(self._v2, self, store, self._wire.server_keys, on_alert)

    def _each_deadline(self, timeout: float | None, floor: float) -> float:
        """Replica pages and watch chunks are large: each call gets at least ``floor``."""
        return max(self.timeout, floor) if timeout is None else timeout


def _raw(public_key: Ed25519PublicKey | X25519PublicKey) -> str:
    return b64url(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))


class ClueClient(ClientBase):
    """A member's blocking client for one CLUE server.

    ``network_keys`` is the keyring of network-key versions: registrations use the
    newest, look-ups ask under every version in one request.

    Every call ends within its deadline: ``timeout`` seconds (default 2) for all of
    connecting, sending, retries with their back-off, and reading the whole answer,
    or it raises :class:`~clue_client.errors.DeadlineExceeded`. Each method takes its
    own ``timeout=`` too. ``retries`` (default 2) bounds the extra attempts of calls
    that are safe to repeat. ``check_signup`` / ``check_payment`` have their own budget
    (the policy's ``fallback.timeout_ms``) and never raise for an unreachable CLUE.

    Thread-safe: share one client between threads; each call borrows a keep-alive
    connection from the client's pool. Close it (or use ``with``) to release them.
    ``session`` sends through a ``requests.Session`` of yours instead (proxies, client
    certificates); it is also used when the environment sets a proxy for the server.
    """

    _http: SyncTransport

    def __init__(self, server_url: str, *, signing_key: Ed25519PrivateKey,
                 server_public_key: Ed25519PublicKey, server_key_id: str | None = None,
                 network_keys: keys.Keyring | None, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = 2, session: requests.Session | None = None,
                 ssl_context: ssl.SSLContext | None = None,
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
        self._http = SyncTransport(wire, retries=retries, session=session,
                                   ssl_context=ssl_context)
        self._setup_decisions(policy, fallback, cache, strict)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, *,
                    passphrase: bytes | None = None,
                    **overrides: Unpack[ClueClientOptions]) -> ClueClient:
        """Build a client from ``clue keys init``'s config file (``CLUE_CONFIG``).

        The file gives the server, the keys and ``timeout``; ``overrides`` are any of
        the constructor's settings (``timeout``, ``retries``, ``policy``, ``fallback``,
        ``cache``, ``strict``, ``session``, ``ssl_context``, ``clock``,
        ``private_lookups``).
        """
        arguments = cls._config_arguments(path, passphrase)
        arguments.update(overrides)
        return cls(**arguments)

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Report the private look-ups' match counts not yet sent (best effort, within
        the client's timeout), then close the kept-alive connections; later calls raise
        TransportError."""
        try:
            self.flush_usage()
        finally:
            self._http.close()

    def __enter__(self) -> ClueClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _run(self, plan: Plan[T], timeout: float | None) -> T:
        deadline = self._deadline(timeout)
        return _calls.run(plan, lambda call: self._http.request(call, deadline))

    def _run_each(self, plan: Plan[T], timeout: float) -> T:
        """Run a long plan (replica pages, watch chunks) with ``timeout`` for each call."""
        return _calls.run(plan, lambda call: self._http.request(call, Deadline(timeout)))

    # -- plumbing -----------------------------------------------------------------------------

    def ping(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Check the connection, the signatures both ways, and the member's standing.

        Afterwards :attr:`clock_offset` says how far this machine's clock is from the
        server's."""
        return self._run(_calls.ping(), timeout)

    # -- registering ----------------------------------------------------------------------------

    def register(self, id_type: str, value: str, category: str, *,
                 expires_in_days: int | None = None, note: str | None = None,
                 idempotency_key: str | None = None, timeout: float | None = None) -> Report:
        """Register one identifier; returns the report (an existing one if already there)."""
        return self.register_many([ReportInput(id_type, value, category, expires_in_days, note)],
                                  idempotency_key=idempotency_key, timeout=timeout)[0]

    def register_many(self, items: Sequence[ReportInput], *, idempotency_key: str | None = None,
                      timeout: float | None = None) -> list[Report]:
        """Register up to 1,000 identifiers in one all-or-nothing request.

        Safe to retry: the server never stores a member's report twice (it answers
        ``created=False`` for one it already has). ``idempotency_key`` additionally
        makes a retry return exactly the first answer.
        """
        return self._run(_calls.register_many(self, items, idempotency_key), timeout)

    def withdraw(self, report_id: str, *, timeout: float | None = None) -> None:
        """Withdraw one of the member's own reports (404 for anyone else's)."""
        self._run(_calls.withdraw(report_id), timeout)

    def reports(self, *, page_size: int = 500, timeout: float | None = None) -> Iterator[Report]:
        """Every report of this member, oldest first (pages fetched as you iterate;
        ``timeout`` is per page)."""
        after: str | None = None
        while True:
            page, after = self._run(_calls.reports_page(self, after, page_size), timeout)
            yield from page
            if not after:
                return

    def find_reports(self, identifiers: Iterable[tuple[str, str]], *,
                     timeout: float | None = None) -> list[tuple[list[Report], list[Report]]]:
        """This member's own reports for each ``(type, value)``: ``(exact, folded)``.

        Asked under every network-key version held (reports made under an older one
        have its token), in the body of ``POST /v1/reports/search``, never in a URL.
        ``folded`` (e-mail only) lists reports that match only the folded address.
        Expired (not yet purged) and suspended reports are included.
        """
        return self._run(_calls.find_reports(self, list(identifiers)), timeout)

    def limits(self, *, timeout: float | None = None) -> dict[str, Any]:
        """What the server accepts from this member (``GET /v1/limits``): batch and body
        limits, the council's maximum retention per type, today's quotas and usage."""
        return self._run(_calls.limits(), timeout)

    # -- disputes (see clue_client.disputes) ----------------------------------------------------

    def open_dispute(self, id_type: str, value: str, reason: str, *,
                     timeout: float | None = None) -> FiledDispute:
        """File a data subject's dispute on an identifier (tokenised here, never sent)."""
        return self._run(_calls.open_dispute(self, id_type, value, reason), timeout)

    def incoming_disputes(self, *, timeout: float | None = None) -> list[IncomingDispute]:
        """Disputes routed to this member's reports (the filer is never named): open ones,
        and expired ones that got a report of this member suspended."""
        return self._run(_calls.incoming_disputes(), timeout)

    def outgoing_disputes(self, *, timeout: float | None = None) -> list[OutgoingDispute]:
        """Disputes this member filed, with answer counts (the reporters are never named)."""
        return self._run(_calls.outgoing_disputes(), timeout)

    def answer_dispute(self, dispute_id: str, answer: str, reason: str, *,
                       timeout: float | None = None) -> DisputeAnswer:
        """Answer ``withdraw`` (withdraws this member's disputed reports) or ``uphold``."""
        return self._run(_calls.answer_dispute(dispute_id, answer, reason), timeout)

    # -- static QR stickers -----------------------------------------------------------------------

    def check_static_qr(self, payload: str, *, timeout: float | None = None) -> QrCheck:
        """Check a scanned static QR code under the policy, in one round trip (see
        clue_client.stickers): its tier, flags, warnings and CLUE's answers.

        Like :meth:`check_signup`, it asks once, without retries, within the policy's
        ``timeout_ms`` (or ``timeout`` seconds, if given), uses cached answers, and if
        CLUE cannot answer it returns the fallback tier with ``degraded=True`` instead
        of raising (unless the client has ``strict=True``).
        """
        return qr_check(*self.decisions.check_qr(payload, timeout=timeout))

    def report_sticker_swap(self, forged_payload: str, genuine_store_id: str | None = None,
                            note: str | None = None, *,
                            timeout: float | None = None) -> list[Report]:
        """Report a forged or swapped sticker: its payee(s) and, if known, the genuine store."""
        return self._run(_calls.report_sticker_swap(self, forged_payload, genuine_store_id,
                                                    note), timeout)

    # -- keys ------------------------------------------------------------------------------------

    def me(self, *, timeout: float | None = None) -> dict[str, Any]:
        """This member as the server knows it: id, status, signing keys, HPKE key."""
        return self._run(_calls.me(), timeout)

    def publish_hpke_key(self, public_key: X25519PublicKey, *,
                         timeout: float | None = None) -> None:
        """Register the X25519 key other members seal network keys to."""
        self._run(_calls.simple(Call("PUT", "/members/me/hpke-key",
                                     {"public_key": _raw(public_key)})), timeout)

    def add_signing_key(self, public_key: Ed25519PublicKey, *,
                        timeout: float | None = None) -> None:
        """Register another signing key for this member (signed with the current one)."""
        self._run(_calls.simple(Call("POST", "/members/me/keys",
                                     {"public_key": _raw(public_key)})), timeout)

    def revoke_signing_key(self, key_id: str, *, timeout: float | None = None) -> None:
        """Revoke one of this member's signing keys; requests signed with it then get 401."""
        self._run(_calls.simple(Call("DELETE", f"/members/me/keys/{quote(key_id, safe='')}")),
                  timeout)

    def network_directory(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Known network-key versions and the members (with HPKE keys) to share them with."""
        return self._run(_calls.network_directory(), timeout)

    def upload_envelopes(self, version: int, envelopes: list[dict[str, str]], *,
                         timeout: float | None = None) -> None:
        self._run(_calls.simple(Call("POST", f"/network-keys/{version}/envelopes",
                                     {"envelopes": envelopes}, retry=True)), timeout)

    def my_envelopes(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        return self._run(_calls.my_envelopes(), timeout)

    def server_key_info(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The server's current (and staged next) signing key, as a signed answer."""
        return self._run(_calls.server_key_info(), timeout)

    # -- looking up -------------------------------------------------------------------------------

    def lookup(self, *, phone: str | None = None, email: str | None = None,
               ip: str | None = None, device_id: str | None = None,
               bank_account: str | None = None, jpqr_store: str | None = None,
               qr_payee: str | None = None,
               timeout: float | None = None) -> dict[str, LookupResult]:
        """Look up the given identifiers in one request; results keyed by type."""
        pairs = _calls.identifiers_given({
            "phone": phone, "email": email, "ip": ip, "device_id": device_id,
            "bank_account": bank_account, "jpqr_store": jpqr_store, "qr_payee": qr_payee})
        return {r.id_type: r for r in self._run(self._lookup_plan(pairs), timeout)}

    def lookup_many(self, identifiers: Iterable[tuple[str, str] | dict[str, str]], *,
                    timeout: float | None = None) -> list[LookupResult]:
        """Look up many ``(type, value)`` pairs (or ``{"type":..., "value":...}``) at once.

        Protocol 1 asks each identifier under every network-key version (1,000 tokens
        per request). Private look-ups (protocol 2: the server's default once the
        council says so, or ``private_lookups=True``) evaluate each identifier under the
        newest version and fetch its bucket (docs/sdk.md). Results come back in the
        order given, all within one deadline.
        """
        return self._run(self._lookup_plan(_calls.as_pairs(identifiers)), timeout)

    # -- private look-ups (protocol version 2) ----------------------------------------------------

    def private_config(self, *, refresh: bool = False,
                       timeout: float | None = None) -> _private.ServerConfig | None:
        """The server's protocol-2 settings (``GET /v2/config``, cached for 300 s), or
        None if it has no version 2."""
        return self._run(_private.server_config(self._v2, refresh=refresh), timeout)

    def flush_usage(self, *, timeout: float | None = None) -> int:
        """Report now how many private look-ups matched, per day and type, for the
        council's hit rate (``POST /v2/usage``; otherwise done at most once a minute
        after a look-up, and by :meth:`close`). Never per identifier; best effort.
        Returns how many matches were reported."""
        return self._run(_private.report_usage(self._v2.usage, force=True), timeout)

    def sync_replica(self, store: ReplicaStore | str | os.PathLike[str], *,
                     on_delta: Callable[[Delta], None] | None = None,
                     timeout: float | None = None) -> int:
        """Bring the replica in ``store`` (a :class:`ReplicaStore` or its directory) up to
        date: signed pages until the server has no more; returns the records applied.

        ``timeout`` is per page (default: the client's, at least 60 s). The store then
        becomes :meth:`lookup_local`'s default.
        """
        return self._run_each(self._sync_plan(store, on_delta),
                              self._each_deadline(timeout, 60.0))

    def lookup_local(self, *, phone: str | None = None, email: str | None = None,
                     ip: str | None = None, device_id: str | None = None,
                     bank_account: str | None = None, jpqr_store: str | None = None,
                     qr_payee: str | None = None, replica: ReplicaStore | None = None,
                     timeout: float | None = None) -> dict[str, LookupResult]:
        """Look up against the local replica: one counted evaluation request, and no
        bucket prefix revealed. ``replica`` defaults to the store last synced."""
        pairs = _calls.identifiers_given({
            "phone": phone, "email": email, "ip": ip, "device_id": device_id,
            "bank_account": bank_account, "jpqr_store": jpqr_store, "qr_payee": qr_payee})
        return {r.id_type: r for r in self._run(self._local_plan(pairs, replica), timeout)}

    def lookup_local_many(self, identifiers: Iterable[tuple[str, str] | dict[str, str]], *,
                          replica: ReplicaStore | None = None,
                          timeout: float | None = None) -> list[LookupResult]:
        """:meth:`lookup_local` for many identifiers, results in the order given."""
        return self._run(self._local_plan(_calls.as_pairs(identifiers), replica), timeout)

    def watch_add(self, store: WatchStore | str | os.PathLike[str],
                  customers: Iterable[tuple[str, str, str]], *,
                  progress: Callable[[int, int], None] | None = None,
                  timeout: float | None = None) -> int:
        """Watch this member's own customers: ``(type, value, ref)`` each, ``ref`` the
        member's own reference (never sent). Each identifier is one counted evaluation
        (1,000 a request, ``progress(done, total)`` after each); the entries go into the
        watch list in ``store`` (a :class:`WatchStore` or its directory). Returns the
        entries watched. The next :meth:`watch_poll` matches the whole replica once.
        """
        return self._run_each(self._watch_add_plan(store, customers, progress),
                              self._each_deadline(timeout, 30.0))

    def watch_poll(self, store: WatchStore | str | os.PathLike[str], *,
                   on_alert: Callable[[Alert], None] | None = None,
                   timeout: float | None = None) -> list[Alert]:
        """Sync the watch's replica and raise an :class:`Alert` per watched customer
        reported, updated or cleared (``on_alert`` called for each as it is raised, then
        all returned). Run it every minute or so; see docs/sdk.md."""
        return self._run_each(self._watch_poll_plan(store, on_alert),
                              self._each_deadline(timeout, 60.0))

    # -- risk decisions ---------------------------------------------------------------------------

    def check_signup(self, *, phone: str | None = None, email: str | None = None,
                     ip: str | None = None, device_id: str | None = None,
                     bank_account: str | None = None,
                     now: dt.datetime | dt.date | None = None) -> Decision:
        """Decide what to allow a new account: tier, limits and reasons, in one request.

        If CLUE cannot answer within the policy's ``timeout_ms`` (300 ms by default)
        this returns the fallback decision with ``degraded=True`` instead of raising
        (unless the client has ``strict=True``). ``now`` fixes "today" for the ages
        of reports. See docs/decisions.md.
        """
        return self.decisions.check({"phone": phone, "email": email, "ip": ip,
                                     "device_id": device_id, "bank_account": bank_account},
                                    now=now)

    def check_payment(self, *, phone: str | None = None, email: str | None = None,
                      ip: str | None = None, device_id: str | None = None,
                      bank_account: str | None = None, amount_jpy: int | None = None,
                      qr_payload: str | None = None,
                      now: dt.datetime | dt.date | None = None) -> Decision:
        """Decide on a payment from the paying account's identifiers and, for a scanned
        static QR code, its payees and store, all in one request.

        The payload is parsed here and never sent; ``decision.within_limits`` says
        whether ``amount_jpy`` fits the tier's per-transaction cap.
        """
        return self.decisions.check({"phone": phone, "email": email, "ip": ip,
                                     "device_id": device_id, "bank_account": bank_account},
                                    qr_payload=qr_payload, amount_jpy=amount_jpy, now=now)
