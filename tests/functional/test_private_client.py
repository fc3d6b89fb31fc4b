"""The SDK's private look-ups (protocol 2) against the real server (issue 13).

A v2 look-up must say exactly what v1 says (phone, e-mail exact and folded, reported by
me, disputed, a miss), count against the same quota, and reveal only blinded elements
and a bucket prefix. The replica gives the same answers locally; ``clue watch`` raises
``reported`` when another member registers a watched customer and ``cleared`` when the
report goes, through the SDK's callback and the CLI's JSON-lines file. Hostile answers
(signed by a fake server) are clear errors.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

import keys
from clue_client import ClueClient, PrivateLookupsUnavailable, RateLimitedError
from clue_client.errors import ConfigError, MalformedResponseError
from clue_client.private_lookups.store import WatchStore
from clue_client.private_lookups.watch import Alert
from clue_client.protocol import b64url, unb64url
from clue_server import db
from clue_server.keystore import load_server_keys
from clue_server.quotas import services as quotas
from clue_server.quotas import settings as council
from tests.fakeclue import FakeClue
from tests.functional.member_cli import Member, member_fixture, server_get_fixture  # noqa: F401
from tests.helpers import BASE_URL, AsyncWSGITransport

PHONE = "090-1234-5678"
EMAIL = "J.Doe+Shop@GoogleMail.com"
EMAIL_SIBLING = "jdoe@gmail.com"  # the same folded form
MISS = "080-9999-0000"


def _paths(adapter: Any) -> list[str]:
    return [request.path_url.split("?")[0] for request in adapter.captured]


def _both(make_client: Any, creds: Any) -> tuple[ClueClient, ClueClient, Any]:
    """The same member asking by protocol 1 and by protocol 2."""
    v1, _ = make_client(creds, private_lookups=False)
    v2, adapter = make_client(creds, private_lookups=True)
    return v1, v2, adapter


def test_a_private_look_up_says_exactly_what_v1_says(make_member: Any,
                                                     make_client: Any) -> None:
    alice, bob, carol = make_member("Alice Pay"), make_member("Bob Pay"), make_member("Carol")
    make_client(alice)[0].register("phone", PHONE, "phishing")
    make_client(bob)[0].register("phone", "+81 90 1234 5678", "card_theft")
    make_client(alice)[0].register("email", EMAIL, "account_takeover")
    make_client(bob)[0].register("email", EMAIL_SIBLING, "forged_identity")
    make_client(bob)[0].register("email", "only.folded+x@gmail.com", "other")

    asked = [("phone", PHONE), ("email", EMAIL), ("email", EMAIL_SIBLING),
             ("email", "onlyfolded@gmail.com"), ("phone", MISS)]
    for creds in (alice, carol):
        v1, v2, adapter = _both(make_client, creds)
        expected = v1.lookup_many(asked)
        assert v2.lookup_many(asked) == expected
        assert [(r.matched, r.match) for r in expected] == [
            (True, "exact"), (True, "exact"), (True, "exact"), (True, "folded"),
            (False, None)]
        assert expected[0].reported_by_me is (creds is alice)
        assert expected[1].reported_by_me is (creds is alice)  # its own exact report
        assert expected[2].reported_by_me is (creds is alice)  # alice's, by the folded form
        # Only blinded elements and bucket prefixes left this client.
        assert set(_paths(adapter)) == {"/v2/config", "/v2/evaluations", "/v2/buckets"}


def test_a_dispute_shows_in_the_private_answer(make_member: Any, make_client: Any) -> None:
    reporter, filer = make_member("Rep Pay"), make_member("Filer Bank")
    make_client(reporter)[0].register("phone", PHONE, "phishing")
    v1, v2, _ = _both(make_client, filer)
    assert v2.lookup(phone=PHONE)["phone"].disputed is False
    v1.open_dispute("phone", PHONE, "The customer says the number was reassigned to them")
    private, public = v2.lookup(phone=PHONE)["phone"], v1.lookup(phone=PHONE)["phone"]
    assert private.disputed is True and private == public


def test_lookup_follows_the_councils_protocol_setting(app: Any, make_member: Any,
                                                      make_client: Any) -> None:
    creds = make_member()
    for setting, path in ((1, "/v1/lookups"), (2, "/v2/evaluations")):
        with db.session_scope(app) as session:
            council.set_private_lookups(session, actor="test", lookup_protocol=setting)
        client, adapter = make_client(creds, private_lookups=None)  # follow the server
        client.lookup(phone=PHONE)
        assert path in _paths(adapter)
        # check_signup follows it too, within its own budget.
        assert not client.check_signup(phone=PHONE).degraded


def test_each_evaluation_counts_against_the_lookup_quota(app: Any, make_member: Any,
                                                         make_client: Any) -> None:
    creds = make_member()
    with db.session_scope(app) as session:
        quotas.set_member_quota(session, creds.member_id, 2, None, actor="test")
    _, v2, _ = _both(make_client, creds)
    v2.lookup_many([("phone", PHONE), ("email", EMAIL)])  # an e-mail is one evaluation
    with pytest.raises(RateLimitedError) as caught:
        v2.lookup(phone=MISS)
    assert caught.value.problem["type"] == "urn:clue:problem:quota-exceeded"


def test_the_replica_answers_locally_like_the_online_look_up(tmp_path: Path, make_member: Any,
                                                             make_client: Any) -> None:
    reporter, asker = make_member("Rep Pay"), make_member("Ask Bank")
    make_client(reporter)[0].register("phone", PHONE, "phishing")
    make_client(reporter)[0].register("email", EMAIL, "other")
    asked = [("phone", PHONE), ("email", EMAIL), ("email", EMAIL_SIBLING), ("phone", MISS)]
    _, v2, adapter = _both(make_client, asker)
    online = v2.lookup_many(asked)
    assert v2.sync_replica(tmp_path / "asker") == 3  # an e-mail has two entries
    adapter.captured.clear()
    assert v2.lookup_local_many(asked) == online
    assert _paths(adapter) == ["/v2/evaluations"]  # no bucket, no prefix revealed

    # The reporter's own entries come from its reports (GET /v1/reports lists each
    # report's entry and, for an e-mail, its folded entry): locally as online.
    _, own, _ = _both(make_client, reporter)
    own.sync_replica(tmp_path / "reporter")
    local = own.lookup_local_many(asked)
    assert [r.reported_by_me for r in local] == [True, True, True, False]
    assert [r.reported_by_me for r in own.lookup_many(asked)] == [True, True, True, False]


def test_withdrawing_changes_the_replica_on_the_next_sync(tmp_path: Path, make_member: Any,
                                                          make_client: Any) -> None:
    reporter, asker = make_member("Rep Pay"), make_member("Ask Bank")
    report = make_client(reporter)[0].register("phone", PHONE, "phishing")
    assert report.entry_id is not None and report.oprf_version == 1
    _, v2, _ = _both(make_client, asker)
    v2.sync_replica(tmp_path)
    assert v2.lookup_local(phone=PHONE)["phone"].matched
    make_client(reporter)[0].withdraw(report.id)
    assert v2.sync_replica(tmp_path) == 1  # the tombstone
    assert not v2.lookup_local(phone=PHONE)["phone"].matched


def test_watch_alerts_on_a_later_report_and_when_it_is_withdrawn(
        tmp_path: Path, make_member: Any, make_client: Any) -> None:
    watcher, reporter = make_member("Watch Pay"), make_member("Rep Bank")
    _, client, _ = _both(make_client, watcher)
    progress: list[tuple[int, int]] = []
    watched = client.watch_add(tmp_path, [("phone", PHONE, "acct-1"), ("email", EMAIL, "acct-2")],
                               progress=lambda done, total: progress.append((done, total)))
    assert watched == 3 and progress == [(2, 2)]
    alerts: list[Alert] = []
    assert client.watch_poll(tmp_path, on_alert=alerts.append) == []

    report = make_client(reporter)[0].register("email", EMAIL_SIBLING, "phishing")
    client.watch_poll(tmp_path, on_alert=alerts.append)
    assert [(a.event, a.ref, a.id_type, a.kind) for a in alerts] == [
        ("reported", "acct-2", "email", "folded")]
    assert alerts[0].answer is not None and alerts[0].answer.categories == ("phishing",)

    make_client(reporter)[0].withdraw(report.id)
    assert [(a.event, a.ref) for a in client.watch_poll(tmp_path)] == [("cleared", "acct-2")]
    assert client.watch_poll(tmp_path) == []


def test_the_watch_cli_writes_alerts_to_the_terminal_and_a_jsonl_file(
        member: Member, make_member: Any, make_client: Any) -> None:
    customers = member.root / "customers.csv"
    customers.write_text("種別,値,参照\n電話番号,090-1234-5678,会員-1\nphone,not a phone,x\n",
                         encoding="cp932")
    added = member.run("watch", "add", str(customers))
    assert added.exit_code == 0, added.output
    assert "line 3: skipped" in added.output and "watching 1 entries" in added.output
    alerts_file = member.root / "alerts.jsonl"
    first = member.run("watch", "run", "--once", "--alerts", str(alerts_file))
    assert first.exit_code == 0, first.output
    assert not alerts_file.exists() or alerts_file.read_text() == ""

    ring = member.client().network_keys  # the member's own network key
    make_client(make_member("Rep Bank"), ring)[0].register("phone", PHONE, "card_theft")
    second = member.run("watch", "run", "--once", "--alerts", str(alerts_file))
    assert second.exit_code == 0, second.output
    assert "REPORTED 会員-1 (phone, exact): card_theft; 1 reporter(s)" in second.output
    [line] = alerts_file.read_text(encoding="utf-8").splitlines()
    alert = json.loads(line)
    assert (alert["event"], alert["ref"], alert["type"], alert["categories"]) == (
        "reported", "会員-1", "phone", ["card_theft"])
    status = member.run("watch", "status")
    assert "1 entries" in status.output and "1 currently reported" in status.output


def test_a_watch_list_of_another_oprf_version_is_a_clear_error(
        tmp_path: Path, make_member: Any, make_client: Any) -> None:
    _, client, _ = _both(make_client, make_member())
    client.watch_add(tmp_path, [("phone", PHONE, "acct-1")])
    store = WatchStore(tmp_path)
    assert store.watch is not None
    store.watch.oprf_version = 9  # as if evaluated under a key the server retired
    store.save_watch()
    with pytest.raises(ConfigError, match="OPRF key version 9, which the server no longer"):
        client.watch_poll(tmp_path)


# -- against a server without v2, and hostile ones -------------------------------------------------


def test_a_server_without_private_lookups_is_v1_by_default_and_an_error_if_required(
        app: Any, make_member: Any, make_client: Any) -> None:
    app.extensions["clue_keys"].oprf_keys.clear()  # no OPRF key: /v2 answers 404
    creds = make_member()
    client, adapter = make_client(creds, private_lookups=None)
    assert not client.lookup(phone=PHONE)["phone"].matched
    assert _paths(adapter) == ["/v2/config", "/v1/lookups"]
    with pytest.raises(PrivateLookupsUnavailable, match="does not offer private look-ups"):
        make_client(creds, private_lookups=True)[0].lookup(phone=PHONE)


CONFIG = {"oprf_version": 1, "oprf_versions": [1], "prefix_bits": 16, "lookup_protocol": 2,
          "max_items": 1000, "max_prefixes": 100}


def _hostile(script: list[Any], fake: FakeClue, call: Any) -> Exception:
    fake.script = [fake.signed(200, CONFIG), *script]
    with pytest.raises(MalformedResponseError) as caught:
        call(fake.client(private_lookups=True, retries=0))
    return caught.value


def test_an_evaluated_element_that_is_not_a_point_is_a_clear_error() -> None:
    with FakeClue() as fake:
        error = _hostile([fake.signed(200, {"oprf_version": 1, "prefix_bits": 16,
                                            "evaluated": [b64url(b"\xff" * 32)]})],
                         fake, lambda client: client.lookup(phone=PHONE))
    assert "not a valid ristretto255 element" in str(error)


def test_a_bucket_of_the_wrong_length_is_a_clear_error() -> None:
    key = keys.OprfKey.generate()
    with FakeClue() as fake:
        def evaluate(request: Any) -> Any:
            blinded = unb64url(request.json()["items"][0]["blinded"])
            return fake.signed(200, {"oprf_version": 1, "prefix_bits": 16,
                                     "evaluated": [b64url(key.blind_evaluate(blinded))]})(request)

        def bucket(request: Any) -> Any:  # 53 bytes: not one whole 54-byte record
            prefix = request.json()["prefixes"][0]
            return fake.signed(200, {"oprf_version": 1, "prefix_bits": 16, "cursor": 1,
                                     "buckets": [{"prefix": prefix, "mine": [],
                                                  "entries": b64url(bytes(53))}]})(request)

        error = _hostile([evaluate, bucket], fake, lambda client: client.lookup(phone=PHONE))
    assert "not whole 54-byte records" in str(error)


def test_a_replica_page_that_is_not_a_delta_is_refused(tmp_path: Path) -> None:
    with FakeClue() as fake:
        error = _hostile([fake.signed(200, b"CLUERD-not-really",
                                      content_type="application/vnd.clue.replica-delta")],
                         fake, lambda client: client.sync_replica(tmp_path))
        assert "replica delta is refused" in str(error)
        error = _hostile([fake.signed(200, {"puts": []})], fake,
                         lambda client: client.sync_replica(tmp_path))
        assert "not application/vnd.clue.replica-delta" in str(error)


def test_the_async_client_runs_the_same_private_look_ups(
        tmp_path: Path, app: Any, make_member: Any, make_client: Any,
        network_keys: keys.Keyring, server_keys_dir: Path) -> None:
    from clue_client import AsyncClueClient

    reporter, asker = make_member("Rep Pay"), make_member("Ask Bank")
    make_client(reporter)[0].register("email", EMAIL, "phishing")
    expected = make_client(asker, private_lookups=False)[0].lookup_many(
        [("email", EMAIL_SIBLING), ("phone", MISS)])
    server = load_server_keys(server_keys_dir)
    transport = AsyncWSGITransport(app)

    async def scenario() -> tuple[list[Any], list[Any], list[Alert]]:
        async with AsyncClueClient(
                BASE_URL, signing_key=asker.signing_key, server_public_key=server.public_key,
                server_key_id=server.signing_key_id, network_keys=network_keys,
                http_client=httpx.AsyncClient(transport=transport), retries=0) as client:
            online = await client.lookup_many([("email", EMAIL_SIBLING), ("phone", MISS)])
            await client.sync_replica(tmp_path / "replica")
            local = await client.lookup_local_many([("email", EMAIL_SIBLING), ("phone", MISS)])
            await client.watch_add(tmp_path / "watch", [("email", EMAIL_SIBLING, "acct-9")])
            return online, local, await client.watch_poll(tmp_path / "watch")

    online, local, alerts = asyncio.run(scenario())
    assert online == local == expected  # the server's default (protocol 2) was followed
    assert "/v2/buckets" in {request.url.path for request in transport.captured}
    assert [(a.event, a.ref, a.kind) for a in alerts] == [("reported", "acct-9", "folded")]


# -- match counts for the council's hit rate ----------------------------------------------


def _hits(app: Any, member_id: str) -> dict[str, tuple[int, int]]:
    from sqlalchemy import select

    from clue_server.stats.models import DailyUsage

    with db.session_scope(app) as session:
        return {row.id_type: (row.lookups, row.hits) for row in session.scalars(
            select(DailyUsage).where(DailyUsage.member_id == member_id))}


def test_private_matches_are_counted_and_reported_for_the_hit_rate(
        app: Any, make_member: Any, make_client: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from clue_client import _private

    reporter, asker = make_member("Rep Pay"), make_member("Ask Bank")
    make_client(reporter)[0].register("phone", PHONE, "phishing")
    _, v2, adapter = _both(make_client, asker)
    v2.lookup_many([("phone", PHONE), ("phone", MISS), ("phone", PHONE)])
    assert "/v2/usage" not in _paths(adapter)  # not due yet: at most once a minute
    assert _hits(app, asker.member_id) == {"phone": (3, 0)}  # the server saw no match
    assert v2.flush_usage() == 2  # matches reported
    assert _hits(app, asker.member_id) == {"phone": (3, 2)}
    assert v2.flush_usage() == 0  # nothing twice

    monkeypatch.setattr(_private, "USAGE_EVERY", 0.0)  # due after every look-up
    v2.lookup(phone=PHONE)
    assert _paths(adapter)[-1] == "/v2/usage"
    assert _hits(app, asker.member_id) == {"phone": (4, 3)}
    monkeypatch.setattr(_private, "USAGE_EVERY", 3600.0)
    v2.lookup(phone=PHONE)  # a match, not reported yet
    assert _hits(app, asker.member_id) == {"phone": (5, 3)}
    v2.close()  # reports what is left
    assert _hits(app, asker.member_id) == {"phone": (5, 4)}


def test_a_failed_usage_report_keeps_the_counts_and_never_fails_the_look_up() -> None:
    from clue_client import _private
    from clue_client.errors import TransportError
    from clue_client.models import LookupResult

    tally = _private.UsageTally(clock=lambda: 1e9)
    tally.add([LookupResult(id_type="phone", matched=True),
               LookupResult(id_type="email", matched=False)])
    plan = _private.report_usage(tally, force=True)
    call = next(plan)
    assert (call.method, call.api + call.path) == ("POST", "/v2/usage")
    assert call.body["matched"] == {"phone": 1, "email": 0}
    assert call.headers["Idempotency-Key"].startswith("usage-")
    with pytest.raises(StopIteration) as done:
        plan.throw(TransportError("server unreachable"))
    assert done.value.value == 0
    again = _private.report_usage(tally, force=True)
    assert next(again).body["matched"] == {"phone": 1, "email": 0}  # kept for next time
