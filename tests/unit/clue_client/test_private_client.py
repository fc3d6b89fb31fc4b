"""The SDK's private look-ups without I/O: the client's own plans, answered by a small
in-memory v2 server built from the real OPRF key, entry and delta code.

The worked example of docs/private-lookups.md §14 drives the first test: the bucket
request the SDK builds is the page's, byte for byte, and the page's bucket answer gives
the v1-shaped result. The rest: e-mail (one evaluation, one prefix, exact or folded),
choosing v1 or v2, hostile answers, and the replica and watch kept on disk.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import keys
from clue_client import ClueClient, _calls, _private, canonical, protocol, tokens
from clue_client._wire import Call
from clue_client.errors import (
    ConfigError,
    MalformedResponseError,
    NotFoundError,
    PrivateLookupsUnavailable,
    ResponseVerificationError,
    ServerError,
    ValidationError,
)
from clue_client.private_lookups.entries import (
    Answer,
    EntryRef,
    bucket_prefix,
    derive_email_entries,
    derive_entry,
    seal_answer,
)
from clue_client.private_lookups.replica import Delta, encode_delta
from clue_client.private_lookups.store import ReplicaStore, StoreError, WatchStore

DOC = Path(__file__).resolve().parents[3] / "docs" / "private-lookups.md"
_BLOCK = re.compile(r"<!-- example:([a-z0-9-]+) -->\n```[a-z]*\n(.*?)\n```", re.DOTALL)
EXAMPLE = dict(_BLOCK.findall(DOC.read_text(encoding="utf-8")))

NETWORK = keys.Keyring([keys.SymmetricKey("network", 1, bytes(range(32)),
                                          dt.datetime(2025, 1, 1, tzinfo=dt.UTC))])
OPRF_KEY = keys.OprfKey.derive(bytes.fromhex(EXAMPLE["oprf-seed-hex"]), b"clue oprf v1")
SERVER_SIGNING = Ed25519PrivateKey.from_private_bytes(bytes(range(0x21, 0x41)))
SERVER_KEY_ID = protocol.server_key_id(SERVER_SIGNING.public_key())
PHONE = "090-1234-5678"
EMAIL = "J.Doe+Shop@GoogleMail.com"
ANSWER = Answer(("card_theft",), 2, dt.date(2023, 11, 1), dt.date(2023, 11, 14), False)
OTHER = Answer(("phishing", "other"), 1, dt.date(2024, 2, 1), dt.date(2024, 2, 1), True)


def _client(**options: Any) -> ClueClient:
    return ClueClient("http://clue.test", signing_key=keys.generate_signing_key(),
                      server_public_key=SERVER_SIGNING.public_key(),
                      server_key_id=SERVER_KEY_ID, network_keys=NETWORK, **options)


def _token(id_type: str, value: str) -> bytes:
    return tokens.derive_token(NETWORK.current.secret, id_type,
                               canonical.canonicalize(id_type, value))


def _email_entries(value: str) -> tuple[EntryRef, EntryRef]:
    canon = canonical.canonicalize("email", value)
    folded = tokens.derive_token(NETWORK.current.secret, "email", canonical.email_folded(canon))
    return derive_email_entries(OPRF_KEY.evaluate(folded), _token("email", value))


def _phone_entry(value: str) -> EntryRef:
    return derive_entry(OPRF_KEY.evaluate(_token("phone", value)), "exact")


@dataclass
class FakeV2:
    """What the v2 endpoints answer, computed with the real primitives; every call it
    saw is kept. ``override`` answers a path instead (a hostile or broken server)."""

    prefix_bits: int = 16
    lookup_protocol: int = 2
    max_items: int = 1000
    max_prefixes: int = 100
    entries: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict)  # id: bucket, sealed
    mine: set[bytes] = field(default_factory=set)
    deltas: list[Delta] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    override: dict[str, Callable[[Call], Any]] = field(default_factory=dict)

    def put(self, entry: EntryRef, answer: Answer, *, bucket: EntryRef | None = None,
            mine: bool = False) -> None:
        self.entries[entry.entry_id] = ((bucket or entry).entry_id,
                                        seal_answer(entry, 1, answer))
        if mine:
            self.mine.add(entry.entry_id)

    def __call__(self, call: Call) -> Any:
        self.calls.append(call)
        where = call.api + call.path
        if where in self.override:
            return self.override[where](call)
        if where == "/v2/config":
            return {"oprf_version": 1, "oprf_versions": [1], "prefix_bits": self.prefix_bits,
                    "lookup_protocol": self.lookup_protocol, "max_items": self.max_items,
                    "max_prefixes": self.max_prefixes}
        if where == "/v2/evaluations":
            return {"oprf_version": 1, "prefix_bits": self.prefix_bits, "evaluated": [
                protocol.b64url(OPRF_KEY.blind_evaluate(protocol.unb64url(item["blinded"])))
                for item in call.body["items"]]}
        if where == "/v2/buckets":
            return self.buckets(call.body)
        if where == "/v2/replica":
            return self.replica(call.params or {})
        if where == "/v1/reports":
            return {"reports": [], "next_after": None}
        if where == "/v1/lookups":
            return {"results": [{"matched": False} for _ in call.body["items"]]}
        raise AssertionError(f"unexpected call {call.method} {where}")

    def buckets(self, body: dict[str, Any]) -> dict[str, Any]:
        if body["prefix_bits"] != self.prefix_bits:
            raise ValidationError(409, {"type": _private.PREFIX_BITS_CHANGED,
                                        "prefix_bits": self.prefix_bits})
        answer = []
        for prefix in body["prefixes"]:
            found = sorted((entry_id, sealed) for entry_id, (bucket, sealed)
                           in self.entries.items()
                           if bucket_prefix(bucket, self.prefix_bits) == prefix)
            answer.append({"prefix": prefix,
                           "entries": protocol.b64url(b"".join(i + s for i, s in found)),
                           "mine": [n for n, (i, _) in enumerate(found) if i in self.mine]})
        return {"oprf_version": 1, "prefix_bits": self.prefix_bits, "cursor": 1,
                "buckets": answer}

    def replica(self, params: dict[str, Any]) -> bytes:
        after = params["after"]
        for delta in self.deltas:
            if delta.after == after:
                return encode_delta(delta, SERVER_SIGNING, SERVER_KEY_ID)
        if self.deltas and after == self.deltas[-1].to:  # up to date: an empty page
            last = self.deltas[-1]
            return encode_delta(Delta(1, after, after, last.issued_at, False, (), ()),
                                SERVER_SIGNING, SERVER_KEY_ID)
        raise ServerError(410, {"type": _private.CURSOR_EXPIRED})


def _run(plan: Any, server: FakeV2) -> Any:
    return _calls.run(plan, server)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# -- the online look-up ------------------------------------------------------------------------


def test_the_worked_example_builds_the_pages_bucket_request_and_reads_its_answer() -> None:
    server = FakeV2()
    server.override["/v2/buckets"] = lambda call: json.loads(EXAMPLE["buckets-response"])
    [result] = _run(_client()._lookup_plan([("phone", PHONE)]), server)

    config, evaluation, bucket = server.calls
    assert (config.method, config.api + config.path) == ("GET", "/v2/config")
    template = json.loads(EXAMPLE["evaluations-request"])
    assert evaluation.body["oprf_version"] == template["oprf_version"]
    assert [item["type"] for item in evaluation.body["items"]] == ["phone"]
    assert len(evaluation.body["items"][0]["blinded"]) == 43  # a fresh blind each time
    assert _compact(bucket.body) == EXAMPLE["buckets-request"]
    assert (result.matched, result.match, result.categories, result.reporters,
            result.first_reported, result.last_reported, result.reported_by_me,
            result.disputed, result.value) == (
        True, "exact", ("card_theft",), 2, dt.date(2023, 11, 1), dt.date(2023, 11, 14),
        False, False, PHONE)


def test_an_email_is_one_evaluation_and_one_prefix_and_says_exact_or_folded() -> None:
    _, folded = _email_entries(EMAIL)
    other_exact, _ = _email_entries("jdoe@gmail.com")  # same folded form, other address
    server = FakeV2()
    server.put(folded, ANSWER)
    server.put(other_exact, OTHER, bucket=folded, mine=True)
    client = _client()

    [by_folded] = _run(client._lookup_plan([("email", EMAIL)]), server)
    evaluation, bucket = server.calls[-2:]
    assert len(evaluation.body["items"]) == 1
    assert bucket.body["prefixes"] == [int(EXAMPLE["email-bucket-prefix-16"])]
    assert (by_folded.match, by_folded.categories, by_folded.reported_by_me) == (
        "folded", ("card_theft",), False)

    [by_exact] = _run(client._lookup_plan([("email", "jdoe@gmail.com")]), server)
    # Merged like v1: union of categories (sorted by name), the larger count, the
    # widest dates, disputed if either is; reported_by_me from the bucket's "mine".
    assert (by_exact.match, by_exact.categories, by_exact.reporters, by_exact.first_reported,
            by_exact.last_reported, by_exact.disputed, by_exact.reported_by_me) == (
        "exact", ("card_theft", "other", "phishing"), 2, dt.date(2023, 11, 1),
        dt.date(2024, 2, 1), True, True)


def test_many_identifiers_share_buckets_and_a_miss_is_not_matched() -> None:
    server = FakeV2(max_items=2, max_prefixes=1)
    server.put(_phone_entry(PHONE), ANSWER)
    pairs = [("phone", PHONE), ("phone", "080-0000-0001"), ("phone", PHONE)]
    results = _run(_client()._lookup_plan(pairs), server)
    assert [r.matched for r in results] == [True, False, True]
    assert [r.value for r in results] == [PHONE, "080-0000-0001", PHONE]
    evaluations = [c for c in server.calls if c.path == "/evaluations"]
    bucket_calls = [c for c in server.calls if c.path == "/buckets"]
    assert [len(c.body["items"]) for c in evaluations] == [2, 1]  # chunks of max_items
    assert sorted(p for c in bucket_calls for p in c.body["prefixes"]) == sorted(
        {bucket_prefix(_phone_entry(PHONE).entry_id, 16),
         bucket_prefix(_phone_entry("080-0000-0001").entry_id, 16)})
    assert all(len(c.body["prefixes"]) == 1 for c in bucket_calls)  # max_prefixes


def test_changed_prefix_bits_are_asked_again_once_with_the_servers_value() -> None:
    server = FakeV2(prefix_bits=18)
    server.put(_phone_entry(PHONE), ANSWER)
    server.override["/v2/evaluations"] = FakeV2(prefix_bits=16)  # answered before the change
    [result] = _run(_client()._lookup_plan([("phone", PHONE)]), server)
    bits = [c.body["prefix_bits"] for c in server.calls if c.path == "/buckets"]
    assert bits == [16, 18] and result.matched


# -- which protocol ------------------------------------------------------------------------------


@pytest.mark.parametrize("setting,lookup_protocol,asked", [
    (None, 2, "/v2/evaluations"), (None, 1, "/v1/lookups"), (True, 1, "/v2/evaluations"),
    (False, 2, "/v1/lookups")])
def test_lookup_follows_the_server_unless_told(setting: bool | None, lookup_protocol: int,
                                               asked: str) -> None:
    server = FakeV2(lookup_protocol=lookup_protocol)
    _run(_client(private_lookups=setting)._lookup_plan([("phone", PHONE)]), server)
    paths = [c.api + c.path for c in server.calls]
    assert asked in paths
    assert ("/v2/config" in paths) is (setting is not False)


def test_the_config_is_cached_for_300_seconds() -> None:
    now = [1000.0]
    cache = _private.ConfigCache(clock=lambda: now[0])
    server = FakeV2()
    for _ in range(3):
        _run(_private.server_config(cache), server)
    now[0] += _private.CONFIG_TTL
    _run(_private.server_config(cache), server)
    assert len(server.calls) == 2


def _not_found(call: Call) -> Any:
    raise NotFoundError(404, {"type": "urn:clue:problem:not-found"})


def _unsigned_404(call: Call) -> Any:
    refused = ResponseVerificationError("refusing the server's answer (404): not signed")
    refused.status = 404
    raise refused


@pytest.mark.parametrize("answer", [_not_found, _unsigned_404])
def test_an_older_server_means_v1_or_a_clear_error_when_v2_is_required(answer: Any) -> None:
    server = FakeV2()
    server.override["/v2/config"] = answer
    [result] = _run(_client()._lookup_plan([("phone", PHONE)]), server)
    assert not result.matched and server.calls[-1].api == "/v1"
    with pytest.raises(PrivateLookupsUnavailable, match="does not offer private look-ups"):
        _run(_client(private_lookups=True)._lookup_plan([("phone", PHONE)]), server)


def test_other_unverifiable_config_answers_are_errors_not_a_downgrade() -> None:
    server = FakeV2()

    def gateway(call: Call) -> Any:
        refused = ResponseVerificationError("tampered")
        refused.status = 200
        raise refused

    server.override["/v2/config"] = gateway
    with pytest.raises(ResponseVerificationError, match="tampered"):
        _run(_client()._lookup_plan([("phone", PHONE)]), server)


@pytest.mark.parametrize("config", [
    [], {"oprf_version": 1}, {"oprf_version": 2, "oprf_versions": [1], "prefix_bits": 16,
                              "lookup_protocol": 2, "max_items": 1, "max_prefixes": 1},
    {"oprf_version": 1, "oprf_versions": [1], "prefix_bits": 0, "lookup_protocol": 2,
     "max_items": 1, "max_prefixes": 1},
    {"oprf_version": 1, "oprf_versions": [1], "prefix_bits": 16, "lookup_protocol": 3,
     "max_items": 1, "max_prefixes": 1}])
def test_a_malformed_config_is_refused(config: Any) -> None:
    with pytest.raises(MalformedResponseError):
        _private.ServerConfig.from_json(config)


# -- hostile answers ---------------------------------------------------------------------------


def _bucket_answer(**bucket: Any) -> Callable[[Call], Any]:
    def answer(call: Call) -> Any:
        row = {"prefix": call.body["prefixes"][0], "entries": "", "mine": []} | bucket
        return {"oprf_version": 1, "prefix_bits": 16, "cursor": 1, "buckets": [row]}
    return answer


IDENTITY = protocol.b64url(bytes(32))
NOT_CANONICAL = protocol.b64url(b"\xff" * 32)


@pytest.mark.parametrize("path,answer,message", [
    ("/v2/evaluations", lambda c: {"oprf_version": 1, "prefix_bits": 16,
                                   "evaluated": [IDENTITY]}, "not a valid ristretto255"),
    ("/v2/evaluations", lambda c: {"oprf_version": 1, "prefix_bits": 16,
                                   "evaluated": [NOT_CANONICAL]}, "not a valid ristretto255"),
    ("/v2/evaluations", lambda c: {"oprf_version": 1, "prefix_bits": 16,
                                   "evaluated": ["x" * 42]}, "43 base64url"),
    ("/v2/evaluations", lambda c: {"oprf_version": 1, "prefix_bits": 16, "evaluated": []},
     "different number"),
    ("/v2/evaluations", lambda c: {"oprf_version": 2, "prefix_bits": 16, "evaluated": []},
     "OPRF version"),
    ("/v2/buckets", _bucket_answer(entries=protocol.b64url(bytes(53))), "whole 54-byte"),
    ("/v2/buckets", _bucket_answer(entries="*not base64*"), "not base64url"),
    ("/v2/buckets", _bucket_answer(entries=protocol.b64url(bytes([1]) * 54 + bytes(54))),
     "not sorted"),
    ("/v2/buckets", _bucket_answer(mine=[0]), "distinct positions"),
    ("/v2/buckets", _bucket_answer(prefix=7), "other buckets"),
    ("/v2/buckets", lambda c: {"oprf_version": 1, "prefix_bits": 16, "cursor": 1,
                               "buckets": "all"}, "'buckets' list"),
])
def test_hostile_answers_are_clear_errors(path: str, answer: Any, message: str) -> None:
    server = FakeV2()
    server.override[path] = answer
    with pytest.raises(MalformedResponseError, match=message):
        _run(_client()._lookup_plan([("phone", PHONE)]), server)


def test_an_entry_that_does_not_open_is_an_error_not_a_miss() -> None:
    entry = _phone_entry(PHONE)
    server = FakeV2()
    server.put(entry, ANSWER)
    bucket, sealed = server.entries[entry.entry_id]
    server.entries[entry.entry_id] = (bucket, sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(MalformedResponseError, match="does not open under its key"):
        _run(_client()._lookup_plan([("phone", PHONE)]), server)


def test_a_prefix_bits_conflict_without_a_usable_value_is_raised() -> None:
    server = FakeV2()

    def conflict(call: Call) -> Any:
        raise ValidationError(409, {"type": _private.PREFIX_BITS_CHANGED, "prefix_bits": "x"})

    server.override["/v2/buckets"] = conflict
    with pytest.raises(ValidationError):
        _run(_client()._lookup_plan([("phone", PHONE)]), server)


# -- the replica, on disk --------------------------------------------------------------------------


def _sealed(entry: EntryRef, answer: Answer = ANSWER) -> tuple[bytes, bytes]:
    return entry.entry_id, seal_answer(entry, 1, answer)


def test_sync_pulls_every_page_then_lookup_local_reveals_no_prefix(tmp_path: Path) -> None:
    phone, email = _phone_entry(PHONE), _email_entries(EMAIL)[1]
    server = FakeV2()
    server.deltas = [Delta(1, 0, 5, 100, True, (_sealed(phone),), ()),
                     Delta(1, 5, 9, 101, False, (_sealed(email),), ())]
    client = _client()
    assert _run(client._sync_plan(tmp_path / "replica", None), server) == 2
    server.calls.clear()
    results = _run(client._local_plan([("phone", PHONE), ("email", "jdoe@gmail.com"),
                                       ("phone", "080-0000-0001")], None), server)
    assert [(r.matched, r.match) for r in results] == [
        (True, "exact"), (True, "folded"), (False, None)]
    assert [c.path for c in server.calls] == ["/evaluations"]  # the config is cached

    reopened = ReplicaStore(tmp_path / "replica")  # what the next run reads back
    assert reopened.replica is not None
    assert (reopened.replica.cursor, reopened.replica.issued_at, len(reopened.replica)) == (
        9, 101, 2)
    assert reopened.replica.lookup(phone) == ANSWER


def test_a_store_keeps_changes_and_own_entries_and_refuses_damage(tmp_path: Path) -> None:
    phone = _phone_entry(PHONE)
    gone = _phone_entry("080-0000-0002")
    store = ReplicaStore(tmp_path)
    replica = store.start(1)
    replica.apply(Delta(1, 0, 3, 10, False, (_sealed(gone),), ()))
    replica.apply(Delta(1, 3, 4, 11, False, (_sealed(phone, OTHER),), (gone.entry_id,)))
    store.own = frozenset({phone.entry_id})
    store.save()
    again = ReplicaStore(tmp_path)
    assert again.replica is not None and again.own == {phone.entry_id}
    assert again.replica.lookup(phone) == OTHER and again.replica.sealed(gone.entry_id) is None
    assert len(list(tmp_path.glob("base-*.bin"))) == 1

    state = tmp_path / "state.bin"
    state.write_bytes(state.read_bytes()[:-1])
    with pytest.raises(StoreError, match="delete the directory"):
        ReplicaStore(tmp_path)


@pytest.mark.parametrize("delta,message", [
    (Delta(1, 3, 5, 100, False, (), ()), "not at the cursor 0"),
    (Delta(2, 0, 5, 100, False, (), ()), "another OPRF version"),
])
def test_a_page_that_does_not_follow_on_is_refused(tmp_path: Path, delta: Delta,
                                                   message: str) -> None:
    server = FakeV2()
    server.override["/v2/replica"] = lambda call: encode_delta(delta, SERVER_SIGNING,
                                                               SERVER_KEY_ID)
    with pytest.raises(MalformedResponseError, match=message):
        _run(_client()._sync_plan(tmp_path, None), server)


def test_a_replayed_older_page_and_a_foreign_signature_are_refused(tmp_path: Path) -> None:
    server = FakeV2()
    server.deltas = [Delta(1, 0, 5, 100, False, (), ())]
    client = _client()
    _run(client._sync_plan(tmp_path, None), server)
    server.deltas = [Delta(1, 5, 6, 99, False, (_sealed(_phone_entry(PHONE)),), ())]
    with pytest.raises(MalformedResponseError, match="older than the replica"):
        _run(client._sync_plan(tmp_path, None), server)
    forger = Ed25519PrivateKey.generate()
    server.override["/v2/replica"] = lambda call: encode_delta(
        Delta(1, 5, 6, 200, False, (), ()), forger, SERVER_KEY_ID)
    with pytest.raises(MalformedResponseError, match="signature does not verify"):
        _run(client._sync_plan(tmp_path, None), server)


def test_an_expired_cursor_downloads_everything_again(tmp_path: Path) -> None:
    server = FakeV2()
    server.deltas = [Delta(1, 0, 5, 100, False, (_sealed(_phone_entry("080-0000-0002")),), ())]
    client = _client()
    _run(client._sync_plan(tmp_path, None), server)
    server.deltas = [Delta(1, 0, 40, 200, False, (_sealed(_phone_entry(PHONE)),), ())]
    _run(client._sync_plan(tmp_path, None), server)
    replica = ReplicaStore(tmp_path).replica
    assert replica is not None and (replica.cursor, len(replica)) == (40, 1)
    asked = [c.params["after"] for c in server.calls if c.path == "/replica"]  # type: ignore[index]
    assert asked == [0, 5, 0]


def test_lookup_local_needs_a_synced_replica() -> None:
    with pytest.raises(ConfigError, match="sync one first"):
        _client()._local_plan([("phone", PHONE)], None)


# -- watching -----------------------------------------------------------------------------


def test_watch_reports_what_is_there_then_each_change(tmp_path: Path) -> None:
    phone = _phone_entry(PHONE)
    _, folded = _email_entries(EMAIL)
    server = FakeV2(max_items=1)
    server.deltas = [Delta(1, 0, 5, 100, False, (_sealed(phone),), ())]
    client = _client()
    progress: list[tuple[int, int]] = []
    watched = _run(client._watch_add_plan(
        tmp_path, [("phone", PHONE, "acct-1"), ("email", EMAIL, "acct-2")],
        lambda done, total: progress.append((done, total))), server)
    assert watched == 3 and progress == [(1, 2), (2, 2)]  # an e-mail watches two entries

    alerts: list[Any] = []
    first = _run(client._watch_poll_plan(tmp_path, alerts.append), server)
    assert [(a.event, a.ref, a.kind) for a in first] == [("reported", "acct-1", "exact")]
    assert alerts == first

    server.deltas.append(Delta(1, 5, 8, 101, False, (_sealed(folded, OTHER),),
                               (phone.entry_id,)))
    second = _run(client._watch_poll_plan(tmp_path, None), server)
    assert [(a.event, a.ref, a.kind, a.cursor) for a in second] == [
        ("reported", "acct-2", "folded", 8), ("cleared", "acct-1", "exact", 8)]
    assert _run(client._watch_poll_plan(tmp_path, None), server) == []  # nothing new

    store = WatchStore(tmp_path)
    assert store.checked and store.watch is not None and store.watch.seen == {folded.entry_id}


def test_customers_added_later_are_matched_against_the_whole_replica(tmp_path: Path) -> None:
    phone = _phone_entry(PHONE)
    server = FakeV2()
    server.deltas = [Delta(1, 0, 5, 100, False, (_sealed(phone),), ())]
    client = _client()
    _run(client._watch_add_plan(tmp_path, [("phone", "080-0000-0002", "a")], None), server)
    assert _run(client._watch_poll_plan(tmp_path, None), server) == []
    _run(client._watch_add_plan(tmp_path, [("phone", PHONE, "b")], None), server)
    assert [(a.event, a.ref) for a in _run(client._watch_poll_plan(tmp_path, None), server)] \
        == [("reported", "b")]


def test_watch_errors_are_clear(tmp_path: Path) -> None:
    server = FakeV2()
    with pytest.raises(ConfigError, match="no watch list"):
        _run(_client()._watch_poll_plan(tmp_path, None), server)
    _run(_client()._watch_add_plan(tmp_path, [("phone", PHONE, "a")], None), server)
    server.override["/v2/config"] = lambda call: {
        "oprf_version": 2, "oprf_versions": [2], "prefix_bits": 16, "lookup_protocol": 2,
        "max_items": 10, "max_prefixes": 10}
    with pytest.raises(ConfigError, match="OPRF key version 1, which the server no longer"):
        _run(_client()._watch_poll_plan(tmp_path, None), server)
    server.override["/v2/config"] = _not_found
    with pytest.raises(PrivateLookupsUnavailable):
        _run(_client()._watch_add_plan(tmp_path, [("phone", PHONE, "a")], None), server)


def test_an_alert_callback_that_fails_gets_the_alert_again(tmp_path: Path) -> None:
    server = FakeV2()
    server.deltas = [Delta(1, 0, 5, 100, False, (), ())]
    client = _client()
    _run(client._watch_add_plan(tmp_path, [("phone", PHONE, "acct-1")], None), server)
    _run(client._watch_poll_plan(tmp_path, None), server)
    server.deltas.append(Delta(1, 5, 6, 101, False, (_sealed(_phone_entry(PHONE)),), ()))

    def broken(alert: Any) -> None:
        raise RuntimeError("alert sink down")

    with pytest.raises(RuntimeError):
        _run(client._watch_poll_plan(tmp_path, broken), server)
    assert [a.ref for a in _run(client._watch_poll_plan(tmp_path, None), server)] == ["acct-1"]


def test_an_empty_register_synced_is_a_replica_that_matches_nothing(tmp_path: Path) -> None:
    server = FakeV2()
    server.deltas = [Delta(1, 0, 0, 100, False, (), ())]
    client = _client()
    assert _run(client._sync_plan(tmp_path, None), server) == 0
    assert not _run(client._local_plan([("phone", PHONE)], None), server)[0].matched


def test_a_watch_list_without_its_state_file_is_matched_again(tmp_path: Path) -> None:
    server = FakeV2()
    server.deltas = [Delta(1, 0, 5, 100, False, (_sealed(_phone_entry(PHONE)),), ())]
    client = _client()
    _run(client._watch_add_plan(tmp_path, [("phone", PHONE, "acct-1")], None), server)
    assert len(_run(client._watch_poll_plan(tmp_path, None), server)) == 1
    (tmp_path / "watch-state.json").unlink()  # a crash between the two writes
    assert [a.event for a in _run(client._watch_poll_plan(tmp_path, None), server)] == [
        "reported"]
