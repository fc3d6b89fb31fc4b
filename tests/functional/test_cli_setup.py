"""Set-up mistakes get messages that say what to do (issue 12).

``clue keys init`` refuses a URL that is not http(s) and a server key that is not the
server's public signing key; a trailing ``/v1`` is dropped; ``clue config`` changes the
settings afterwards; a member the council has not admitted is told what to send; a
public key configured as the signing key is named as such; a mistyped image path for
``check-qr`` is "no such file"; a dispute that got a report suspended stays listed.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

import keys
from clue_client import cli as member_cli
from clue_server import db
from clue_server.disputes import services as disputes
from clue_server.disputes.models import Dispute
from tests.functional.member_cli import (  # noqa: F401 (fixtures)
    Member,
    member_fixture,
    server_get_fixture,
    set_up_member,
)
from tests.helpers import BASE_URL


def clue(*args: str) -> Result:
    return CliRunner().invoke(member_cli.main, list(args), catch_exceptions=False)


def init(tmp_path: Path, server: str, server_key: Path | str) -> Result:
    return clue("--config", str(tmp_path / "clue.json"), "keys", "init", "--server", server,
                "--server-key", str(server_key), "--keys-dir", str(tmp_path / "keys"))


@pytest.mark.parametrize("url", ["htp://clue.test", "clue.test", "http://", "ftp://clue.test",
                                 "http://clue.test?x=1", "http://clue test",
                                 "http://clue.test:port"])
def test_init_refuses_urls_that_are_not_http(tmp_path: Path, server_keys_dir: Path,
                                             server_get: None, url: str) -> None:
    result = init(tmp_path, url, server_keys_dir / "server-signing.pub")
    assert result.exit_code == 2, result.output
    assert "server URL" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "keys").exists() and not (tmp_path / "clue.json").exists()


def test_init_drops_a_trailing_v1(tmp_path: Path, server_keys_dir: Path,
                                  server_get: None) -> None:
    result = init(tmp_path, BASE_URL + "/v1/", server_keys_dir / "server-signing.pub")
    assert result.exit_code == 0, result.output
    assert "the client adds /v1 itself" in result.stderr
    assert json.loads((tmp_path / "clue.json").read_text())["server_url"] == BASE_URL
    assert "clue-server member add" in result.stdout and "--hpke-key" in result.stdout


def _other_member_keys(tmp_path: Path) -> Path:
    other = tmp_path / "other"
    keys.save_private_key(other / "member-signing.key", keys.generate_signing_key(),
                          purpose="member-signing")
    hpke = keys.generate_hpke_key()
    keys.save_public_key(other / "member-hpke.pub", hpke.public_key())
    keys.save_public_key(other / "stranger.pub", keys.generate_signing_key().public_key())
    (other / "garbage.pub").write_text("not a key\n")
    return other


@pytest.mark.parametrize(("name", "message"), [
    ("member-signing.key", "this is a private key"),
    ("member-hpke.pub", "an HPKE (X25519) key, not the server's Ed25519 signing key"),
    ("garbage.pub", "is not a public key file (PEM)"),
    ("stranger.pub", "is not the key the server at http://clue.test signs with"),
])
def test_init_refuses_a_server_key_that_is_not_the_servers(tmp_path: Path, server_get: None,
                                                          name: str, message: str) -> None:
    other = _other_member_keys(tmp_path)
    result = init(tmp_path, BASE_URL, other / name)
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert not (tmp_path / "keys").exists()


def test_init_refuses_the_server_key_of_another_server(tmp_path: Path, server_get: None) -> None:
    # The right file for some server, but the server at this URL signs with another key.
    from clue_server.keystore import ensure_server_keys

    ensure_server_keys(tmp_path / "elsewhere")
    result = init(tmp_path, BASE_URL, tmp_path / "elsewhere" / "server-signing.pub")
    assert result.exit_code == 2 and "not the key the server" in result.output


def test_init_warns_when_the_server_cannot_be_reached_and_refuses_a_non_clue_url(
        tmp_path: Path, server_keys_dir: Path, server_get: None) -> None:
    offline = init(tmp_path / "a", "http://127.0.0.1:9", server_keys_dir / "server-signing.pub")
    assert offline.exit_code == 0, offline.output
    assert "warning: cannot reach http://127.0.0.1:9 to confirm the server key" in offline.stderr
    wrong = init(tmp_path / "b", BASE_URL + "/clue", server_keys_dir / "server-signing.pub")
    assert wrong.exit_code == 2
    assert "does not look like a CLUE server: GET /v1/server-key answered 404" in wrong.output


def test_config_show_and_set(tmp_path: Path, server_keys_dir: Path, server_get: None) -> None:
    assert init(tmp_path, BASE_URL, server_keys_dir / "server-signing.pub").exit_code == 0
    config = ["--config", str(tmp_path / "clue.json")]
    shown = clue(*config, "config", "show")
    assert shown.exit_code == 0 and f"server-url:    {BASE_URL}" in shown.output
    assert "signing key:   k-" in shown.output and "timeout:       5 s" in shown.output

    assert clue(*config, "config", "set", "server-url", "htp://x").exit_code == 2
    moved = clue(*config, "config", "set", "server-url", "https://clue.example/v1")
    assert moved.exit_code == 0 and "the client adds /v1" in moved.stderr
    assert json.loads((tmp_path / "clue.json").read_text())["server_url"] == \
        "https://clue.example"
    assert clue(*config, "config", "set", "timeout", "abc").exit_code == 2
    assert clue(*config, "config", "set", "timeout", "2.5").exit_code == 0
    assert "timeout:       2.5 s" in clue(*config, "config", "show").output

    own = clue(*config, "config", "set", "server-key", str(tmp_path / "keys" /
                                                           "member-signing.pub"))
    assert own.exit_code == 2 and "this member's own public key" in own.output
    # Back to the test server, re-pinning its key (checked against what it publishes).
    assert clue(*config, "config", "set", "server-url", BASE_URL).exit_code == 0
    pinned = clue(*config, "config", "set", "server-key",
                  str(server_keys_dir / "server-signing.pub"))
    assert pinned.exit_code == 0, pinned.output


def test_a_hand_edited_v1_url_is_explained_and_can_be_repaired(tmp_path: Path,
                                                               server_keys_dir: Path,
                                                               server_get: None) -> None:
    assert init(tmp_path, BASE_URL, server_keys_dir / "server-signing.pub").exit_code == 0
    path = tmp_path / "clue.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "server_url": BASE_URL + "/v1"}))
    refused = clue("--config", str(path), "ping")
    assert refused.exit_code == 1
    assert "ends in /v1" in refused.output and "clue config set server-url" in refused.output
    assert clue("--config", str(path), "config", "set", "server-url", BASE_URL).exit_code == 0


def test_a_member_not_yet_admitted_is_told_what_to_send(app: Any, tmp_path: Path,
                                                        server_keys_dir: Path, server_get: None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    waiting = set_up_member(app, tmp_path / "w", server_keys_dir, admit=False)
    monkeypatch.setattr(member_cli, "_client", lambda ctx: waiting.client())
    result = waiting.run("ping")
    assert result.exit_code == 1
    signing = keys.load_public_key(waiting.keys_dir / "member-signing.pub")
    for text in ("does not know this member's signing key", "unknown or revoked key",
                 str(waiting.keys_dir / "member-signing.pub"), keys.fingerprint(signing),
                 str(waiting.keys_dir / "member-hpke.pub"), "clue-server member add",
                 "--hpke-key"):
        assert text in result.output, (text, result.output)


def test_a_public_key_configured_as_the_signing_key_is_named(tmp_path: Path,
                                                             server_keys_dir: Path,
                                                             server_get: None) -> None:
    assert init(tmp_path, BASE_URL, server_keys_dir / "server-signing.pub").exit_code == 0
    path = tmp_path / "clue.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "signing_key": "member-signing.pub"}))
    result = clue("--config", str(path), "ping")
    assert result.exit_code == 1
    assert "this is a public key" in result.output and "chmod" not in result.output


@pytest.mark.parametrize("argument", ["scanned.png", "Scan.JPG", "photos/qr",
                                      "./qr-code.webp"])
def test_check_qr_with_a_missing_image_path_says_no_such_file(member: Member,
                                                              argument: str) -> None:
    for command in ("check-qr", "report-sticker"):
        result = member.run(command, argument)
        assert result.exit_code == 1
        assert f"{argument}: no such file" in result.output, result.output
        assert "invalid_payload" not in result.output
    assert member.adapter.captured == []


def test_check_qr_still_takes_payload_text(member: Member) -> None:
    result = member.run("check-qr", "000201010211not/a/real/payload.png")
    assert "no such file" not in result.output
    assert "BLOCK" in result.output


def test_disputes_lists_the_expired_dispute_that_suspended_a_report(app: Any, member: Member,
                                                                   tmp_path: Path,
                                                                   server_keys_dir: Path
                                                                   ) -> None:
    shared = keys.load_symmetric_key(keys.keyring_path(member.keys_dir, "network", 1))
    filer = set_up_member(app, tmp_path / "filer", server_keys_dir, name="Filer Bank",
                          network_key=shared)
    report = member.client().register("phone", "090-6626-0771", "card_theft")
    filed = filer.client().open_dispute("phone", "090-6626-0771", "Reassigned number.")
    open_now = member.run("disputes")
    assert f"{filed.id}  phone        deadline" in open_now.output
    with db.session_scope(app) as session:
        session.execute(update(Dispute).values(deadline=db.utcnow() - dt.timedelta(days=1)))
    with db.session_scope(app) as session:
        assert disputes.suspend_overdue(session, db.utcnow(), "staff:alice") == 1
    listed = member.run("disputes")
    assert listed.exit_code == 0
    assert f"{filed.id}  phone        EXPIRED" in listed.output
    assert "SUSPENDED by the council" in listed.output
    assert f"clue withdraw {report.id}" in listed.output
    assert "1 dispute(s)" in listed.output
