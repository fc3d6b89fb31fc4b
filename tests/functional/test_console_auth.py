"""Console sign-in under attack: server-side sessions, throttling, hostile input, Host.

Issue 10 items 7 (console part), 9, 10 and 11; every test here failed before its fix.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from clue_server import db
from clue_server.cli import main as server_cli
from clue_server.console import auth
from clue_server.console.models import LoginFailure
from tests.functional.console_helpers import (
    PASSWORD,
    add_staff,
    audit_events,
    csrf_token,
    login,
    post,
    text,
)

ATTACKER = "203.0.113.66"
ALICE_AT_WORK = "198.51.100.20"


# -- sessions end on the server (item 9) ----------------------------------------------------


def _cookie(client: Any) -> str:
    cookie = client.get_cookie("clue_console")
    assert cookie is not None
    return str(cookie.value)


def test_a_copied_cookie_is_worthless_after_sign_out(app: Any, admin: Any) -> None:
    copied = _cookie(admin)
    thief = app.test_client()
    thief.set_cookie("clue_console", copied)
    assert thief.get("/console/members").status_code == 200  # the copy works while signed in
    assert thief.get("/metrics").status_code == 200
    assert post(admin, "/console/logout").status_code == 302
    thief = app.test_client()
    thief.set_cookie("clue_console", copied)
    answer = thief.get("/console/members")
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/login"
    assert thief.get("/metrics").status_code == 404


def test_metrics_refuse_the_cookie_of_a_removed_staff_user(app: Any, admin: Any) -> None:
    assert admin.get("/metrics").status_code == 200
    with db.session_scope(app) as session:
        auth.remove_staff(session, "alice")
    assert admin.get("/metrics").status_code == 404


def test_metrics_refuse_a_forged_session_naming_a_staff_user(app: Any, admin: Any) -> None:
    # The old cookie named the user ("staff_user"); any signed cookie that does is refused.
    forger = app.test_client()
    with forger.session_transaction() as session:
        session["staff_user"] = "alice"
        session["sid"] = "guessed"
    assert forger.get("/metrics").status_code == 404
    assert forger.get("/console/").status_code == 302


# -- throttling, not lockout (item 10) ------------------------------------------------------


def test_failures_from_one_address_do_not_lock_the_account_elsewhere(
        app: Any, cheap_argon2: Any) -> None:
    add_staff(app, "alice")
    for _ in range(auth.PER_ADDRESS_AND_USER):
        assert login(app.test_client(), "alice", "guess guess guess", address=ATTACKER
                     ).status_code == 401
    hashes = cheap_argon2.verifications
    refused = login(app.test_client(), "alice", address=ATTACKER)  # even the right password
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in text(refused)
    assert 0 < int(refused.headers["Retry-After"]) <= 15 * 60
    assert cheap_argon2.verifications == hashes  # a throttled try costs no Argon2id hash
    # Alice, from her own address, signs in as usual.
    assert login(app.test_client(), "alice", address=ALICE_AT_WORK).status_code == 302
    [event] = audit_events(app, "console.lockout")
    assert event.subject == "alice" and event.details["scope"] == "address+user"
    assert event.details["address"] == ATTACKER


def test_an_address_spraying_usernames_is_throttled_for_every_name(app: Any) -> None:
    add_staff(app, "alice")
    for index in range(auth.PER_ADDRESS):
        login(app.test_client(), f"user{index}", "guess guess guess", address=ATTACKER)
    assert login(app.test_client(), "alice", address=ATTACKER).status_code == 429
    assert login(app.test_client(), "alice", address=ALICE_AT_WORK).status_code == 302
    [event] = audit_events(app, "console.lockout")
    assert event.subject == ATTACKER and event.details["scope"] == "address"


def test_unknown_and_known_names_are_throttled_alike(app: Any) -> None:
    add_staff(app, "alice")
    answers = {}
    for name in ("alice", "mallory"):
        for _ in range(auth.PER_ADDRESS_AND_USER):
            login(app.test_client(), name, "guess guess guess", address=ATTACKER)
        answers[name] = login(app.test_client(), name, "guess guess guess", address=ATTACKER)
    assert answers["alice"].status_code == answers["mallory"].status_code == 429
    messages = {name: re.search(r'<p class="error".*?</p>', text(answer), re.S).group(0)
                for name, answer in answers.items()}
    assert messages["alice"] == messages["mallory"]
    assert answers["alice"].headers["Retry-After"] == answers["mallory"].headers["Retry-After"]


def test_a_distributed_attack_throttles_the_account_until_staff_unlock(
        app: Any, database_url: str, server_keys_dir: Any) -> None:
    add_staff(app, "alice")
    for index in range(auth.PER_USER):
        address = f"203.0.113.{index // auth.PER_ADDRESS_AND_USER}"
        assert login(app.test_client(), "alice", "guess guess guess", address=address
                     ).status_code == 401
    assert login(app.test_client(), "alice", address=ALICE_AT_WORK).status_code == 429
    env = {"CLUE_DATABASE_URL": database_url, "CLUE_SERVER_KEYS_DIR": str(server_keys_dir)}
    listed = CliRunner().invoke(server_cli, ["staff", "list"], env=env)
    assert "THROTTLED" in listed.output
    unlocked = CliRunner().invoke(server_cli, ["staff", "unlock", "alice"], env=env)
    assert unlocked.exit_code == 0, unlocked.output
    assert login(app.test_client(), "alice", address=ALICE_AT_WORK).status_code == 302
    scopes = [e.details["scope"] for e in audit_events(app, "console.lockout")]
    assert scopes.count("user") == 1
    [event] = audit_events(app, "staff.unlock")
    assert event.subject == "alice" and event.details["failures_forgotten"] == auth.PER_USER


def test_staff_unlock_can_clear_an_address(app: Any, database_url: str,
                                           server_keys_dir: Any) -> None:
    add_staff(app, "alice")
    for index in range(auth.PER_ADDRESS):
        login(app.test_client(), f"user{index}", "guess guess guess", address=ATTACKER)
    env = {"CLUE_DATABASE_URL": database_url, "CLUE_SERVER_KEYS_DIR": str(server_keys_dir)}
    result = CliRunner().invoke(server_cli, ["staff", "unlock", "--address", ATTACKER], env=env)
    assert result.exit_code == 0, result.output
    assert login(app.test_client(), "alice", address=ATTACKER).status_code == 302


def test_a_throttle_ends_when_its_failures_leave_the_window(app: Any) -> None:
    add_staff(app, "alice")
    for _ in range(auth.PER_ADDRESS_AND_USER):
        login(app.test_client(), "alice", "guess guess guess", address=ATTACKER)
    assert login(app.test_client(), "alice", address=ATTACKER).status_code == 429
    with db.session_scope(app) as session:
        session.execute(update(LoginFailure).values(
            at=db.utcnow() - auth.WINDOW - dt.timedelta(seconds=1)))
    assert login(app.test_client(), "alice", address=ATTACKER).status_code == 302
    with db.session_scope(app) as session:  # a success forgets that address's failures
        assert session.scalars(select(LoginFailure).where(
            LoginFailure.at > db.utcnow() - auth.WINDOW)).all() == []


def test_ipv6_clients_are_counted_by_their_64(app: Any) -> None:
    add_staff(app, "alice")
    for index in range(auth.PER_ADDRESS_AND_USER):
        login(app.test_client(), "alice", "guess guess guess", address=f"2001:db8:1:2::{index}")
    assert login(app.test_client(), "alice", address="2001:db8:1:2::99").status_code == 429
    assert login(app.test_client(), "alice", address="2001:db8:1:3::1").status_code == 302


def test_behind_a_proxy_the_forwarded_address_counts(app: Any) -> None:
    app.config["CONSOLE_PROXY_HOPS"] = 1
    add_staff(app, "alice")

    def via_proxy(client_address: str, password: str) -> int:
        client = app.test_client()
        token = csrf_token(client)
        return int(client.post("/console/login", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                               headers={"X-Forwarded-For": f"10.9.9.9, {client_address}"},
                               data={"username": "alice", "password": password,
                                     "csrf_token": token}).status_code)

    for _ in range(auth.PER_ADDRESS_AND_USER):
        assert via_proxy(ATTACKER, "guess guess guess") == 401
    assert via_proxy(ATTACKER, PASSWORD) == 429
    assert via_proxy(ALICE_AT_WORK, PASSWORD) == 302  # not everyone behind the proxy


# -- hostile input (item 7, console part) ----------------------------------------------------


@pytest.mark.parametrize("username", ["ali\x00ce", "\x00", "a" * 5000, "ALICE", "<b>"])
def test_odd_usernames_are_a_plain_failed_sign_in(app: Any, username: str) -> None:
    add_staff(app, "alice")
    answer = login(app.test_client(), username)
    assert answer.status_code == 401
    assert "Sign-in failed" in text(answer)


def test_an_oversized_password_is_a_plain_failed_sign_in(app: Any) -> None:
    add_staff(app, "alice")
    assert login(app.test_client(), "alice", PASSWORD + "x" * 2000).status_code == 401


@pytest.mark.parametrize("query", [
    "before=99999999999999999999", "after=99999999999999999999", "before=-1", "before=1e3",
    "actor=%00", "action=a%00b", "actor=" + "x" * 65, "from=2025-13-45", "to=20250101",
    "to=9999-12-31", "from=2025-02-01&to=2025-01-01",
])
def test_hostile_audit_queries_get_a_clear_400(admin: Any, query: str) -> None:
    answer = admin.get(f"/console/audit?{query}")
    assert answer.status_code == 400, query
    assert 'class="error"' in text(answer)
    assert answer.content_type.startswith("text/html")


@pytest.mark.parametrize("path", ["/console/audit/99999999999999999999",
                                  "/console/audit/123456"])
def test_missing_audit_entries_are_404(admin: Any, path: str) -> None:
    assert admin.get(path).status_code == 404


def test_a_5000_digit_quota_is_a_clear_400(app: Any, admin: Any, make_member: Any) -> None:
    member = make_member()
    for field in ("daily_lookups", "daily_registrations"):
        answer = post(admin, f"/console/members/{member.member_id}/quota", {field: "9" * 5000})
        assert answer.status_code == 400
        assert "must be a whole number from 0 to 1,000,000,000" in text(answer)
    answer = post(admin, "/console/settings/quota-defaults", {"daily_lookups": "9" * 5000})
    assert answer.status_code == 400


def test_a_nul_in_a_member_name_is_a_clear_400(app: Any, admin: Any) -> None:
    import keys
    from tests.functional.console_helpers import pem

    answer = post(admin, "/console/members",
                  {"name": "Evil\x00Pay",
                   "public_key": pem(keys.generate_signing_key().public_key()).decode()},
                  content_type="multipart/form-data")
    assert answer.status_code == 400
    assert "must not contain control characters" in text(answer)


# -- redirects never follow the Host header (item 11) --------------------------------------


@pytest.mark.parametrize("path", ["/console", "/console/", "/console//members", "/console/login"])
def test_redirects_do_not_name_the_request_host(app: Any, path: str) -> None:
    answer = app.test_client().get(path, headers={"Host": "evil.example"})
    location = answer.headers.get("Location", "")
    assert "evil.example" not in location
    if answer.status_code in (301, 302, 303, 307, 308):
        assert location.startswith("/") and not location.startswith("//")


def test_sign_in_redirects_are_relative(app: Any) -> None:
    add_staff(app, "alice")
    client = app.test_client()
    evil = "http://evil.example"
    page = client.get("/console/login", base_url=evil)
    match = re.search(r'name="csrf_token" value="([^"]+)"', text(page))
    assert match
    answer = client.post("/console/login", base_url=evil,
                         data={"username": "alice", "password": PASSWORD,
                               "csrf_token": match.group(1)})
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/"
    assert client.get("/console/login", base_url=evil).headers["Location"] == "/console/"


def test_purge_expired_drops_dead_sessions_and_old_failures(app: Any, admin: Any,
                                                            database_url: str,
                                                            server_keys_dir: Any) -> None:
    from clue_server.console.models import ConsoleSession

    login(app.test_client(), "alice", "guess guess guess", address=ATTACKER)
    fresh = app.test_client()
    assert login(fresh, "alice").status_code == 302
    with db.session_scope(app) as session:
        old = session.scalars(select(ConsoleSession)).first()
        assert old is not None
        old.created_at = db.utcnow() - dt.timedelta(hours=13)
        session.execute(update(LoginFailure).values(at=db.utcnow() - dt.timedelta(days=2)))
    env = {"CLUE_DATABASE_URL": database_url, "CLUE_SERVER_KEYS_DIR": str(server_keys_dir)}
    result = CliRunner().invoke(server_cli, ["purge-expired"], env=env)
    assert result.exit_code == 0, result.output
    with db.session_scope(app) as session:
        assert len(session.scalars(select(ConsoleSession)).all()) == 1
        assert session.scalars(select(LoginFailure)).all() == []
