"""The tamper-evident audit log: real writes chain, and every kind of tampering is named.

Runs on SQLite and PostgreSQL. The "attacker" edits the database directly with SQL,
as an operator with database access could; the hash layout is recomputed here
independently of ``clue_server.audit.chain``, exactly as docs/audit.md describes it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import shutil
import threading

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

import keys
from clue_client import ClueClient, keyshare
from clue_client.models import ReportInput
from clue_server import create_app, db
from clue_server.audit import chain
from clue_server.audit import services as audit
from clue_server.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from clue_server.cli import main
from clue_server.keystore import load_server_keys, promote_next_signing_key, stage_next_signing_key
from clue_server.members import services as members
from clue_server.reports import services as reports
from tests.helpers import BASE_URL, Creds, WSGIAdapter

EVERY = 3  # a checkpoint whenever an entry id crosses a multiple of 3


@pytest.fixture
def app(database_url, server_keys_dir):
    application = create_app({"database_url": database_url, "server_keys_dir": server_keys_dir,
                              "redis_url": None, "audit_checkpoint_every": EVERY})
    application.config["TESTING"] = True
    yield application
    application.extensions["clue_engine"].dispose()


@pytest.fixture
def cli_env(database_url, server_keys_dir):
    return {"CLUE_DATABASE_URL": database_url, "CLUE_SERVER_KEYS_DIR": str(server_keys_dir),
            "CLUE_REDIS_URL": None}


@pytest.fixture
def attacker(database_url):
    """SQL straight into the database, foreign keys off (as a table owner can arrange)."""
    engine = create_engine(database_url)  # plain SQLite connections do not enforce FKs

    def run(*statements: tuple[str, dict]) -> None:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL session_replication_role = replica"))
            for sql, params in statements:
                conn.execute(text(sql), params)

    yield run
    engine.dispose()


def _run(env, *args):
    result = CliRunner().invoke(main, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def _verify(app, server_keys_dir) -> chain.ChainStatus:
    with db.session_scope(app) as session:
        return chain.verify_chain(session, [load_server_keys(server_keys_dir).public_key])


def _events(app) -> list[AuditEvent]:
    with db.session_scope(app) as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def _checkpoints(app) -> list[AuditCheckpoint]:
    with db.session_scope(app) as session:
        return list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id)))


def _independent_hash(prev: str, event: AuditEvent) -> str:
    """docs/audit.md, recomputed without the server's code."""
    document = {"id": event.id, "at": event.at.astimezone(dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"), "actor": event.actor, "action": event.action,
        "subject": event.subject, "details": event.details}
    body = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(prev.encode() + body.encode("utf-8")).hexdigest()


def _seed(make_member, make_client, writes: int = 6) -> Creds:
    creds = make_member()
    client, _ = make_client(creds)
    for n in range(writes):
        client.register("phone", f"090-7000-{n:04d}", "card_theft")
    return creds


# -- appends ---------------------------------------------------------------------------------


def test_real_writes_form_one_chain_that_verifies(app, make_member, make_client,
                                                  server_keys_dir):
    alpha_key, beta_key = keys.generate_signing_key(), keys.generate_signing_key()
    with db.session_scope(app) as session:
        alpha = members.add_member(session, "Alpha Pay", alpha_key.public_key(),
                                   hpke_public_key=keys.generate_hpke_key().public_key()).id
        beta = members.add_member(session, "Beta Bank", beta_key.public_key(),
                                  hpke_public_key=keys.generate_hpke_key().public_key()).id
    client, _ = make_client(Creds(alpha, alpha_key))
    one = client.register("phone", "090-1234-5678", "card_theft")
    client.register_many([ReportInput("email", f"f{n}@example.jp", "phishing")
                          for n in range(3)])
    client.withdraw(one.id)
    keyshare.share(client, keys.new_symmetric_key("network", 2), alpha_key,
                   own_member_id=alpha)
    with db.session_scope(app) as session:
        members.set_status(session, beta, "suspended")
        members.set_status(session, beta, "active", actor="staff:hanako")
        reports.purge_expired(session, now=db.utcnow())

    events = _events(app)
    assert [e.action for e in events] == [
        "member.add", "member.add", "report.register", "report.register", "report.withdraw",
        "network_key.share", "member.suspend", "member.resume", "report.purge_expired"]
    prev = chain.ZERO_HASH
    for event in events:
        assert event.prev_hash == prev
        assert event.entry_hash == _independent_hash(prev, event)
        prev = event.entry_hash
    checkpoints = _checkpoints(app)
    assert checkpoints, "writes through the app sign the head every few entries"
    public = load_server_keys(server_keys_dir).public_key
    by_id = {e.id: e for e in events}
    for cp in checkpoints:
        assert cp.entry_hash == by_id[cp.event_id].entry_hash
        public.verify(cp.signature, b"clue/v1 audit checkpoint\x00"
                      + str(cp.event_id).encode() + b"\x00" + cp.entry_hash.encode())
    status = _verify(app, server_keys_dir)
    assert status.ok and status.entries == 9 and status.checkpoints == len(checkpoints)
    assert status.last_checkpoint_id == checkpoints[-1].event_id
    with db.session_scope(app) as session:
        head = session.get(AuditHead, 1)
        assert (head.last_event_id, head.last_hash) == (events[-1].id, events[-1].entry_hash)


def test_a_rolled_back_write_leaves_the_chain_whole(app, make_member, make_client,
                                                    server_keys_dir):
    creds = _seed(make_member, make_client, writes=2)
    with pytest.raises(RuntimeError), db.session_scope(app) as session:
        audit.record(session, actor="council", action="member.suspend", subject=creds.member_id)
        raise RuntimeError("the write failed after its audit entry")
    client, _ = make_client(creds)
    client.register("phone", "090-7000-9999", "card_theft")
    assert _verify(app, server_keys_dir).ok


def test_concurrent_appends_keep_one_linear_chain(app, make_member, network_keys,
                                                  server_keys_dir):
    server = load_server_keys(server_keys_dir)
    creds = [make_member("Alpha Pay"), make_member("Beta Bank")]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)
    rounds = 8

    def worker(who: Creds, prefix: str) -> None:
        session = requests.Session()
        session.mount(BASE_URL, WSGIAdapter(app))
        client = ClueClient(BASE_URL, signing_key=who.signing_key,
                            server_public_key=server.public_key, network_keys=network_keys,
                            session=session, retries=0)
        try:
            for n in range(rounds):
                barrier.wait(timeout=10)
                client.register("phone", f"090-{prefix}-{n:04d}", "card_theft")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(c, p))
               for c, p in zip(creds, ("1111", "2222"), strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    events = _events(app)
    assert len(events) == 2 + 2 * rounds
    assert len({e.prev_hash for e in events}) == len(events), "two entries share a parent"
    status = _verify(app, server_keys_dir)
    assert status.ok, status.summary()
    assert status.entries == len(events)


def test_entries_older_than_the_chain_are_chained_on_the_first_append(
        app, attacker, make_member, server_keys_dir):
    at = "2024-01-02 03:04:05.000006"
    attacker(*[("INSERT INTO audit_events (at, actor, action, subject, details) "
                "VALUES (:at, 'council', 'member.add', :s, '{}')", {"at": at, "s": f"m_old{n}"})
               for n in range(3)])
    waiting = _verify(app, server_keys_dir)
    assert waiting.ok and waiting.unchained == 3 and waiting.entries == 0

    make_member()

    events = _events(app)
    assert [e.subject for e in events[:3]] == ["m_old0", "m_old1", "m_old2"]
    prev = chain.ZERO_HASH
    for event in events:
        assert event.prev_hash == prev and event.entry_hash == _independent_hash(prev, event)
        prev = event.entry_hash
    status = _verify(app, server_keys_dir)
    assert status.ok and status.entries == 4 and status.unchained == 0


# -- tampering ---------------------------------------------------------------------------------


def test_editing_a_row_fails_verify_at_exactly_that_row(app, attacker, make_member,
                                                         make_client, server_keys_dir, cli_env):
    _seed(make_member, make_client)
    victim = _events(app)[4].id
    attacker(("UPDATE audit_events SET details = :d WHERE id = :k",
              {"d": '{"report_ids": ["r_innocent"]}', "k": victim}))

    status = _verify(app, server_keys_dir)
    assert not status.ok
    assert (status.first_broken_id, status.problem) == (victim, "hash mismatch")
    assert status.entries == 4  # the four before it are fine
    result = _run(cli_env, "audit", "verify")
    assert result.exit_code == 1
    assert result.output.startswith(f"audit chain BROKEN at entry #{victim}: hash mismatch")


def test_other_edits_are_caught_too(app, attacker, make_member, make_client, server_keys_dir):
    _seed(make_member, make_client)
    ids = [e.id for e in _events(app)]
    attacker(("UPDATE audit_events SET actor = 'council' WHERE id = :k", {"k": ids[2]}))
    assert _verify(app, server_keys_dir).first_broken_id == ids[2]
    attacker(("UPDATE audit_events SET actor = :a WHERE id = :k",
              {"a": _events(app)[3].actor, "k": ids[2]}),
             ("UPDATE audit_events SET prev_hash = :h WHERE id = :k",
              {"h": "f" * 64, "k": ids[1]}))
    broken = _verify(app, server_keys_dir)
    assert (broken.first_broken_id, broken.problem) == (ids[1], "broken link")


def test_deleting_a_row_fails_at_the_gap(app, attacker, make_member, make_client,
                                         server_keys_dir, cli_env):
    _seed(make_member, make_client)
    signed = {cp.event_id for cp in _checkpoints(app)}
    ids = [e.id for e in _events(app)]
    position = next(i for i in range(1, len(ids) - 1) if ids[i] not in signed)
    attacker(("DELETE FROM audit_events WHERE id = :k", {"k": ids[position]}))

    status = _verify(app, server_keys_dir)
    assert (status.first_broken_id, status.problem) == (ids[position + 1], "missing entries")
    assert f"ids {ids[position]}..{ids[position]} are gone" in status.detail
    result = _run(cli_env, "audit", "verify", "--json")
    assert result.exit_code == 1
    assert json.loads(result.output)["first_broken_id"] == ids[position + 1]


def _rewrite_from(attacker, app, start: int, details: str) -> None:
    """Edit entry ``start`` and recompute every hash after it, head included."""
    events = _events(app)
    prev = chain.ZERO_HASH
    statements = []
    for event in events:
        if event.id >= start:
            if event.id == start:
                event.details = json.loads(details)
                statements.append(("UPDATE audit_events SET details = :d WHERE id = :k",
                                   {"d": details, "k": event.id}))
            new = _independent_hash(prev, event)
            statements.append(("UPDATE audit_events SET prev_hash = :p, entry_hash = :h "
                               "WHERE id = :k", {"p": prev, "h": new, "k": event.id}))
            event.entry_hash = new
        prev = event.entry_hash
    statements.append(("UPDATE audit_head SET last_hash = :h", {"h": prev}))
    attacker(*statements)


def test_a_recomputed_chain_is_caught_by_the_signed_checkpoint(app, attacker, make_member,
                                                               make_client, server_keys_dir):
    _seed(make_member, make_client)
    events = _events(app)
    # The first checkpoint the rewrite invalidates: one may sign the rewritten entry itself
    # (where checkpoints fall depends on the id sequence, which other tests advance).
    cp = min((cp for cp in _checkpoints(app) if cp.event_id >= events[1].id),
             key=lambda cp: cp.event_id)
    _rewrite_from(attacker, app, events[1].id, '{"report_ids": ["r_forged"]}')

    status = _verify(app, server_keys_dir)
    assert (status.first_broken_id, status.problem) == (cp.event_id, "checkpoint mismatch")

    # Bringing the checkpoint's hash along breaks its signature instead ...
    forged = _events(app)
    new_hash = next(e.entry_hash for e in forged if e.id == cp.event_id)
    attacker(("UPDATE audit_checkpoints SET entry_hash = :h WHERE event_id = :k",
              {"h": new_hash, "k": cp.event_id}))
    status = _verify(app, server_keys_dir)
    assert (status.first_broken_id, status.problem) == (cp.event_id,
                                                        "bad checkpoint signature")

    # ... and re-signing with any key but the server's is an unknown signer.
    impostor = keys.generate_signing_key()
    key_id, signature = chain.sign_checkpoint(impostor, cp.event_id, new_hash)
    attacker(("UPDATE audit_checkpoints SET key_id = :i, signature = :s WHERE event_id = :k",
              {"i": key_id, "s": signature, "k": cp.event_id}))
    status = _verify(app, server_keys_dir)
    assert status.problem == "bad checkpoint signature"
    assert "not a known server key" in status.detail


def test_truncating_the_tail_is_caught(app, attacker, make_member, make_client,
                                       server_keys_dir):
    creds = _seed(make_member, make_client)
    if _checkpoints(app)[-1].event_id == _events(app)[-1].id:
        make_client(creds)[0].register("phone", "090-7000-9999", "card_theft")
    events = _events(app)
    last_cp = _checkpoints(app)[-1].event_id
    assert last_cp < events[-1].id, "the seed must leave entries after the last checkpoint"

    # Dropping unsigned tail entries, head untouched: the head names what is gone.
    attacker(("DELETE FROM audit_events WHERE id > :k", {"k": last_cp}))
    status = _verify(app, server_keys_dir)
    assert (status.first_broken_id, status.problem) == (events[-1].id, "missing entries")

    # Dropping the checkpointed entry too and fixing the head: the checkpoint survives.
    keep = [e for e in events if e.id < last_cp][-1]
    attacker(("DELETE FROM audit_events WHERE id >= :k", {"k": last_cp}),
             ("UPDATE audit_head SET last_event_id = :i, last_hash = :h",
              {"i": keep.id, "h": keep.entry_hash}))
    status = _verify(app, server_keys_dir)
    assert (status.first_broken_id, status.problem) == (last_cp, "missing entries")
    assert "no longer exists" in status.detail


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_verify_checkpoint_and_show(app, make_member, make_client, cli_env):
    empty = _run(cli_env, "audit", "checkpoint")
    assert empty.exit_code == 0 and "empty" in empty.output
    creds = _seed(make_member, make_client, writes=4)
    last = _events(app)[-1]

    made = _run(cli_env, "audit", "checkpoint")
    again = _run(cli_env, "audit", "checkpoint")
    intact = _run(cli_env, "audit", "verify")

    assert made.exit_code == 0 and made.output.startswith(f"checkpoint at entry #{last.id} ")
    assert again.output == made.output  # not signed twice
    assert intact.exit_code == 0
    assert intact.output.strip() == (f"audit chain intact: 5 entries, {len(_checkpoints(app))} "
                                     f"checkpoints, last checkpoint at entry #{last.id}")
    as_json = json.loads(_run(cli_env, "audit", "verify", "--json").output)
    assert as_json["ok"] is True and as_json["first_broken_id"] is None

    shown = _run(cli_env, "audit", "show", "--limit", "2")
    lines = shown.output.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"#{last.id} ")
    only_adds = json.loads(_run(cli_env, "audit", "show", "--action", "member.add",
                                "--json").output)
    assert [(r["actor"], r["subject"]) for r in only_adds] == [("council", creds.member_id)]
    mine = json.loads(_run(cli_env, "audit", "show", "--actor", creds.member_id, "--json",
                           "--limit", "100").output)
    assert len(mine) == 4 and all(r["action"] == "report.register" for r in mine)


def test_checkpoints_by_a_retired_server_key_still_verify(app, make_member, make_client,
                                                          server_keys_dir, tmp_path, cli_env):
    _seed(make_member, make_client, writes=4)
    old_public = load_server_keys(server_keys_dir).public_key
    keys_dir = tmp_path / "rotated"
    shutil.copytree(server_keys_dir, keys_dir)
    stage_next_signing_key(keys_dir)
    promote_next_signing_key(keys_dir, stamp="20250101T000000Z")
    env = {**cli_env, "CLUE_SERVER_KEYS_DIR": str(keys_dir)}

    assert _run(env, "audit", "verify").exit_code == 0
    made = _run(env, "audit", "checkpoint")
    new_id = load_server_keys(keys_dir).signing_key_id
    assert made.output.rstrip().endswith(f"signed by {new_id}")
    assert _run(env, "audit", "verify").exit_code == 0

    # An auditor holding only the old public key sees the new signer as unknown.
    old_pem = tmp_path / "old.pub"
    keys.save_public_key(old_pem, old_public)
    only_old = _run(env, "audit", "verify", "--public-key", str(old_pem))
    assert only_old.exit_code == 1 and "not a known server key" in only_old.output


def test_checkpoints_follow_the_configured_interval(app, make_member, make_client):
    _seed(make_member, make_client, writes=8)
    ids = [e.id for e in _events(app)]
    # The first entry (member.add, written outside a request) has no keys to sign with.
    expected = [i for prev, i in itertools.pairwise(ids) if i // EVERY > prev // EVERY]
    assert [cp.event_id for cp in _checkpoints(app)] == expected
    with Session(app.extensions["clue_engine"]) as session:
        assert session.scalar(select(func.count()).select_from(AuditCheckpoint)) == len(expected)
