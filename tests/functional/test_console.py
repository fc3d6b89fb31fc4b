"""The council web console (/console), in-process with Flask's test client, on both backends."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

import keys
from clue_server import db
from clue_server.audit.models import AuditEvent, AuditVerification
from clue_server.cli import main as server_cli
from clue_server.console import auth
from clue_server.console.models import ConsoleSession, LoginFailure
from clue_server.disputes.models import Dispute
from clue_server.members.models import Member
from clue_server.quotas.models import MemberQuota
from clue_server.reports.models import Report
from clue_server.stats.models import DailyUsage
from tests.functional.console_helpers import (
    PASSWORD,
    add_staff,
    audit_events,
    csrf_token,
    login,
    pem,
    post,
    seed,
)

LOGIN_FAILED = "Sign-in failed. Check the username and password."

# -- sign-in ------------------------------------------------------------------------------


def test_login_sets_a_strict_session_cookie_and_a_server_side_session(app: Any) -> None:
    add_staff(app, "alice")
    client = app.test_client()
    answer = login(client, "alice")
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("clue_console=")
    for flag in ("Secure", "HttpOnly", "SameSite=Strict"):
        assert flag in cookie
    with client.session_transaction() as session:
        token = session["sid"]
        assert "staff_user" not in session  # the cookie names no one; the server decides
    with db.session_scope(app) as dbs:
        [row] = dbs.scalars(select(ConsoleSession)).all()
        assert row.id != token and len(row.id) == 64  # only the token's hash is stored
        assert row.address == "192.0.2.10"
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
        assert LOGIN_FAILED in answer.get_data(as_text=True)
    with db.session_scope(app) as session:
        assert session.scalar(select(func.count()).select_from(LoginFailure)) == 2


def test_pages_need_a_session(app: Any) -> None:
    client = app.test_client()
    for path in ("/console/", "/console/members", "/console/disputes", "/console/audit",
                 "/console/settings", "/console/audit/1"):
        answer = client.get(path)
        assert answer.status_code == 302 and answer.headers["Location"] == "/console/login"


def test_idle_session_expires(app: Any, admin: Any) -> None:
    with db.session_scope(app) as session:
        row = session.scalars(select(ConsoleSession)).one()
        row.seen_at = db.utcnow() - dt.timedelta(minutes=31)
    answer = admin.get("/console/members")
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/login"
    assert "expired" in admin.get("/console/login").get_data(as_text=True)
    with db.session_scope(app) as session:
        assert session.scalars(select(ConsoleSession)).all() == []


def test_a_session_ends_after_12_hours_however_busy(app: Any, admin: Any) -> None:
    with db.session_scope(app) as session:
        row = session.scalars(select(ConsoleSession)).one()
        row.created_at = db.utcnow() - dt.timedelta(hours=12, minutes=1)
    assert admin.get("/console/").status_code == 302


def test_a_removed_staff_user_is_signed_out(app: Any, admin: Any) -> None:
    with db.session_scope(app) as session:
        assert auth.remove_staff(session, "alice") == 1
        assert session.scalars(select(ConsoleSession)).all() == []
    assert admin.get("/console/").status_code == 302


def test_logout(admin: Any) -> None:
    assert post(admin, "/console/logout").status_code == 302
    with admin.session_transaction() as session:
        assert "sid" not in session
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
                 "/console/settings"):
        page = auditor.get(path)
        assert page.status_code == 200
        # No form that changes anything (the audit filter is a GET form).
        assert 'method="post"' not in page.get_data(as_text=True).split("Sign out")[1], path
    new_key = pem(keys.generate_signing_key().public_key()).decode()
    for path, form in [
        (f"/console/members/{member_id}/status", {"action": "suspend"}),
        (f"/console/members/{member_id}/quota", {"daily_lookups": "5"}),
        ("/console/members", {"name": "Sneaky", "public_key": new_key}),
        ("/console/disputes/suspend-overdue", {"confirm": "yes"}),
        ("/console/settings/retention", {"id_type": "ip", "days": "7"}),
        ("/console/settings/dispute-deadline", {"days": "3"}),
        ("/console/settings/quota-defaults", {"daily_lookups": "3"}),
        ("/console/audit/verify", {}),
    ]:
        assert post(auditor, path, form).status_code == 403, path
    with db.session_scope(app) as session:
        assert session.get(Member, member_id).status == "active"
        assert session.get(MemberQuota, member_id) is None
        assert session.scalar(select(Member).where(Member.name == "Sneaky")) is None
        assert session.get(Dispute, data["dispute_id"]).status == "open"
        assert session.scalars(select(AuditVerification)).all() == []
    assert post(auditor, "/console/logout").status_code == 302  # signing out is allowed


@pytest.mark.parametrize("path", ["/console/login", "/console/", "/console/members",
                                  "/console/static/console.css", "/console/no-such-page",
                                  "/", "/console/static/nothing.css"])
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
                 "/console/settings", "/console/audit/1", "/", "/console/nowhere",
                 "/console/?lang=ja"):
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
    assert f"{lookups:,} lookups" in text  # thousands separators
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
    assert 'class="flagged"' in anomalies and "Jumpy Pay" in anomalies and "50,000" in anomalies


def test_members_page_lists_activity_and_quota(app: Any, admin: Any, make_member: Any,
                                               server_keys_dir: Path) -> None:
    data = seed(app, make_member, server_keys_dir)
    text = admin.get("/console/members").get_data(as_text=True)
    row = re.search(rf'<tr id="member-{data["reporter"].member_id}".*?</tr>', text, re.S)
    assert row
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert today in row.group(0)
    lookups_30d = sum(100 + offset for offset in range(30))
    assert f'<td class="num">{lookups_30d:,}</td>' in row.group(0)
    # Today's use against the council defaults (*).
    assert "lookups 100 / 200,000*" in row.group(0)
    assert f"registrations {0} / 50,000*" in row.group(0)


def test_disputes_page_and_suspending_overdue_reports(app: Any, admin: Any, make_member: Any,
                                                      server_keys_dir: Path) -> None:
    data = seed(app, make_member, server_keys_dir)
    text = admin.get("/console/disputes").get_data(as_text=True)
    row = re.search(rf'<tr id="dispute-{data["dispute_id"]}" class="overdue">.*?</tr>', text,
                    re.S)
    assert row, text
    assert "overdue" in row.group(0) and "Filer Bank" in row.group(0)
    assert '<td class="num">20</td>' in row.group(0)  # age in days
    assert "Reporter Pay: 1 report," in row.group(0) and "no answer" in row.group(0)
    answer = post(admin, "/console/disputes/suspend-overdue",
                  {"dispute_id": data["dispute_id"], "confirm": "yes"})
    assert answer.status_code == 302
    with db.session_scope(app) as session:
        assert session.get(Report, "r_seed0").suspended_at is not None
        assert session.get(Dispute, data["dispute_id"]).status == "expired"
    [event] = audit_events(app, "dispute.suspend_overdue")
    assert event.actor == "staff:alice" and event.details["count"] == 1
    after = admin.get("/console/disputes").get_data(as_text=True)
    assert "Suspended 1 report of reporters" in after and "1 suspended" in after


def test_audit_page_shows_entries_and_the_stored_chain_status(app: Any, admin: Any,
                                                               make_member: Any) -> None:
    make_member("Example Pay")
    text = admin.get("/console/audit").get_data(as_text=True)
    assert "member.add" in text and "staff:alice" in text and "console.login" in text
    assert "Never verified" in text
    assert post(admin, "/console/audit/verify").status_code == 302
    text = admin.get("/console/audit").get_data(as_text=True)
    assert 'class="ok chain-status"' in text and "Intact when verified" in text
    assert "by staff:alice" in text
    with db.session_scope(app) as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "member.add"))
        event.subject = "m_rewritten"  # someone edits history in the database
    assert post(admin, "/console/audit/verify").status_code == 302
    text = admin.get("/console/audit").get_data(as_text=True)
    assert 'class="error chain-status"' in text and "Broken at entry" in text
    assert "hash mismatch" in text
    with db.session_scope(app) as session:
        runs = session.scalars(select(AuditVerification).order_by(AuditVerification.id)).all()
        assert [(r.by, r.ok) for r in runs] == [("staff:alice", True), ("staff:alice", False)]


def test_settings_page_shows_limits_and_what_expires(app: Any, admin: Any, make_member: Any,
                                                     server_keys_dir: Path) -> None:
    seed(app, make_member, server_keys_dir)
    assert admin.get("/console/retention").headers["Location"] == "/console/settings"
    text = admin.get("/console/settings").get_data(as_text=True)
    phone = re.search(r'<tr id="retention-phone">.*?</tr>', text, re.S)
    assert phone and '<td class="num days">365</td>' in phone.group(0)
    assert '<td class="num">2</td>' in phone.group(0)  # two phone reports expire soon
    expiring = text.split("What expires in the next 30 days")[1]
    in_three = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).date().isoformat()
    assert in_three in expiring
    assert post(admin, "/console/settings/retention",
                {"id_type": "ip", "days": "7"}).status_code == 302
    text = admin.get("/console/settings").get_data(as_text=True)
    ip = re.search(r'<tr id="retention-ip">.*?</tr>', text, re.S)
    assert ip and '<td class="num days">7</td>' in ip.group(0)
    [event] = audit_events(app, "retention.set")
    assert event.actor == "staff:alice" and event.subject == "ip"
    assert event.details == {"days": 7, "previous": 30}
    for bad in ("0", "-1", "abc", "99999", "１２", "", "9" * 5000):
        answer = post(admin, "/console/settings/retention", {"id_type": "ip", "days": bad})
        assert answer.status_code == 400, bad
        assert "Maximum days" in answer.get_data(as_text=True)


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
                {"action": "suspend", "confirm": "yes"}).status_code == 302
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
    assert row and "/ 1,234<" in row.group(0) and "/ 50,000*" in row.group(0)
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
         "larger than 8,192 bytes"),
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
    for missing in ("m_nope", "m_%00", "x" * 40):
        answer = post(admin, f"/console/members/{missing}/status", {"action": "suspend"})
        assert answer.status_code == 404, missing
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
    assert "1 session(s)" in runner.invoke(server_cli, ["staff", "list"], env=env).output
    for _ in range(5):  # throttles carol at this address
        assert login(app.test_client(), "carol", "a wrong password!").status_code == 401
    assert login(app.test_client(), "carol").status_code == 429
    unlocked = runner.invoke(server_cli, ["staff", "unlock", "carol"], env=env)
    assert unlocked.exit_code == 0, unlocked.output
    assert "5 failed sign-in(s) forgotten" in unlocked.output
    assert login(app.test_client(), "carol").status_code == 302
    nobody = runner.invoke(server_cli, ["staff", "unlock", "nobody"], env=env)
    assert nobody.exit_code == 1 and "no staff user named 'nobody'" in nobody.output
    removed = runner.invoke(server_cli, ["staff", "remove", "bob"], env=env)
    assert removed.exit_code == 0 and "1 session(s) ended" in removed.output
    assert client.get("/console/").status_code == 302
    assert [e.subject for e in audit_events(app, "staff.remove")] == ["bob"]


def test_staff_add_checks_the_password_before_asking_for_it_again(
        app: Any, database_url: str, server_keys_dir: Path) -> None:
    env = {"CLUE_DATABASE_URL": database_url, "CLUE_SERVER_KEYS_DIR": str(server_keys_dir)}
    result = CliRunner().invoke(server_cli, ["staff", "add", "dora", "--role", "admin"],
                                input=f"too short\n{PASSWORD}\n{PASSWORD}\n", env=env)
    assert result.exit_code == 0, result.output
    first_error = result.output.index("at least 12 characters")
    # The short password was refused at once, before any "Repeat for confirmation".
    assert result.output.index("Repeat for confirmation") > first_error
    assert result.output.count("Repeat for confirmation") == 1
    bad_name = CliRunner().invoke(server_cli, ["staff", "add", "Dora!", "--role", "admin"],
                                  input="x\n", env=env)
    assert bad_name.exit_code == 1 and "Password" not in bad_name.output  # name first


def test_staff_signout_ends_every_session_of_a_user(app: Any, database_url: str,
                                                     server_keys_dir: Path) -> None:
    add_staff(app, "erin")
    browsers = [app.test_client(), app.test_client()]
    for browser in browsers:
        assert login(browser, "erin").status_code == 302
    env = {"CLUE_DATABASE_URL": database_url, "CLUE_SERVER_KEYS_DIR": str(server_keys_dir)}
    result = CliRunner().invoke(server_cli, ["staff", "signout", "erin"], env=env)
    assert result.exit_code == 0 and "2 session(s) of erin ended" in result.output
    for browser in browsers:
        assert browser.get("/console/").status_code == 302
    [event] = audit_events(app, "staff.signout")
    assert event.details == {"sessions_ended": 2}
