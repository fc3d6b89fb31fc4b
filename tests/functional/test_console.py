"""The council web console (/console), in-process with Flask's test client, on both backends."""

from __future__ import annotations

import datetime as dt
import io
import re
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from sqlalchemy import select

import keys
from clue_server import db
from clue_server.audit.models import AuditEvent
from clue_server.cli import main as server_cli
from clue_server.console import auth
from clue_server.console.models import StaffUser
from clue_server.console.views import LOGIN_FAILED
from clue_server.disputes import services as disputes
from clue_server.disputes.models import Dispute
from clue_server.keystore import load_server_keys
from clue_server.members.models import Member
from clue_server.quotas.models import MemberQuota
from clue_server.reports.models import Report
from clue_server.stats.models import DailyUsage

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# -- helpers ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id still, but with test-sized costs (the defaults take ~1 s per hash here)."""
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(auth, "_hasher", lambda: hasher)
    monkeypatch.setattr(auth, "_dummy_hash", lambda: hasher.hash("dummy"))


def add_staff(app: Any, username: str, role: str = "admin") -> None:
    with db.session_scope(app) as session:
        auth.add_staff(session, username, PASSWORD, role)


def csrf_token(client: Any, path: str = "/console/login") -> str:
    page = client.get(path)
    match = CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client: Any, username: str, password: str = PASSWORD) -> Any:
    token = csrf_token(client)
    return client.post("/console/login", data={"username": username, "password": password,
                                               "csrf_token": token})


@pytest.fixture
def admin(app: Any) -> Any:
    add_staff(app, "alice", "admin")
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    return client


@pytest.fixture
def auditor(app: Any) -> Any:
    add_staff(app, "otto", "auditor")
    client = app.test_client()
    assert login(client, "otto").status_code == 302
    return client


def post(client: Any, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """A form POST with the page's CSRF token, as a browser would send it."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client, "/console/")},
                       **kwargs)


def audit_events(app: Any, action: str) -> list[AuditEvent]:
    with db.session_scope(app) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                    .order_by(AuditEvent.id)))


def pem(public_key: Any) -> bytes:
    return keys.public_key_pem(public_key).encode()


def seed(app: Any, make_member: Any, server_keys_dir: Path) -> dict[str, Any]:
    """Members, 90 days of usage, reports, and an overdue dispute on one of them."""
    reporter = make_member("Reporter Pay")
    filer = make_member("Filer Bank")
    server_keys = load_server_keys(server_keys_dir)
    today = dt.datetime.now(dt.UTC).date()
    now = db.utcnow()
    token = secrets.token_bytes(32)
    with db.session_scope(app) as session:
        for offset in range(90):
            session.add(DailyUsage(day=today - dt.timedelta(days=offset),
                                   member_id=reporter.member_id, id_type="phone",
                                   lookups=100 + offset, hits=10, registrations=offset % 7,
                                   quota_rejections=0))
        for index, (id_type, category) in enumerate([("phone", "phishing"),
                                                     ("phone", "phishing"),
                                                     ("email", "account_takeover")]):
            session.add(Report(
                id=f"r_seed{index}", member_id=reporter.member_id, id_type=id_type,
                category=category, key_version=1,
                pepper_version=server_keys.peppers.current.version,
                token_hash=server_keys.token_hash(token if index == 0
                                                  else secrets.token_bytes(32)),
                created_at=now - dt.timedelta(days=30),
                expires_at=now + dt.timedelta(days=3 + index)))
        session.flush()
        opened, _ = disputes.open_dispute(
            session, filer.member_id,
            disputes.NewDispute("phone", 1, token, None, "my customer was never a fraudster"),
            server_keys, now=now - dt.timedelta(days=20))
    return {"reporter": reporter, "filer": filer, "dispute_id": opened["id"]}


# -- sign-in ------------------------------------------------------------------------------


def test_login_sets_a_strict_session_cookie(app: Any) -> None:
    add_staff(app, "alice")
    client = app.test_client()
    answer = login(client, "alice")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/console/")
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("clue_console=")
    for flag in ("Secure", "HttpOnly", "SameSite=Strict"):
        assert flag in cookie
    with client.session_transaction() as session:
        assert session["staff_user"] == "alice"  # what /metrics checks
    page = client.get("/console/")
    assert page.status_code == 200 and "alice (admin)" in page.get_data(as_text=True)
    [event] = audit_events(app, "console.login")
    assert event.actor == "staff:alice"


def test_login_failure_is_generic(app: Any) -> None:
    add_staff(app, "alice")
    wrong = login(app.test_client(), "alice", "not the password at all")
    unknown = login(app.test_client(), "mallory", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    for answer in (wrong, unknown):
        text = answer.get_data(as_text=True)
        assert LOGIN_FAILED in text
        assert "locked" in text  # the same sentence whatever happened
    with db.session_scope(app) as session:
        assert session.scalar(select(StaffUser.failed_logins)) == 1


def test_five_failures_lock_the_account_for_15_minutes(app: Any) -> None:
    add_staff(app, "alice")
    client = app.test_client()
    for _ in range(5):
        assert login(client, "alice", "wrong password, again").status_code == 401
    locked = login(client, "alice")  # the right password, while locked
    assert locked.status_code == 401
    assert LOGIN_FAILED in locked.get_data(as_text=True)
    with db.session_scope(app) as session:
        user = session.scalar(select(StaffUser))
        assert user is not None and user.locked_until is not None
        left = user.locked_until - db.utcnow()
        assert dt.timedelta(minutes=14) < left <= dt.timedelta(minutes=15)
        user.locked_until = db.utcnow() - dt.timedelta(seconds=1)  # the 15 minutes pass
    [event] = audit_events(app, "console.lockout")
    assert event.actor == "staff:alice"
    assert audit_events(app, "console.login_refused")
    assert login(client, "alice").status_code == 302


def test_pages_need_a_session(app: Any) -> None:
    client = app.test_client()
    for path in ("/console/", "/console/members", "/console/disputes", "/console/audit",
                 "/console/retention"):
        answer = client.get(path)
        assert answer.status_code == 302 and answer.headers["Location"].endswith("/console/login")


def test_idle_session_expires(app: Any, admin: Any) -> None:
    with admin.session_transaction() as session:
        session["seen"] = int(time.time()) - 31 * 60
    answer = admin.get("/console/members")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/console/login")
    assert "expired" in admin.get("/console/login").get_data(as_text=True)


def test_a_removed_staff_user_is_signed_out(app: Any, admin: Any) -> None:
    with db.session_scope(app) as session:
        auth.remove_staff(session, "alice")
    assert admin.get("/console/").status_code == 302


def test_logout(admin: Any) -> None:
    assert post(admin, "/console/logout").status_code == 302
    with admin.session_transaction() as session:
        assert "staff_user" not in session
    assert admin.get("/console/").status_code == 302


# -- CSRF, roles, headers -----------------------------------------------------------------


def test_post_without_csrf_token_is_400(app: Any, admin: Any, make_member: Any) -> None:
    member = make_member("Example Pay")
    for data in ({"action": "suspend"}, {"action": "suspend", "csrf_token": "forged"}):
        answer = admin.post(f"/console/members/{member.member_id}/status", data=data)
        assert answer.status_code == 400
        assert "CSRF" in answer.get_data(as_text=True)
    fresh = app.test_client()
    csrf_token(fresh)  # the login form's token is in the session, but not sent
    answer = fresh.post("/console/login", data={"username": "alice", "password": PASSWORD})
    assert answer.status_code == 400
    with db.session_scope(app) as session:
        assert session.get(Member, member.member_id).status == "active"


def test_auditor_reads_but_every_post_is_403(app: Any, auditor: Any, make_member: Any,
                                              server_keys_dir: Path) -> None:
    data = seed(app, make_member, server_keys_dir)
    member_id = data["reporter"].member_id
    for path in ("/console/", "/console/members", "/console/disputes", "/console/audit",
                 "/console/retention"):
        page = auditor.get(path)
        assert page.status_code == 200
        assert "<button" not in page.get_data(as_text=True).split("Sign out")[1]
    new_key = pem(keys.generate_signing_key().public_key()).decode()
    for path, form in [
        (f"/console/members/{member_id}/status", {"action": "suspend"}),
        (f"/console/members/{member_id}/quota", {"daily_lookups": "5"}),
        ("/console/members", {"name": "Sneaky", "public_key": new_key}),
        ("/console/disputes/suspend-overdue", {}),
        ("/console/retention", {"id_type": "ip", "days": "7"}),
    ]:
        assert post(auditor, path, form).status_code == 403, path
    with db.session_scope(app) as session:
        assert session.get(Member, member_id).status == "active"
        assert session.get(MemberQuota, member_id) is None
        assert session.scalar(select(Member).where(Member.name == "Sneaky")) is None
        assert session.get(Dispute, data["dispute_id"]).status == "open"
    assert post(auditor, "/console/logout").status_code == 302  # signing out is allowed


@pytest.mark.parametrize("path", ["/console/login", "/console/", "/console/members",
                                  "/console/static/console.css", "/console/no-such-page"])
def test_every_console_response_carries_the_security_headers(admin: Any, path: str) -> None:
    answer = admin.get(path)
    csp = answer.headers["Content-Security-Policy"]
    for directive in ("default-src 'none'", "style-src 'self'", "img-src 'self' data:",
                      "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"):
        assert directive in csp
    assert "script-src" not in csp and "unsafe-inline" not in csp
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_api_responses_do_not_get_console_headers(app: Any) -> None:
    answer = app.test_client().get("/v1/server-key")
    assert "Content-Security-Policy" not in answer.headers
    assert "Set-Cookie" not in answer.headers


def test_pages_have_no_inline_scripts_or_styles(admin: Any, app: Any, make_member: Any,
                                                server_keys_dir: Path) -> None:
    seed(app, make_member, server_keys_dir)
    for path in ("/console/", "/console/members", "/console/disputes", "/console/audit",
                 "/console/retention"):
        text = admin.get(path).get_data(as_text=True)
        assert "<script" not in text and "style=" not in text and "<style" not in text
        assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")


# -- pages --------------------------------------------------------------------------------


def test_overview_shows_charts_reports_and_members(app: Any, admin: Any, make_member: Any,
                                                   server_keys_dir: Path) -> None:
    seed(app, make_member, server_keys_dir)
    with db.session_scope(app) as session:
        session.get(Member, make_member("Paused Pay").member_id).status = "suspended"
    text = admin.get("/console/").get_data(as_text=True)
    assert text.count('<svg class="chart"') == 3
    assert text.count('<rect class="bar"') == 180  # registrations and lookups, 90 days each
    assert '<polyline class="line"' in text
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert f"{today}: 100</title>" in text  # today's lookups
    # (The seeded dispute is filed through the service, without the view's look-up count.)
    lookups = sum(100 + offset for offset in range(90))
    assert f"{lookups} lookups" in text
    reports = text.split("Active reports by type and category")[1]
    phone_row = re.search(r"<th scope=\"row\">phone</th>(.*?)</tr>", reports, re.S)
    assert phone_row and '<td class="num total">2</td>' in phone_row.group(1)
    status = text.split("Members by status")[1]
    assert re.search(r"<td>active</td><td class=\"num\">2</td>", status)
    assert re.search(r"<td>suspended</td><td class=\"num\">1</td>", status)


def test_overview_flags_a_volume_anomaly(app: Any, admin: Any, make_member: Any) -> None:
    member = make_member("Jumpy Pay")
    today = dt.datetime.now(dt.UTC).date()
    with db.session_scope(app) as session:
        for offset in range(2, 16):
            session.add(DailyUsage(day=today - dt.timedelta(days=offset),
                                   member_id=member.member_id, id_type="phone", lookups=200,
                                   hits=0, registrations=0, quota_rejections=0))
        session.add(DailyUsage(day=today, member_id=member.member_id, id_type="phone",
                               lookups=50_000, hits=0, registrations=0, quota_rejections=0))
    anomalies = admin.get("/console/").get_data(as_text=True).split("Volume anomalies")[1]
    assert 'class="flagged"' in anomalies and "Jumpy Pay" in anomalies and "50000" in anomalies


def test_members_page_lists_activity_and_quota(app: Any, admin: Any, make_member: Any,
                                               server_keys_dir: Path) -> None:
    data = seed(app, make_member, server_keys_dir)
    text = admin.get("/console/members").get_data(as_text=True)
    row = re.search(rf'<tr id="member-{data["reporter"].member_id}".*?</tr>', text, re.S)
    assert row
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert today in row.group(0)
    lookups_30d = sum(100 + offset for offset in range(30))
    assert f'<td class="num">{lookups_30d}</td>' in row.group(0)
    assert "200000* / 50000*" in row.group(0)  # council defaults


def test_disputes_page_and_suspending_overdue_reports(app: Any, admin: Any, make_member: Any,
                                                      server_keys_dir: Path) -> None:
    data = seed(app, make_member, server_keys_dir)
    text = admin.get("/console/disputes").get_data(as_text=True)
    row = re.search(rf'<tr id="dispute-{data["dispute_id"]}" class="overdue">.*?</tr>', text,
                    re.S)
    assert row, text
    assert "overdue" in row.group(0) and "Filer Bank" in row.group(0)
    assert '<td class="num">20</td>' in row.group(0)  # age in days
    assert "Reporter Pay: 1 report(s)" in row.group(0) and "no answer" in row.group(0)
    answer = post(admin, "/console/disputes/suspend-overdue",
                  {"dispute_id": data["dispute_id"]})
    assert answer.status_code == 302
    with db.session_scope(app) as session:
        assert session.get(Report, "r_seed0").suspended_at is not None
        assert session.get(Dispute, data["dispute_id"]).status == "expired"
    [event] = audit_events(app, "dispute.suspend_overdue")
    assert event.actor == "staff:alice" and event.details["count"] == 1
    after = admin.get("/console/disputes").get_data(as_text=True)
    assert "Suspended 1 report(s)" in after and "1 suspended" in after


def test_audit_page_shows_entries_and_chain_status(app: Any, admin: Any,
                                                   make_member: Any) -> None:
    make_member("Example Pay")
    text = admin.get("/console/audit").get_data(as_text=True)
    assert "member.add" in text and "staff:alice" in text and "console.login" in text
    assert 'class="ok chain-status"' in text and "Intact" in text
    with db.session_scope(app) as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "member.add"))
        event.subject = "m_rewritten"  # someone edits history in the database
    text = admin.get("/console/audit").get_data(as_text=True)
    assert 'class="error chain-status"' in text and "Broken at entry" in text


def test_retention_page_shows_limits_and_what_expires(app: Any, admin: Any, make_member: Any,
                                                      server_keys_dir: Path) -> None:
    seed(app, make_member, server_keys_dir)
    text = admin.get("/console/retention").get_data(as_text=True)
    phone = re.search(r'<tr id="retention-phone">.*?</tr>', text, re.S)
    assert phone and '<td class="num days">365</td>' in phone.group(0)
    assert '<td class="num">2</td>' in phone.group(0)  # two phone reports expire soon
    expiring = text.split("What expires in the next 30 days")[1]
    in_three = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).date().isoformat()
    assert in_three in expiring
    assert post(admin, "/console/retention", {"id_type": "ip", "days": "7"}).status_code == 302
    text = admin.get("/console/retention").get_data(as_text=True)
    ip = re.search(r'<tr id="retention-ip">.*?</tr>', text, re.S)
    assert ip and '<td class="num days">7</td>' in ip.group(0)
    [event] = audit_events(app, "retention.set")
    assert event.actor == "staff:alice" and event.subject == "ip"
    assert event.details == {"days": 7, "previous": 30}
    for bad in ("0", "-1", "abc", "99999", "１２"):
        answer = post(admin, "/console/retention", {"id_type": "ip", "days": bad})
        assert answer.status_code == 400, bad


# -- member management ------------------------------------------------------------------


def test_admit_suspend_resume_and_quota_are_audited_with_the_staff_user(
        app: Any, admin: Any) -> None:
    signing = keys.generate_signing_key().public_key()
    hpke = keys.generate_hpke_key().public_key()
    answer = post(admin, "/console/members", {
        "name": "New Pay",
        "public_key_file": (io.BytesIO(pem(signing)), "member-signing.pub"),
        "hpke_key": pem(hpke).decode()}, content_type="multipart/form-data")
    assert answer.status_code == 302
    with db.session_scope(app) as session:
        member = session.scalar(select(Member).where(Member.name == "New Pay"))
        assert member is not None and member.hpke_public_key is not None
        member_id = member.id
        assert member.keys[0].id == keys.key_id(signing)
    assert "Admitted New Pay" in admin.get("/console/members").get_data(as_text=True)

    assert post(admin, f"/console/members/{member_id}/status",
                {"action": "suspend"}).status_code == 302
    with db.session_scope(app) as session:
        assert session.get(Member, member_id).status == "suspended"
    assert post(admin, f"/console/members/{member_id}/status",
                {"action": "resume"}).status_code == 302
    assert post(admin, f"/console/members/{member_id}/quota",
                {"daily_lookups": "1234", "daily_registrations": ""}).status_code == 302
    with db.session_scope(app) as session:
        assert session.get(Member, member_id).status == "active"
        quota = session.get(MemberQuota, member_id)
        assert quota is not None and quota.daily_lookups == 1234
        assert quota.daily_registrations is None
    row = re.search(rf'<tr id="member-{member_id}".*?</tr>',
                    admin.get("/console/members").get_data(as_text=True), re.S)
    assert row and "1234 / 50000*" in row.group(0)
    for action in ("member.add", "member.suspend", "member.resume", "quota.set"):
        [event] = audit_events(app, action)
        assert event.actor == "staff:alice" and event.subject == member_id, action


def test_bad_member_forms_are_refused_and_store_nothing(app: Any, admin: Any) -> None:
    signing = pem(keys.generate_signing_key().public_key()).decode()
    hpke = pem(keys.generate_hpke_key().public_key()).decode()
    cases = [
        ({"name": "A", "public_key": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"},
         "not a PEM public key"),
        ({"name": "A", "public_key": hpke}, "another kind of key"),
        ({"name": "A", "public_key": signing, "hpke_key": signing}, "another kind of key"),
        ({"name": "A"}, "is required"),
        ({"name": "", "public_key": signing}, "1 to 200 characters"),
        ({"name": "A", "public_key_file": (io.BytesIO(b"-" * 9000), "big.pub")},
         "larger than 8192 bytes"),
        ({"name": "A", "public_key": "\x00\xff" * 100}, "not a PEM public key"),
    ]
    for form, message in cases:
        answer = post(admin, "/console/members", form, content_type="multipart/form-data")
        assert answer.status_code == 400, form
        assert message in answer.get_data(as_text=True), form
    huge = post(admin, "/console/members",
                {"name": "A", "public_key_file": (io.BytesIO(b"A" * 300_000), "huge.pub")},
                content_type="multipart/form-data")
    assert huge.status_code == 413
    assert "Content-Security-Policy" in huge.headers
    assert post(admin, "/console/members/m_nope/status", {"action": "suspend"}).status_code == 404
    with db.session_scope(app) as session:
        assert session.scalars(select(Member)).all() == []


def test_html_in_a_member_name_is_escaped(app: Any, admin: Any) -> None:
    name = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    answer = post(admin, "/console/members",
                  {"name": name, "public_key": pem(keys.generate_signing_key().public_key())
                   .decode()}, content_type="multipart/form-data")
    assert answer.status_code == 302
    for path in ("/console/members", "/console/audit"):
        text = admin.get(path).get_data(as_text=True)
        assert "&lt;script&gt;alert(" in text
        assert "<script>" not in text and "<img src=x" not in text


# -- the staff CLI ------------------------------------------------------------------------


def test_staff_cli_add_list_remove(app: Any, database_url: str, server_keys_dir: Path) -> None:
    runner = CliRunner()
    env = {"CLUE_DATABASE_URL": database_url, "CLUE_SERVER_KEYS_DIR": str(server_keys_dir)}
    short = runner.invoke(server_cli, ["staff", "add", "bob", "--role", "admin"],
                          env={**env, "CLUE_STAFF_PASSWORD": "too short"})
    assert short.exit_code != 0 and "at least 12" in short.output
    added = runner.invoke(server_cli, ["staff", "add", "bob", "--role", "auditor"],
                          input=f"{PASSWORD}\n{PASSWORD}\n", env=env)
    assert added.exit_code == 0, added.output
    assert PASSWORD not in added.output
    scripted = runner.invoke(server_cli, ["staff", "add", "carol", "--role", "admin"],
                             env={**env, "CLUE_STAFF_PASSWORD": PASSWORD})
    assert scripted.exit_code == 0, scripted.output
    again = runner.invoke(server_cli, ["staff", "add", "carol", "--role", "admin"],
                          env={**env, "CLUE_STAFF_PASSWORD": PASSWORD})
    assert again.exit_code != 0 and "already exists" in again.output
    bad_name = runner.invoke(server_cli, ["staff", "add", "<b>", "--role", "admin"],
                             env={**env, "CLUE_STAFF_PASSWORD": PASSWORD})
    assert bad_name.exit_code != 0
    listed = runner.invoke(server_cli, ["staff", "list"], env=env)
    assert "bob" in listed.output and "auditor" in listed.output and "carol" in listed.output
    with db.session_scope(app) as session:
        user = auth.find_staff(session, "bob")
        assert user is not None and user.password_hash.startswith("$argon2id$")
    client = app.test_client()
    assert login(client, "bob").status_code == 302
    with db.session_scope(app) as session:
        auth.find_staff(session, "carol").locked_until = db.utcnow() + dt.timedelta(minutes=9)
    assert login(app.test_client(), "carol").status_code == 401
    unlocked = runner.invoke(server_cli, ["staff", "unlock", "carol"], env=env)
    assert unlocked.exit_code == 0, unlocked.output
    assert login(app.test_client(), "carol").status_code == 302
    removed = runner.invoke(server_cli, ["staff", "remove", "bob"], env=env)
    assert removed.exit_code == 0
    assert client.get("/console/").status_code == 302
    assert [e.subject for e in audit_events(app, "staff.remove")] == ["bob"]
