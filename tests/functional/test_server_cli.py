"""``clue-server``: init, member add/suspend/resume/list, purge-expired.

Driven through click's CliRunner with CLUE_DATABASE_URL and CLUE_SERVER_KEYS_DIR
pointing at temporary places, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import stat

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, select, text, update
from sqlalchemy.engine import make_url

import keys
from clue_client import ForbiddenError
from clue_server import db
from clue_server.audit.models import AuditEvent
from clue_server.cli import main
from clue_server.keystore import load_server_keys
from clue_server.reports.models import Report
from tests.helpers import Creds

MEMBER_ID = re.compile(r"m_[0-9a-f]{12}")


def _run(env, *args):
    result = CliRunner().invoke(main, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a crash, not a clean refusal
    return result


@pytest.fixture
def cli_env(database_url, tmp_path):
    return {"CLUE_DATABASE_URL": database_url,
            "CLUE_SERVER_KEYS_DIR": str(tmp_path / "server-keys"),
            "CLUE_REDIS_URL": None}


@pytest.fixture
def public_key_file(tmp_path):
    counter = iter(range(1000))

    def make(key=None):
        key = key or keys.generate_signing_key()
        path = tmp_path / f"member-{next(counter)}.pub"
        keys.save_public_key(path, key.public_key())
        return path

    return make


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def _members(env):
    result = _run(env, "member", "list", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


# -- init -------------------------------------------------------------------------------


def test_init_creates_the_database_and_private_keys(tmp_path):
    database = tmp_path / "var" / "nested" / "clue.db"
    key_dir = tmp_path / "var" / "server-keys"
    env = {"CLUE_DATABASE_URL": f"sqlite:///{database}", "CLUE_SERVER_KEYS_DIR": str(key_dir),
           "CLUE_REDIS_URL": None}

    result = _run(env, "init")

    assert result.exit_code == 0, result.output
    assert f"created {key_dir / 'server-signing.key'}" in result.output
    assert f"created {key_dir / 'pepper-v1.key'}" in result.output
    assert "database ready: sqlite:///" in result.output
    assert _mode(key_dir) == 0o700
    assert _mode(key_dir / "server-signing.key") == 0o600
    assert _mode(key_dir / "pepper-v1.key") == 0o600
    assert (key_dir / "server-signing.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY")
    server = load_server_keys(key_dir)
    assert len(server.peppers) == 1
    engine = create_engine(f"sqlite:///{database}")
    try:
        assert {"members", "member_keys", "reports", "audit_events", "idempotency_records",
                "seen_nonces"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_init_is_idempotent(tmp_path, public_key_file):
    env = {"CLUE_DATABASE_URL": f"sqlite:///{tmp_path / 'clue.db'}",
           "CLUE_SERVER_KEYS_DIR": str(tmp_path / "keys"), "CLUE_REDIS_URL": None}
    assert _run(env, "init").exit_code == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "keys").iterdir()}
    member_id = _run(env, "member", "add", "Example Pay", "--public-key",
                     str(public_key_file())).stdout.strip()

    again = _run(env, "init")

    assert again.exit_code == 0, again.output
    assert "created" not in again.output
    assert {p.name: p.read_bytes() for p in (tmp_path / "keys").iterdir()} == before
    assert [m["id"] for m in _members(env)] == [member_id]  # data kept


def test_init_on_the_backend_database(cli_env, database_url, tmp_path):
    env = dict(cli_env)
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        # PostgreSQL here trusts local connections, so a password is accepted and ignored;
        # it must never be printed.
        env["CLUE_DATABASE_URL"] = url.set(password="s3cret-pw").render_as_string(
            hide_password=False)
    first = _run(env, "init")
    second = _run(env, "init")
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert "created" in first.output and "created" not in second.output
    assert "s3cret-pw" not in first.output + second.output
    assert _members(env) == []


# -- members ----------------------------------------------------------------------------


def test_member_add_prints_an_id(cli_env, public_key_file):
    key = keys.generate_signing_key()

    result = _run(cli_env, "member", "add", "Example Pay", "--public-key",
                  str(public_key_file(key)))

    assert result.exit_code == 0, result.output
    member_id = result.stdout.strip()  # the id alone on stdout, for scripts
    assert MEMBER_ID.fullmatch(member_id)
    [listed] = _members(cli_env)
    assert listed["id"] == member_id
    assert listed["name"] == "Example Pay"
    assert listed["status"] == "active"
    assert listed["keys"] == [keys.key_id(key.public_key())]


def test_member_add_refusals_are_clear_and_store_nothing(cli_env, public_key_file, tmp_path):
    key_file = public_key_file()
    assert _run(cli_env, "member", "add", "Example Pay", "--public-key", str(key_file)
                ).exit_code == 0
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("this is not a key\n")
    x25519 = tmp_path / "hpke.pub"
    keys.save_public_key(x25519, keys.generate_hpke_key().public_key())
    private = tmp_path / "member-signing.key"
    keys.save_private_key(private, keys.generate_signing_key(), purpose="member-signing")

    cases = [
        (["Example Pay", str(public_key_file())], "a member named 'Example Pay' already exists"),
        (["Other Pay", str(key_file)], "this public key already belongs to a member"),
        (["Garbage Pay", str(garbage)], f"{garbage}: not a public key file"),
        (["Hpke Pay", str(x25519)], f"{x25519}: expected an Ed25519 signing key"),
        (["Private Pay", str(private)], f"{private}: not a public key file"),
        (["   ", str(public_key_file())], "a member name must be 1 to 200 characters"),
    ]
    for (name, path), message in cases:
        result = _run(cli_env, "member", "add", name, "--public-key", path)
        assert result.exit_code == 1, (name, result.output)
        assert f"Error: {message}" in result.output, result.output
        assert "Traceback" not in result.output

    missing = _run(cli_env, "member", "add", "Missing Pay", "--public-key",
                   str(tmp_path / "absent.pub"))
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert [m["name"] for m in _members(cli_env)] == ["Example Pay"]


def test_member_add_with_an_hpke_key(cli_env, public_key_file, tmp_path):
    hpke = tmp_path / "member-hpke.pub"
    keys.save_public_key(hpke, keys.generate_hpke_key().public_key())
    signing_as_hpke = public_key_file()

    wrong = _run(cli_env, "member", "add", "Wrong Pay", "--public-key", str(public_key_file()),
                 "--hpke-key", str(signing_as_hpke))
    right = _run(cli_env, "member", "add", "Right Pay", "--public-key", str(public_key_file()),
                 "--hpke-key", str(hpke))

    assert wrong.exit_code == 1
    assert f"Error: {signing_as_hpke}: expected an X25519 (HPKE) key" in wrong.output
    assert right.exit_code == 0 and MEMBER_ID.fullmatch(right.stdout.strip())
    assert right.stderr == ""  # with an HPKE key there is nothing to warn about
    assert [m["name"] for m in _members(cli_env)] == ["Right Pay"]


def test_suspend_resume_and_list(cli_env, public_key_file):
    assert "no members yet" in _run(cli_env, "member", "list").output
    alpha = _run(cli_env, "member", "add", "Alpha Pay", "--public-key",
                 str(public_key_file())).stdout.strip()
    beta = _run(cli_env, "member", "add", "Beta Pay", "--public-key",
                str(public_key_file())).stdout.strip()

    suspended = _run(cli_env, "member", "suspend", alpha)
    assert suspended.exit_code == 0 and suspended.output == f"{alpha} suspended\n"
    assert {m["id"]: m["status"] for m in _members(cli_env)} == {alpha: "suspended",
                                                                 beta: "active"}

    table = _run(cli_env, "member", "list")
    lines = table.output.splitlines()
    assert table.exit_code == 0
    assert lines[0].split() == ["ID", "STATUS", "CREATED", "HPKE", "KEYS", "NAME"]
    assert lines[1].split()[:2] == [alpha, "suspended"] and lines[1].endswith(" Alpha Pay")
    assert lines[2].split()[:2] == [beta, "active"] and lines[2].endswith(" Beta Pay")
    # The key ids `member list --help` promises, without --json.
    for line, member in zip(lines[1:], _members(cli_env), strict=True):
        assert line.split()[3:5] == ["NO", ",".join(member["keys"])]

    again = _run(cli_env, "member", "suspend", "Alpha Pay")  # by name
    assert again.exit_code == 1 and f"member {alpha} is already suspended" in again.output

    resumed = _run(cli_env, "member", "resume", "Alpha Pay")
    assert resumed.exit_code == 0 and resumed.output == f"{alpha} active\n"
    assert {m["status"] for m in _members(cli_env)} == {"active"}

    unknown = _run(cli_env, "member", "suspend", "m_000000000000")
    assert unknown.exit_code == 1
    assert "no member with id or name 'm_000000000000'" in unknown.output


def test_member_changes_are_audited(app, cli_env, public_key_file):
    member_id = _run(cli_env, "member", "add", "Example Pay", "--public-key",
                     str(public_key_file())).stdout.strip()
    _run(cli_env, "member", "suspend", member_id)
    _run(cli_env, "member", "resume", member_id)
    _run(cli_env, "member", "resume", member_id)  # refused: no event

    with db.session_scope(app) as session:
        events = [(e.actor, e.action, e.subject)
                  for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert events == [("council", "member.add", member_id),
                      ("council", "member.suspend", member_id),
                      ("council", "member.resume", member_id)]


def test_a_member_suspended_by_the_cli_gets_403(app, cli_env, make_client, public_key_file):
    key = keys.generate_signing_key()
    member_id = _run(cli_env, "member", "add", "Example Pay", "--public-key",
                     str(public_key_file(key))).stdout.strip()
    client, _ = make_client(Creds(member_id, key))
    assert client.ping()["member_id"] == member_id

    _run(cli_env, "member", "suspend", member_id)
    with pytest.raises(ForbiddenError) as caught:
        client.ping()
    assert caught.value.status == 403
    assert caught.value.type == "urn:clue:problem:member-suspended"

    _run(cli_env, "member", "resume", member_id)
    assert client.ping()["member_id"] == member_id


# -- retention ----------------------------------------------------------------------------


def test_purge_expired_prints_a_count(app, cli_env, make_member, make_client):
    client, _ = make_client(make_member())
    doomed = client.register("phone", "090-1234-5678", "card_theft")
    kept = client.register("ip", "8.8.8.8", "other")
    with db.session_scope(app) as session:
        session.execute(update(Report).where(Report.id == doomed.id)
                        .values(expires_at=db.utcnow() - dt.timedelta(minutes=1)))

    first = _run(cli_env, "purge-expired")
    second = _run(cli_env, "purge-expired")

    assert first.exit_code == 0 and first.output.startswith("purged 1 expired report(s)")
    assert second.exit_code == 0 and second.output.startswith("purged 0 expired report(s)")
    engine = app.extensions["clue_engine"]
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(text("SELECT id FROM reports"))] == [kept.id]
        actions = [r[0] for r in conn.execute(text(
            "SELECT action FROM audit_events WHERE action = 'report.purge_expired'"))]
    assert len(actions) == 2


def test_purge_expired_drops_past_days_quota_counters_and_keeps_yesterday(app, cli_env,
                                                                          make_member):
    from clue_server.quotas.models import QuotaUsage

    member = make_member()
    today = db.utcnow().date()
    with db.session_scope(app) as session:
        for age in (0, 1, 2, 30):
            session.add(QuotaUsage(day=today - dt.timedelta(days=age),
                                   member_id=member.member_id, quota="lookups", used=age + 1))
    assert _run(cli_env, "purge-expired").exit_code == 0
    with db.session_scope(app) as session:
        left = sorted((today - row.day).days for row in session.query(QuotaUsage))
    assert left == [0, 1]  # today's counts the quota; a request at midnight adds to yesterday


def test_member_add_without_an_hpke_key_says_what_follows(cli_env, public_key_file):
    result = _run(cli_env, "member", "add", "Keyless Pay", "--public-key",
                  str(public_key_file()))
    assert result.exit_code == 0
    member_id = result.stdout.strip()
    assert MEMBER_ID.fullmatch(member_id)
    warning = result.stderr
    assert f"Keyless Pay ({member_id}) has no HPKE key" in warning
    assert "no member can send it the network key" in warning
    for step in ("clue keys publish", "--hpke-key member-hpke.pub", "clue keys network share",
                 "clue keys network fetch"):
        assert step in warning, step


def test_quota_show_names_members_and_takes_a_name(cli_env, public_key_file):
    member_id = _run(cli_env, "member", "add", "Named Pay", "--public-key",
                     str(public_key_file())).stdout.strip()
    shown = _run(cli_env, "quota", "show")
    assert shown.exit_code == 0
    assert f"Named Pay ({member_id}): today lookups 0/200000" in shown.output
    assert _run(cli_env, "quota", "show", "Named Pay").output == shown.output
    set_by_name = _run(cli_env, "quota", "set", "Named Pay", "--lookups", "10")
    assert set_by_name.exit_code == 0 and "lookups 0/10 (override)" in set_by_name.output
    assert _run(cli_env, "quota", "show", "Nobody Pay").exit_code == 1


def test_quota_set_below_todays_use_warns(cli_env, public_key_file):
    from clue_server import create_app
    from clue_server.quotas.models import QuotaUsage
    from clue_server.stats.models import DailyUsage

    member_id = _run(cli_env, "member", "add", "Busy Pay", "--public-key",
                     str(public_key_file())).stdout.strip()
    app = create_app({"database_url": cli_env["CLUE_DATABASE_URL"]}, load_keys=False)
    with db.session_scope(app) as session:
        session.add(DailyUsage(day=db.utcnow().date(), member_id=member_id, id_type="phone",
                               lookups=50, hits=0, registrations=0, quota_rejections=0))
        session.add(QuotaUsage(day=db.utcnow().date(), member_id=member_id, quota="lookups",
                               used=50))
    db.dispose(app)
    result = _run(cli_env, "quota", "set", member_id, "--lookups", "20")
    assert result.exit_code == 0
    assert "warning: 50 lookups were already made today, more than the new limit of 20" \
        in result.stderr


def test_dispute_deadline_shows_and_sets_the_council_setting(cli_env):
    assert "14 day(s)" in _run(cli_env, "dispute", "deadline").output
    changed = _run(cli_env, "dispute", "deadline", "30")
    assert changed.exit_code == 0 and "now have 30 day(s)" in changed.output
    assert "(was 14)" in changed.output
    assert "30 day(s)" in _run(cli_env, "dispute", "deadline").output
    for bad in ("0", "366", "abc"):
        assert _run(cli_env, "dispute", "deadline", bad).exit_code == 2
    engine = create_engine(cli_env["CLUE_DATABASE_URL"])
    with engine.connect() as conn:
        rows = conn.execute(select(AuditEvent.actor, AuditEvent.details)
                            .where(AuditEvent.action == "dispute.deadline_set")).all()
    engine.dispose()
    assert [(actor, details["days"], details["previous"]) for actor, details in rows] == [
        ("council", 30, 14)]


def test_a_member_whose_key_was_stolen_is_reset_by_the_council(app, http, cli_env,
                                                               public_key_file, make_member):
    """The credential reset (BCM review G-8): the council adds a new key to the member,
    then revokes the stolen one; requests under the old key are refused from then on."""
    from tests.helpers import Creds, signed

    member = make_member("Reset Pay")
    new_key = keys.generate_signing_key()
    added = _run(cli_env, "member", "add-key", member.member_id, "--public-key",
                 str(public_key_file(new_key)))
    assert added.exit_code == 0, added.output
    assert keys.key_id(new_key.public_key()) in added.output
    revoked = _run(cli_env, "member", "revoke-key", member.member_id, member.key_id)
    assert revoked.exit_code == 0, revoked.output
    assert signed(http, member, "GET", "/v1/ping").status_code == 401
    assert signed(http, Creds(member.member_id, new_key), "GET", "/v1/ping").status_code == 200
    with db.session_scope(app) as session:
        added_event = session.execute(text(
            "SELECT actor, subject FROM audit_events WHERE action = 'member.key_add'")).one()
    assert tuple(added_event) == ("council", keys.key_id(new_key.public_key()))
