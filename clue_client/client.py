"""The public client: canonicalise and tokenise locally, then ask the server.

Nothing that leaves this module contains a raw identifier, its canonical form,
or an unkeyed hash of either: only HMAC tokens under the network key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import keys
from clue_client import canonical, notes, protocol, tokens
from clue_client._transport import SignedSession
from clue_client.config import (
    NETWORK_PURPOSE,
    NEXT_SERVER_KEY_FILE,
    NOTES_KEY_FILE,
    ClientConfig,
    config_path,
)
from clue_client.errors import ConfigError, InvalidIdentifier, ResponseVerificationError
from clue_client.models import LookupResult, Report, ReportInput
from clue_client.protocol import CATEGORIES, b64url

if TYPE_CHECKING:
    import datetime as dt
    import os

    from clue_client.decisions import Decision, Fallback, LookupCache, Policy

if TYPE_CHECKING:
    from clue_client.stickers import QrCheck

MAX_BATCH = 1000


class ClueClient:
    """A member's client for one CLUE server.

    ``network_keys`` is the keyring of network-key versions: registrations use
    the newest, look-ups ask under every version in one request.
    """

    def __init__(self, server_url: str, *, signing_key: Ed25519PrivateKey,
                 server_public_key: Ed25519PublicKey, server_key_id: str | None = None,
                 network_keys: keys.Keyring | None, timeout: float = 5.0, retries: int = 2,
                 session: requests.Session | None = None,
                 next_server_public_key: Ed25519PublicKey | None = None,
                 notes_key: keys.SymmetricKey | None = None,
                 policy: Policy | str | os.PathLike[str] | None = None,
                 fallback: Fallback | str | None = None, cache: LookupCache | None = None,
                 strict: bool | None = None) -> None:
        self._network_keys = network_keys
        self.notes_key = notes_key
        pinned = {server_key_id or protocol.server_key_id(server_public_key): server_public_key}
        if next_server_public_key is not None:
            pinned[protocol.server_key_id(next_server_public_key)] = next_server_public_key
        self._http = SignedSession(
            server_url, key_id=keys.key_id(signing_key.public_key()), signing_key=signing_key,
            server_keys=pinned, timeout=timeout, retries=retries, session=session)
        # Risk decisions (check_signup / check_payment): see clue_client.decisions.
        from clue_client.decisions.service import DecisionService

        self.decisions = DecisionService.create(self, policy=policy, fallback=fallback,
                                                cache=cache, strict=strict)

    @classmethod
    def from_config(cls, path: str | Path | None = None, *, passphrase: bytes | None = None,
                    **overrides: Any) -> ClueClient:
        """Build a client from ``clue keys init``'s config file (``CLUE_CONFIG``)."""
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
        assert isinstance(signing_key, Ed25519PrivateKey)
        assert isinstance(server_key, Ed25519PublicKey)
        assert next_key is None or isinstance(next_key, Ed25519PublicKey)
        options: dict[str, Any] = {"timeout": config.timeout, **overrides}
        return cls(config.server_url, signing_key=signing_key, server_public_key=server_key,
                   server_key_id=config.server_key_id, network_keys=network,
                   next_server_public_key=next_key, notes_key=notes_key, **options)

    @property
    def network_keys(self) -> keys.Keyring:
        if self._network_keys is None:
            raise ConfigError("no network key yet: fetch it (`clue keys network fetch`) or, "
                              "for a new network, create one (`clue keys network new`)")
        return self._network_keys

    # -- plumbing ---------------------------------------------------------------

    def ping(self) -> dict[str, Any]:
        """Check the connection, the signatures both ways, and the member's standing."""
        result: dict[str, Any] = self._http.request("GET", "/ping", retry=True)
        return result

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

    # -- registering ------------------------------------------------------------

    def register(self, id_type: str, value: str, category: str, *,
                 expires_in_days: int | None = None, note: str | None = None,
                 idempotency_key: str | None = None) -> Report:
        """Register one identifier; returns the report (an existing one if already there)."""
        return self.register_many([ReportInput(id_type, value, category, expires_in_days, note)],
                                  idempotency_key=idempotency_key)[0]

    def register_many(self, items: Sequence[ReportInput], *,
                      idempotency_key: str | None = None) -> list[Report]:
        """Register up to 1,000 identifiers in one all-or-nothing request.

        Safe to retry: the server never stores a member's report twice (it answers
        ``created=False`` for one it already has). ``idempotency_key`` additionally
        makes a retry return exactly the first answer.
        """
        if not items:
            return []
        if len(items) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} identifiers per request; split the batch")
        body = {"reports": [self._report_fields(index, item) for index, item in enumerate(items)]}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        data = self._http.request("POST", "/reports", body, headers=headers, retry=True)
        return [self._report(r) for r in data["reports"]]

    def _report_fields(self, index: int, item: ReportInput) -> dict[str, Any]:
        if item.category not in CATEGORIES:
            raise InvalidIdentifier(item.id_type, f"item {index}: unknown category "
                                    f"{item.category!r}; one of {', '.join(CATEGORIES)}")
        fields = self._token_fields(item.id_type, item.value, self.network_keys.current.version)
        fields["category"] = item.category
        if item.expires_in_days is not None:
            fields["expires_in_days"] = item.expires_in_days
        if item.note is not None:
            if self.notes_key is None:
                raise ConfigError("a note needs this member's notes key (member-notes.key)")
            fields["note"] = notes.seal(self.notes_key, item.note, id_type=item.id_type,
                                        category=item.category)
        return fields

    def _report(self, data: dict[str, Any]) -> Report:
        note = None
        if data.get("note") and self.notes_key is not None:
            note = notes.open_note(self.notes_key, data["note"], id_type=data["type"],
                                   category=data["category"])
        return Report.from_json(data, note=note)

    def withdraw(self, report_id: str) -> None:
        """Withdraw one of the member's own reports (404 for anyone else's)."""
        self._http.request("DELETE", f"/reports/{quote(report_id, safe='')}")

    def reports(self, *, page_size: int = 500) -> Iterator[Report]:
        """Every report of this member, oldest first (pages fetched as you iterate)."""
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if after:
                params["after"] = after
            data = self._http.request("GET", "/reports", params=params, retry=True)
            for row in data["reports"]:
                yield self._report(row)
            after = data.get("next_after")
            if not after:
                return

    def find_reports(self, identifiers: Iterable[tuple[str, str]]
                     ) -> list[tuple[list[Report], list[Report]]]:
        """This member's own reports for each ``(type, value)``: ``(exact, folded)``.

        Asked under every network-key version held (reports made under an older one
        have its token), in the body of ``POST /v1/reports/search``, never in a URL.
        ``folded`` (e-mail only) lists reports that match only the folded address.
        Expired (not yet purged) and suspended reports are included.
        """
        pairs = list(identifiers)
        versions = self.network_keys.versions
        items = [self._token_fields(t, v, version) for t, v in pairs for version in versions]
        rows: list[dict[str, Any]] = []
        per_request = MAX_BATCH // len(versions) * len(versions)
        for start in range(0, len(items), per_request):
            chunk = items[start:start + per_request]
            data = self._http.request("POST", "/reports/search", {"items": chunk}, retry=True)
            results = data.get("results") if isinstance(data, dict) else None
            if not isinstance(results, list) or len(results) != len(chunk):
                raise ResponseVerificationError("the server answered a different number of "
                                                "results than identifiers asked")
            rows.extend(results)
        found = []
        for index in range(len(pairs)):
            exact: dict[str, Report] = {}
            folded: dict[str, Report] = {}
            for row in rows[index * len(versions):(index + 1) * len(versions)]:
                exact.update((r["id"], self._report(r)) for r in row["exact"])
                folded.update((r["id"], self._report(r)) for r in row["folded"])
            found.append(([exact[k] for k in sorted(exact)],
                          [folded[k] for k in sorted(folded) if k not in exact]))
        return found

    def limits(self) -> dict[str, Any]:
        """What the server accepts from this member (``GET /v1/limits``): batch and body
        limits, the council's maximum retention per type, today's quotas and usage."""
        result: dict[str, Any] = self._http.request("GET", "/limits", retry=True)
        return result

    # -- disputes (see clue_client.disputes) ------------------------------------------------

    def open_dispute(self, id_type: str, value: str, reason: str) -> dict[str, Any]:
        """File a data subject's dispute on an identifier (tokenised here, never sent)."""
        from clue_client.disputes import open_dispute

        return open_dispute(self, id_type, value, reason)

    def incoming_disputes(self) -> list[dict[str, Any]]:
        """Open disputes routed to this member's reports (the filer is never named)."""
        result: list[dict[str, Any]] = self._http.request(
            "GET", "/disputes/incoming", retry=True)["disputes"]
        return result

    def outgoing_disputes(self) -> list[dict[str, Any]]:
        """Disputes this member filed, with answer counts (the reporters are never named)."""
        result: list[dict[str, Any]] = self._http.request(
            "GET", "/disputes/outgoing", retry=True)["disputes"]
        return result

    def answer_dispute(self, dispute_id: str, answer: str, reason: str) -> dict[str, Any]:
        """Answer ``withdraw`` (withdraws this member's disputed reports) or ``uphold``."""
        result: dict[str, Any] = self._http.request(
            "POST", f"/disputes/{quote(dispute_id, safe='')}/answer",
            {"answer": answer, "reason": reason})
        return result

    # -- static QR stickers ---------------------------------------------------------------

    def check_static_qr(self, payload: str) -> QrCheck:
        """Flags for a scanned static QR code, in one round trip (see clue_client.stickers)."""
        from clue_client.stickers import check_static_qr

        return check_static_qr(self, payload)

    def report_sticker_swap(self, forged_payload: str, genuine_store_id: str | None = None,
                            note: str | None = None) -> list[Report]:
        """Report a forged or swapped sticker: its payee(s) and, if known, the genuine store."""
        from clue_client.stickers import report_sticker_swap

        return report_sticker_swap(self, forged_payload, genuine_store_id=genuine_store_id,
                                   note=note)

    # -- keys ---------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        """This member as the server knows it: id, status, signing keys, HPKE key."""
        result: dict[str, Any] = self._http.request("GET", "/members/me", retry=True)
        return result

    def publish_hpke_key(self, public_key: X25519PublicKey) -> None:
        """Register the X25519 key other members seal network keys to."""
        raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._http.request("PUT", "/members/me/hpke-key", {"public_key": b64url(raw)})

    def add_signing_key(self, public_key: Ed25519PublicKey) -> None:
        """Register another signing key for this member (signed with the current one)."""
        raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._http.request("POST", "/members/me/keys", {"public_key": b64url(raw)})

    def revoke_signing_key(self, key_id: str) -> None:
        """Revoke one of this member's signing keys; requests signed with it then get 401."""
        self._http.request("DELETE", f"/members/me/keys/{quote(key_id, safe='')}")

    def network_directory(self) -> dict[str, Any]:
        """Known network-key versions and the members (with HPKE keys) to share them with."""
        result: dict[str, Any] = self._http.request("GET", "/network-keys", retry=True)
        return result

    def upload_envelopes(self, version: int, envelopes: list[dict[str, str]]) -> None:
        self._http.request("POST", f"/network-keys/{version}/envelopes",
                           {"envelopes": envelopes}, retry=True)

    def my_envelopes(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._http.request(
            "GET", "/network-keys/envelopes", retry=True)["envelopes"]
        return result

    def server_key_info(self) -> dict[str, Any]:
        """The server's current (and staged next) signing key, as a signed answer."""
        result: dict[str, Any] = self._http.request("GET", "/server-key", retry=True)
        return result

    # -- looking up ---------------------------------------------------------------

    def lookup(self, *, phone: str | None = None, email: str | None = None,
               ip: str | None = None, device_id: str | None = None,
               bank_account: str | None = None, jpqr_store: str | None = None,
               qr_payee: str | None = None) -> dict[str, LookupResult]:
        """Look up the given identifiers in one request; results keyed by type."""
        given = {"phone": phone, "email": email, "ip": ip, "device_id": device_id,
                 "bank_account": bank_account, "jpqr_store": jpqr_store, "qr_payee": qr_payee}
        pairs = [(t, v) for t, v in given.items() if v is not None]
        if not pairs:
            raise ValueError("give at least one identifier to look up")
        return {r.id_type: r for r in self.lookup_many(pairs)}

    def lookup_many(self, identifiers: Iterable[tuple[str, str] | dict[str, str]]
                    ) -> list[LookupResult]:
        """Look up many ``(type, value)`` pairs (or ``{"type":..., "value":...}``) at once.

        Each identifier is asked under every network-key version; results come
        back in the order given.
        """
        pairs = [(i["type"], i["value"]) if isinstance(i, dict) else i for i in identifiers]
        versions = self.network_keys.versions
        items = [self._token_fields(t, v, version) for t, v in pairs for version in versions]
        results: list[LookupResult] = []
        per_request = MAX_BATCH // len(versions) * len(versions)
        for start in range(0, len(items), per_request):
            chunk = items[start:start + per_request]
            data = self._http.request("POST", "/lookups", {"items": chunk}, retry=True)
            rows = data.get("results") if isinstance(data, dict) else None
            if not isinstance(rows, list) or len(rows) != len(chunk):
                raise ResponseVerificationError("the server answered a different number of "
                                                "results than identifiers asked")
            results.extend(LookupResult.from_json(item["type"], row)
                           for item, row in zip(chunk, rows, strict=True))
        merged = []
        for index, (_id_type, value) in enumerate(pairs):
            group = results[index * len(versions):(index + 1) * len(versions)]
            result = group[0]
            for other in group[1:]:
                result = result.merge(other)
            merged.append(LookupResult(**{**result.__dict__, "value": value}))
        return merged

    # -- risk decisions -----------------------------------------------------------------

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
