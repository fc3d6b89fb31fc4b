"""Protocol version 2 on the server (docs/private-lookups.md): entries follow reports,
an evaluation sees only a blinded element and is counted, a bucket holds sealed
entries only their evaluators open, the replica is a signed delta that follows every
change.

The member side is done here by hand with the shared pure functions (blind, finalize,
derive, open), so these tests check the server against the specification rather than
against the SDK.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import select, update

import keys
from clue_client import ReportInput, canonical, tokens
from clue_client.private_lookups import entries as pl
from clue_client.private_lookups.replica import parse_delta
from clue_client.protocol import b64url
from clue_server import db
from clue_server.disputes import services as disputes
from clue_server.keystore import load_server_keys
from clue_server.private.models import Entry
from clue_server.quotas import services as quotas
from clue_server.quotas import settings as council
from clue_server.reports import services as reports
from clue_server.reports.models import Report
from tests.helpers import Creds, signed

PHONE = "090-1234-5678"


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _token(network_keys: keys.Keyring, id_type: str, value: str) -> tuple[bytes, bytes | None]:
    key = network_keys.current.secret
    canon = canonical.canonicalize(id_type, value)
    folded = (tokens.derive_token(key, id_type, canonical.email_folded(canon))
              if id_type == "email" else None)
    return tokens.derive_token(key, id_type, canon), folded


def _entry_ids(app: Any, *report_ids: str) -> list[bytes | None]:
    with db.session_scope(app) as session:
        return [session.get(Report, rid).entry_id for rid in report_ids]


def _evaluate(http: Any, creds: Creds, id_type: str, inputs: Sequence[bytes]
              ) -> tuple[list[bytes], dict[str, Any]]:
    blinds = keys.oprf_blind_batch(list(inputs))
    answer = signed(http, creds, "POST", "/v2/evaluations", {
        "oprf_version": 1,
        "items": [{"type": id_type, "blinded": b64url(b.blinded_element)} for b in blinds]})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    outputs = keys.oprf_finalize_batch(blinds, [_b64(e) for e in body["evaluated"]])
    return outputs, body


def private_lookup(http: Any, creds: Creds, network_keys: keys.Keyring, id_type: str,
                   value: str) -> tuple[pl.Answer | None, bool, str | None]:
    """(answer, reported by me, match) as a v2 client computes them."""
    token, folded = _token(network_keys, id_type, value)
    (y,), config = _evaluate(http, creds, id_type, [folded or token])
    if folded is not None:
        exact, folded_ref = pl.derive_email_entries(y, token)
        wanted = {"exact": exact, "folded": folded_ref}
        placed = folded_ref
    else:
        wanted = {"exact": pl.derive_entry(y, "exact")}
        placed = wanted["exact"]
    bits = config["prefix_bits"]
    prefix = pl.bucket_prefix(placed.entry_id, bits)
    answer = signed(http, creds, "POST", "/v2/buckets",
                    {"oprf_version": 1, "prefix_bits": bits, "prefixes": [prefix]})
    assert answer.status_code == 200, answer.get_json()
    (bucket,) = answer.get_json()["buckets"]
    raw = _b64(bucket["entries"])
    records = [raw[i:i + 54] for i in range(0, len(raw), 54)]
    ids = [r[:16] for r in records]
    assert ids == sorted(ids)
    found, mine, match = [], False, None
    for kind, ref in wanted.items():
        if ref.entry_id in ids:
            position = ids.index(ref.entry_id)
            found.append(pl.open_answer(ref, 1, records[position][16:]))
            mine = mine or position in bucket["mine"]
            match = match or kind
    return (pl.merge_answers(found) if found else None), mine, match


@pytest.fixture
def network(network_keys: keys.Keyring) -> keys.Keyring:
    return network_keys


def test_config_names_the_oprf_key_bucket_size_and_protocol(
        http: Any, make_member: Any) -> None:
    answer = signed(http, make_member(), "GET", "/v2/config")
    assert answer.status_code == 200
    assert answer.get_json() == {"oprf_version": 1, "oprf_versions": [1], "prefix_bits": 16,
                                 "lookup_protocol": 2, "v1_lookups": "open",
                                 "max_items": 1000, "max_prefixes": 100}
    assert "Signature" in answer.headers  # signed like every v1 answer


def test_a_registered_phone_is_found_privately_with_the_v1_answer(
        app: Any, http: Any, make_member: Any, make_client: Any,
        network: keys.Keyring) -> None:
    reporter, other, asker = make_member("Rep Pay"), make_member("Other Bank"), make_member("Ask")
    make_client(reporter)[0].register("phone", PHONE, "card_theft")
    make_client(other)[0].register("phone", "+81 90 1234 5678", "phishing")
    asking, _ = make_client(asker)
    v1 = asking.lookup(phone=PHONE)["phone"]

    answer, mine, match = private_lookup(http, asker, network, "phone", PHONE)
    assert answer is not None and match == "exact" and not mine
    assert answer.categories == tuple(v1.categories) == ("card_theft", "phishing")
    assert answer.reporters == v1.reporters == 2
    assert answer.first_reported == v1.first_reported and not answer.disputed
    # The reporter sees its own entry marked; nobody else does.
    assert private_lookup(http, reporter, network, "phone", PHONE)[1] is True
    assert private_lookup(http, asker, network, "phone", "090-9999-0000")[0] is None


def test_an_email_is_matched_exactly_or_by_its_folded_form_in_one_bucket(
        http: Any, make_member: Any, make_client: Any, network: keys.Keyring) -> None:
    reporter, asker = make_member("Rep Pay"), make_member("Ask Bank")
    make_client(reporter)[0].register("email", "J.Doe+shop@gmail.com", "phishing")
    exact = private_lookup(http, asker, network, "email", "j.doe+shop@gmail.com")
    folded = private_lookup(http, asker, network, "email", "jdoe@googlemail.com")
    assert exact[2] == "exact" and folded[2] == "folded"
    assert exact[0] == folded[0] and exact[0] is not None
    assert exact[0].categories == ("phishing",)


def test_every_evaluation_counts_against_the_lookup_quota_and_a_bad_one_costs_nothing(
        app: Any, http: Any, make_member: Any, network: keys.Keyring) -> None:
    creds = make_member()
    with db.session_scope(app) as session:
        quotas.set_member_quota(session, creds.member_id, 3, None, actor="test")
    token, _ = _token(network, "phone", PHONE)
    blinded = b64url(keys.oprf_blind(token).blinded_element)
    identity = b64url(bytes(32))
    refused = signed(http, creds, "POST", "/v2/evaluations", {
        "oprf_version": 1, "items": [{"type": "phone", "blinded": blinded},
                                     {"type": "phone", "blinded": identity}]})
    assert refused.status_code == 422
    assert refused.get_json()["pointer"] == "/items/1/blinded"
    _evaluate(http, creds, "phone", [token, token])
    over = signed(http, creds, "POST", "/v2/evaluations", {
        "oprf_version": 1, "items": [{"type": "phone", "blinded": blinded}] * 2})
    assert over.status_code == 429
    assert over.get_json()["type"] == "urn:clue:problem:quota-exceeded"
    _evaluate(http, creds, "phone", [token])  # the third fits exactly


@pytest.mark.parametrize(("body", "status", "pointer"), [
    ([], 400, "/"),
    ({"oprf_version": 1}, 400, "/items"),
    ({"oprf_version": 1, "items": [], "x": 1}, 400, "/x"),
    ({"oprf_version": "1", "items": [{"type": "phone", "blinded": "A" * 43}]}, 400,
     "/oprf_version"),
    ({"oprf_version": 7, "items": [{"type": "phone", "blinded": "A" * 43}]}, 422,
     "/oprf_version"),
    ({"oprf_version": 1, "items": []}, 422, "/items"),
    ({"oprf_version": 1, "items": [{"type": "phone", "blinded": "A" * 43}] * 1001}, 422,
     "/items"),
    ({"oprf_version": 1, "items": [{"type": "fax", "blinded": "A" * 43}]}, 422,
     "/items/0/type"),
    ({"oprf_version": 1, "items": [{"type": "phone", "blinded": "A" * 42}]}, 422,
     "/items/0/blinded"),
    ({"oprf_version": 1, "items": [{"type": "phone", "blinded": "A" * 42 + "B"}]}, 422,
     "/items/0/blinded"),  # not canonical base64url
    ({"oprf_version": 1, "items": [{"type": "phone", "blinded": "_" * 42 + "\ud800"}]}, 400,
     None),
    ({"oprf_version": 1, "items": [{"type": "phone", "blinded": b64url(b"\xff" * 32)}]}, 422,
     "/items/0/blinded"),  # not a canonical ristretto255 encoding
    ({"oprf_version": 1, "items": [{"type": "phone", "blinded": 12}]}, 422,
     "/items/0/blinded"),
    ({"oprf_version": 1, "items": [{"type": "phone"}]}, 400, "/items/0/blinded"),
])
def test_malformed_evaluations_are_refused_clearly_and_count_nothing(
        app: Any, http: Any, make_member: Any, body: Any, status: int, pointer: str) -> None:
    creds = make_member()
    answer = signed(http, creds, "POST", "/v2/evaluations", body)
    assert answer.status_code == status, answer.get_json()
    problem = answer.get_json()
    assert problem.get("pointer") == pointer
    assert "Signature" in answer.headers
    with db.session_scope(app) as session:
        assert quotas.usage_today(session, creds.member_id).lookups == 0


@pytest.mark.parametrize(("body", "status"), [
    ({"oprf_version": 1, "prefix_bits": 16}, 400),
    ({"oprf_version": 1, "prefix_bits": 16, "prefixes": []}, 422),
    ({"oprf_version": 1, "prefix_bits": 16, "prefixes": [65536]}, 422),
    ({"oprf_version": 1, "prefix_bits": 16, "prefixes": [-1]}, 422),
    ({"oprf_version": 1, "prefix_bits": 16, "prefixes": [1.5]}, 422),
    ({"oprf_version": 1, "prefix_bits": 16, "prefixes": [True]}, 422),
    ({"oprf_version": 1, "prefix_bits": 16, "prefixes": [3, 3]}, 422),
    ({"oprf_version": 1, "prefix_bits": 16, "prefixes": list(range(101))}, 422),
    (b'{"oprf_version": 1, "prefix_bits": 16, "prefixes": [' + b"9" * 5000 + b"]}", 400),
    ({"oprf_version": 2, "prefix_bits": 16, "prefixes": [1]}, 422),
    ({"oprf_version": 1, "prefix_bits": 18, "prefixes": [1]}, 409),
    ({"oprf_version": 1, "prefix_bits": "16", "prefixes": [1]}, 409),
])
def test_malformed_bucket_requests_are_refused_clearly(
        http: Any, make_member: Any, body: Any, status: int) -> None:
    answer = (signed(http, make_member(), "POST", "/v2/buckets", raw=body)
              if isinstance(body, bytes) else
              signed(http, make_member(), "POST", "/v2/buckets", body))
    assert answer.status_code == status, answer.get_json()
    if status == 409:
        assert answer.get_json()["prefix_bits"] == 16


def test_entries_are_resealed_on_every_change_and_tombstoned_when_none_is_left(
        app: Any, http: Any, make_member: Any, make_client: Any,
        network: keys.Keyring) -> None:
    reporter, filer = make_member("Rep Pay"), make_member("Filer Bank")
    client, _ = make_client(reporter)
    first = client.register("phone", PHONE, "card_theft")
    second = client.register("phone", PHONE, "phishing")
    one, two = _entry_ids(app, first.id, second.id)
    assert one == two is not None  # one identifier, one entry
    answer, mine, _ = private_lookup(http, reporter, network, "phone", PHONE)
    assert answer is not None and answer.categories == ("card_theft", "phishing") and mine

    make_client(filer)[0].open_dispute("phone", PHONE, "this is our customer's own number")
    answer, _, _ = private_lookup(http, filer, network, "phone", PHONE)
    assert answer is not None and answer.disputed

    client.withdraw(second.id)
    answer, _, _ = private_lookup(http, filer, network, "phone", PHONE)
    assert answer is not None and answer.categories == ("card_theft",)
    client.withdraw(first.id)
    assert private_lookup(http, filer, network, "phone", PHONE)[0] is None
    with db.session_scope(app) as session:
        (row,) = session.scalars(select(Entry)).all()
        assert row.deleted_at is not None and row.sealed is None


def test_suspension_and_expiry_take_a_report_out_of_its_entry(
        app: Any, http: Any, make_member: Any, make_client: Any,
        network: keys.Keyring) -> None:
    reporter, filer = make_member("Rep Pay"), make_member("Filer Bank")
    make_client(reporter)[0].register("phone", PHONE, "card_theft")
    make_client(filer)[0].register_many([ReportInput("ip", "8.8.4.7", "phishing",
                                                     expires_in_days=1)])
    make_client(filer)[0].open_dispute("phone", PHONE, "our customer's number")
    later = db.utcnow() + dt.timedelta(days=30)
    with db.session_scope(app) as session:
        assert disputes.suspend_overdue(session, later, "council") == 1
        assert reports.purge_expired(session, now=later) == 1
    assert private_lookup(http, filer, network, "phone", PHONE)[0] is None
    assert private_lookup(http, reporter, network, "ip", "8.8.4.7")[0] is None


def _replica(http: Any, creds: Creds, server_keys_dir: Any, after: int = 0,
             limit: int | None = None) -> Any:
    query = f"/v2/replica?oprf_version=1&after={after}" + (f"&limit={limit}" if limit else "")
    answer = signed(http, creds, "GET", query)
    assert answer.status_code == 200, answer.data[:300]
    assert answer.headers["Content-Type"] == "application/vnd.clue.replica-delta"
    server = load_server_keys(server_keys_dir)
    return parse_delta(answer.data, {server.signing_key_id: server.public_key})


def test_the_replica_pages_by_change_and_follows_withdrawals(
        app: Any, http: Any, make_member: Any, make_client: Any, server_keys_dir: Any,
        network: keys.Keyring) -> None:
    reporter = make_member("Rep Pay")
    client, _ = make_client(reporter)
    made = client.register_many([ReportInput("phone", f"090-1234-560{i}", "card_theft")
                                 for i in range(5)])
    first = _replica(http, reporter, server_keys_dir, limit=3)
    assert (len(first.puts), first.more, first.deletes) == (3, True, ())
    rest = _replica(http, reporter, server_keys_dir, after=first.to)
    assert (len(rest.puts), rest.more) == (2, False)
    ids = {entry_id for entry_id, _ in first.puts + rest.puts}
    made_ids = _entry_ids(app, *(r.id for r in made))
    assert ids == set(made_ids)
    client.withdraw(made[0].id)
    change = _replica(http, reporter, server_keys_dir, after=rest.to)
    assert change.deletes == (made_ids[0],) and change.puts == ()
    assert _replica(http, reporter, server_keys_dir, after=change.to).to == change.to
    # A full download leaves out what is gone.
    assert len(_replica(http, reporter, server_keys_dir).puts) == 4
    # What a member opens from the replica equals what the bucket gives.
    token, _ = _token(network, "phone", "090-1234-5601")
    (y,), _ = _evaluate(http, reporter, "phone", [token])
    ref = pl.derive_entry(y, "exact")
    sealed = dict(first.puts + rest.puts)[ref.entry_id]
    assert pl.open_answer(ref, 1, sealed).categories == ("card_theft",)


@pytest.mark.parametrize("query", [
    "/v2/replica", "/v2/replica?oprf_version=x", "/v2/replica?oprf_version=1&after=-1",
    "/v2/replica?oprf_version=1&limit=0", "/v2/replica?oprf_version=1&limit=100001",
    "/v2/replica?oprf_version=1&after=" + "9" * 30, "/v2/replica?oprf_version=1&x=1",
    "/v2/replica?oprf_version=%EF%BC%91",
])
def test_malformed_replica_requests_are_refused(http: Any, make_member: Any,
                                                query: str) -> None:
    answer = signed(http, make_member(), "GET", query)
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["type"] == "urn:clue:problem:bad-request"


def test_a_cursor_older_than_the_purged_tombstones_must_download_again(
        app: Any, http: Any, make_member: Any, make_client: Any, server_keys_dir: Any) -> None:
    reporter = make_member("Rep Pay")
    client, _ = make_client(reporter)
    made = client.register_many([ReportInput("phone", f"090-1234-560{i}", "card_theft")
                                 for i in range(3)])
    client.withdraw(made[0].id)
    client.withdraw(made[1].id)
    with db.session_scope(app) as session:
        reports.purge_expired(session, now=db.utcnow() + dt.timedelta(days=31))
    answer = signed(http, reporter, "GET", "/v2/replica?oprf_version=1&after=1")
    assert answer.status_code == 410
    assert answer.get_json()["type"] == "urn:clue:problem:cursor-expired"
    assert len(_replica(http, reporter, server_keys_dir).puts) == 1


def test_reports_stored_before_the_oprf_key_get_their_entry_when_registered_again(
        app: Any, http: Any, make_member: Any, make_client: Any,
        network: keys.Keyring) -> None:
    reporter, asker = make_member("Rep Pay"), make_member("Ask Bank")
    client, _ = make_client(reporter)
    stored = client.register("phone", PHONE, "card_theft")
    (entry_id,) = _entry_ids(app, stored.id)
    with db.session_scope(app) as session:  # as a report from before migration 0008
        session.execute(update(Report).values(oprf_version=None, entry_id=None))
        session.execute(Entry.__table__.delete())
    assert private_lookup(http, asker, network, "phone", PHONE)[0] is None
    again = client.register("phone", PHONE, "card_theft")
    assert (again.id, again.created) == (stored.id, False)
    assert _entry_ids(app, stored.id) == [entry_id]
    assert private_lookup(http, asker, network, "phone", PHONE)[0] is not None


def test_the_council_changes_the_bucket_size_and_old_requests_are_told(
        app: Any, http: Any, make_member: Any, network: keys.Keyring) -> None:
    creds = make_member()
    with db.session_scope(app) as session:
        council.set_private_lookups(session, actor="test", prefix_bits=18)
    app.extensions["clue_private_settings"].invalidate()
    answer = signed(http, creds, "POST", "/v2/buckets",
                    {"oprf_version": 1, "prefix_bits": 16, "prefixes": [1]})
    assert (answer.status_code, answer.get_json()["prefix_bits"]) == (409, 18)
    assert signed(http, creds, "GET", "/v2/config").get_json()["prefix_bits"] == 18


# -- the council's commands ----------------------------------------------------------------


def _cli(database_url: str, keys_dir: Any, *args: str) -> Any:
    from click.testing import CliRunner

    from clue_server.cli import main

    result = CliRunner().invoke(main, list(args), env={
        "CLUE_DATABASE_URL": database_url, "CLUE_SERVER_KEYS_DIR": str(keys_dir),
        "CLUE_REDIS_URL": None})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_oprf_key_list_counts_entries_and_reports_still_to_move(
        app: Any, database_url: str, server_keys_dir: Any, make_member: Any,
        make_client: Any) -> None:
    client, _ = make_client(make_member())
    client.register("phone", PHONE, "card_theft")
    old = client.register("ip", "8.8.4.7", "phishing")
    with db.session_scope(app) as session:  # as a report from before migration 0008
        session.execute(update(Report).where(Report.id == old.id).values(
            oprf_version=None, entry_id=None))
    listed = _cli(database_url, server_keys_dir, "oprf-key", "list")
    assert listed.exit_code == 0, listed.output
    assert "v1 (current): 2 live entr(ies), 1 report(s)" in listed.output
    assert "reports without an entry under the current key: 1" in listed.output


def test_oprf_key_create_adds_the_next_version_the_server_then_uses(
        database_url: str, tmp_path: Any) -> None:
    keys_dir = tmp_path / "keys"
    assert _cli(database_url, keys_dir, "init").exit_code == 0
    assert (keys_dir / "oprf-v1.key").exists()
    created = _cli(database_url, keys_dir, "oprf-key", "create")
    assert created.exit_code == 0 and "OPRF key v2 created" in created.output
    assert (keys_dir / "oprf-v2.key").stat().st_mode & 0o077 == 0
    server = load_server_keys(keys_dir)
    assert (server.oprf_version, sorted(server.oprf_keys)) == (2, [1, 2])


def test_private_set_changes_settings_audited_and_refuses_nonsense(
        app: Any, database_url: str, server_keys_dir: Any, make_member: Any,
        make_client: Any) -> None:
    from clue_server.audit.models import AuditEvent

    shown = _cli(database_url, server_keys_dir, "private", "show")
    assert "prefix_bits: 16" in shown.output and "lookup_protocol: 2" in shown.output
    for bad in (["--prefix-bits", "11"], ["--prefix-bits", "21"], ["--lookup-protocol", "3"],
                []):
        refused = _cli(database_url, server_keys_dir, "private", "set", *bad)
        assert refused.exit_code == 2, refused.output
    changed = _cli(database_url, server_keys_dir, "private", "set", "--prefix-bits", "18",
                   "--lookup-protocol", "1")
    assert changed.exit_code == 0, changed.output
    assert "prefix_bits: 16 -> 18" in changed.output
    client, _ = make_client(make_member())
    stored = client.register("phone", PHONE, "card_theft")
    with db.session_scope(app) as session:
        session.execute(update(Report).where(Report.id == stored.id).values(
            oprf_version=None, entry_id=None))
    back = _cli(database_url, server_keys_dir, "private", "set", "--lookup-protocol", "2")
    assert "1 report(s) have no entry yet" in back.output
    with db.session_scope(app) as session:
        assert council.private_lookups(session) == (18, 2)
        actions = session.scalars(select(AuditEvent.action).where(
            AuditEvent.action == "private.settings_set")).all()
        assert len(actions) == 2


# -- hit counts the SDK reports ------------------------------------------------------------


def _hits(app: Any, member_id: str) -> dict[str, int]:
    from clue_server.stats.models import DailyUsage

    with db.session_scope(app) as session:
        return {row.id_type: row.hits for row in session.scalars(
            select(DailyUsage).where(DailyUsage.member_id == member_id))}


def test_members_report_their_private_matches_for_the_hit_rate_once_per_key(
        app: Any, http: Any, make_member: Any) -> None:
    creds = make_member()
    today = db.utcnow().date().isoformat()
    body = {"day": today, "matched": {"phone": 3, "email": 1}}
    first = signed(http, creds, "POST", "/v2/usage", body, headers={"Idempotency-Key": "u-1"})
    assert first.status_code == 200 and first.get_json()["recorded"] == body["matched"]
    again = signed(http, creds, "POST", "/v2/usage", body, headers={"Idempotency-Key": "u-1"})
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert _hits(app, creds.member_id) == {"phone": 3, "email": 1}


@pytest.mark.parametrize(("body", "status"), [
    ({"day": "2026-11-30"}, 400),
    ({"day": 20261130, "matched": {"phone": 1}}, 400),
    ({"day": "30/11/2026", "matched": {"phone": 1}}, 400),
    ({"day": "2001-01-01", "matched": {"phone": 1}}, 422),
    ({"day": "today", "matched": {}}, 400),
    ({"day": "today", "matched": [1]}, 400),
    ({"day": "today", "matched": {"fax": 1}}, 422),
    ({"day": "today", "matched": {"phone": -1}}, 422),
    ({"day": "today", "matched": {"phone": True}}, 422),
    ({"day": "today", "matched": {"phone": 10**7 + 1}}, 422),
    ({"day": "today", "matched": {"phone": 1}, "extra": 1}, 400),
])
def test_malformed_usage_reports_are_refused_and_count_nothing(
        app: Any, http: Any, make_member: Any, body: dict[str, Any], status: int) -> None:
    creds = make_member()
    if body.get("day") == "today":
        body = {**body, "day": db.utcnow().date().isoformat()}
    answer = signed(http, creds, "POST", "/v2/usage", body)
    assert answer.status_code == status, answer.get_json()
    assert _hits(app, creds.member_id) == {}


def test_a_report_registered_again_under_a_new_oprf_key_leaves_its_old_entry(
        app: Any, http: Any, make_member: Any, make_client: Any, server_keys_dir: Any,
        network: keys.Keyring, tmp_path: Any) -> None:
    import shutil

    from clue_server import create_app
    from clue_server.keystore import new_oprf_key

    reporter = make_member("Rep Pay")
    client, _ = make_client(reporter)
    stored = client.register("phone", PHONE, "card_theft")
    (old_id,) = _entry_ids(app, stored.id)
    rotated = tmp_path / "rotated-keys"
    shutil.copytree(server_keys_dir, rotated)
    assert new_oprf_key(rotated)[0] == 2
    newer = create_app({"database_url": app.extensions["clue_settings"].database_url,
                        "server_keys_dir": rotated, "redis_url": None})
    try:
        again = signed(newer.test_client(), reporter, "POST", "/v1/reports", {"reports": [{
            **client._token_fields("phone", PHONE, 1), "category": "card_theft"}]})
        assert again.status_code == 200, again.get_json()
        assert again.get_json()["reports"][0]["oprf_version"] == 2
    finally:
        db.dispose(newer)
    with db.session_scope(app) as session:
        old = session.get(Entry, (1, old_id))
        assert old is not None and old.deleted_at is not None  # v1's entry is gone
        (new,) = session.scalars(select(Entry).where(Entry.oprf_version == 2)).all()
        assert new.deleted_at is None and new.sealed is not None


def test_the_council_retires_protocol_1_lookups_once_sdks_look_up_privately(
        app: Any, http: Any, database_url: str, server_keys_dir: Any, make_member: Any,
        make_client: Any) -> None:
    from clue_client.errors import ClueError

    creds = make_member()
    with db.session_scope(app) as session:
        council.set_private_lookups(session, actor="test", lookup_protocol=1)
    refused = _cli(database_url, server_keys_dir, "private", "set", "--v1-lookups", "retired")
    assert refused.exit_code == 1 and "set lookup_protocol to 2 first" in refused.output
    done = _cli(database_url, server_keys_dir, "private", "set", "--lookup-protocol", "2",
                "--v1-lookups", "retired")
    assert done.exit_code == 0, done.output
    assert "v1_lookups: open -> retired" in done.output
    for cache in ("clue_v1_retired", "clue_private_settings"):  # another process changed it
        app.extensions[cache].invalidate()

    body = {"items": [{"type": "phone", "key_version": 1, "token": b64url(bytes(32))}]}
    gone = signed(http, creds, "POST", "/v1/lookups", body)
    assert gone.status_code == 410 and "Signature" in gone.headers
    assert gone.get_json()["type"] == "urn:clue:problem:protocol-retired"
    assert signed(http, creds, "POST", "/v1/lookups", body).status_code == 410
    assert signed(http, creds, "GET", "/v2/config").get_json()["v1_lookups"] == "retired"
    following, _ = make_client(creds, private_lookups=None)
    assert following.lookup(phone=PHONE)["phone"].matched is False  # privately
    pinned, _ = make_client(creds, private_lookups=False)
    with pytest.raises(ClueError, match="retired protocol-1 look-ups"):
        pinned.lookup(phone=PHONE)

    back = _cli(database_url, server_keys_dir, "private", "set", "--lookup-protocol", "1")
    assert back.exit_code == 1 and "reopen them first" in back.output
    reopened = _cli(database_url, server_keys_dir, "private", "set", "--v1-lookups", "open",
                    "--lookup-protocol", "1")
    assert reopened.exit_code == 0, reopened.output
    app.extensions["clue_v1_retired"].invalidate()
    assert signed(http, creds, "POST", "/v1/lookups", body).status_code == 200
    from clue_server.audit.models import AuditEvent
    with db.session_scope(app) as session:
        assert len(session.scalars(select(AuditEvent).where(
            AuditEvent.action == "private.v1_lookups_set")).all()) == 2


def test_a_server_without_an_oprf_key_answers_v2_with_a_signed_404_and_says_why(
        app: Any, make_member: Any, server_keys_dir: Any, tmp_path: Any) -> None:
    import shutil

    from clue_server import create_app

    creds = make_member()
    bare = tmp_path / "no-oprf-keys"
    shutil.copytree(server_keys_dir, bare)
    (bare / "oprf-v1.key").unlink()
    older = create_app({"database_url": app.extensions["clue_settings"].database_url,
                        "server_keys_dir": bare, "redis_url": None})
    try:
        answer = signed(older.test_client(), creds, "GET", "/v2/config")
        assert answer.status_code == 404 and "Signature" in answer.headers
        assert "clue-server oprf-key create" in answer.get_json()["detail"]
        # Registration still works; the report simply has no entry yet.
        stored = signed(older.test_client(), creds, "POST", "/v1/reports", {"reports": [{
            "type": "phone", "key_version": 1, "token": b64url(bytes(32)),
            "category": "other"}]})
        assert stored.status_code == 201
        assert stored.get_json()["reports"][0]["entry_id"] is None
    finally:
        db.dispose(older)
    listed = _cli(app.extensions["clue_settings"].database_url, bare, "oprf-key", "list")
    assert "no OPRF key: private look-ups are off" in listed.output


def test_an_email_registered_without_its_folded_token_gets_no_entry(
        http: Any, make_member: Any, network: keys.Keyring) -> None:
    token, folded = _token(network, "email", "j.doe@example.com")
    creds = make_member()
    item = {"type": "email", "key_version": 1, "token": b64url(token), "category": "other"}
    without = signed(http, creds, "POST", "/v1/reports", {"reports": [item]})
    assert without.status_code == 201
    assert without.get_json()["reports"][0]["entry_id"] is None  # bucketed by the folded one
    assert folded is not None
    other = signed(http, make_member("Other"), "POST", "/v1/reports", {"reports": [
        {**item, "folded_token": b64url(folded)}]})
    report = other.get_json()["reports"][0]
    assert report["entry_id"] is not None and report["folded_entry_id"] is not None
