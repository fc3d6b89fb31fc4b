"""Issue 5 end to end: distribution and rotation of every key through the CLIs and a real
gunicorn (two workers), the way a council and two members would do it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from clue_server.devserver import Gunicorn
from clue_server.keystore import ensure_server_keys
from clue_server.migrate import upgrade

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def run(cwd: Path, env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, env={**os.environ, **env},
                            capture_output=True, text=True, timeout=60, check=False)
    if ok:
        assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
    return result


def _protocol_1(database_url: str) -> None:
    """Network-key rotation as protocol 1 sees it (every version asked, a retired one
    refused): the council's look-up protocol set to 1, as on a database with reports."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE council_settings SET value = '1' "
                          "WHERE key = 'private.lookup_protocol'"))
    engine.dispose()


def test_distribute_and_rotate_every_key(tmp_path):
    # SQLite only: the same server code runs on PostgreSQL in tests/functional; this test
    # is about the CLIs and files, and each sealed-key CLI call costs an Argon2 derivation.
    database_url = f"sqlite:///{tmp_path / 'clue.db'}"
    server_env = {"CLUE_DATABASE_URL": database_url,
                  "CLUE_SERVER_KEYS_DIR": str(tmp_path / "server-keys")}
    ensure_server_keys(tmp_path / "server-keys")
    upgrade(database_url)
    _protocol_1(database_url)
    alpha = {**server_env, "CLUE_CONFIG": "alpha/clue.json"}
    beta = {**server_env, "CLUE_CONFIG": "beta/clue.json"}
    csv_file = tmp_path / "alpha-reports.csv"
    csv_file.write_text("type,value,category\nphone,090-1234-5678,card_theft\n"
                        "email,fraud@example.com,phishing\n")

    with Gunicorn(server_env, workers=2) as server:
        for who, env in (("alpha", alpha), ("beta", beta)):
            _admit(tmp_path, server_env, env, server.url, who)

        run(tmp_path, alpha, "clue", "keys", "network", "new")
        shared = run(tmp_path, alpha, "clue", "keys", "network", "share")
        assert "sealed to 1 member(s)" in shared.stdout
        fetched = run(tmp_path, beta, "clue", "keys", "network", "fetch")
        assert "saved network key v1" in fetched.stdout
        assert (tmp_path / "beta/keys/network-v1.key").stat().st_mode & 0o777 == 0o600

        run(tmp_path, alpha, "clue", "import", str(csv_file))
        found = json.loads(run(tmp_path, beta, "clue", "lookup", "--phone", "+81 90 1234 5678",
                               "--json").stdout)
        assert found["phone"]["matched"] is True

        # Network key rotation: v2, shared, re-registered, then v1 retired by the council.
        run(tmp_path, alpha, "clue", "keys", "network", "rotate")
        assert "saved network key v2" in run(tmp_path, beta, "clue", "keys", "network",
                                             "fetch").stdout
        again = run(tmp_path, alpha, "clue", "reregister", "--from", str(csv_file))
        assert "2 registered" in again.stdout and "v2" in again.stderr
        retired = run(tmp_path, server_env, "clue-server", "network-key", "retire", "1", "--yes")
        assert "2 report(s) made with it deleted" in retired.stdout
        # Until beta fetches, its look-ups still carry v1 tokens and are refused clearly...
        stale = run(tmp_path, beta, "clue", "lookup", "--email", "fraud@example.com", ok=False)
        assert "retired network-key version" in stale.stderr
        # ...fetching drops the retired key, and the v2 report is found.
        assert "v1 was retired by the council: removed" in run(
            tmp_path, beta, "clue", "keys", "network", "fetch").stdout
        assert not (tmp_path / "beta/keys/network-v1.key").exists()
        found = json.loads(run(tmp_path, beta, "clue", "lookup", "--email", "fraud@example.com",
                               "--json").stdout)
        assert found["email"]["matched"] is True

        # HPKE key rotation: a new public key is published and re-shared keys open with it.
        old_hpke = (tmp_path / "beta/keys/member-hpke.pub").read_text()
        run(tmp_path, beta, "clue", "keys", "hpke", "rotate")
        assert (tmp_path / "beta/keys/member-hpke.pub").read_text() != old_hpke
        run(tmp_path, alpha, "clue", "keys", "network", "share", "--version", "2")
        assert "v2: already here, identical" in run(tmp_path, beta, "clue", "keys", "network",
                                                     "fetch").stdout

        # Member signing key rotation: the old key is revoked and stops working.
        old_pub = (tmp_path / "alpha/keys/member-signing.pub").read_text()
        assert "revoked" in run(tmp_path, alpha, "clue", "keys", "signing", "rotate").stdout
        assert (tmp_path / "alpha/keys/member-signing.pub").read_text() != old_pub
        run(tmp_path, alpha, "clue", "ping")

        # Server key rotation, step 1: stage; members pin the endorsed successor.
        run(tmp_path, server_env, "clue-server", "server-key", "rotate")
        port = server.port
    with Gunicorn(server_env, workers=2, port=port) as server:
        assert "pinned next server key" in run(tmp_path, beta, "clue", "keys", "server",
                                               "refresh").stdout
        run(tmp_path, server_env, "clue-server", "server-key", "promote")
    with Gunicorn(server_env, workers=2, port=port):
        # Beta accepted the successor beforehand, so it keeps working after the promotion;
        # alpha never refreshed and refuses the unknown key.
        run(tmp_path, beta, "clue", "ping")
        assert "refusing the server's answer" in run(tmp_path, alpha, "clue", "ping",
                                                      ok=False).stderr
        assert "now pinned" in run(tmp_path, beta, "clue", "keys", "server", "refresh").stdout
        run(tmp_path, beta, "clue", "ping")


def _admit(tmp_path, server_env, env, url, who, *extra):
    run(tmp_path, env, "clue", "keys", "init", "--server", url, "--server-key",
        str(tmp_path / "server-keys" / "server-signing.pub"), "--keys-dir", f"{who}/keys", *extra)
    run(tmp_path, server_env, "clue-server", "member", "add", who, "--public-key",
        f"{who}/keys/member-signing.pub", "--hpke-key", f"{who}/keys/member-hpke.pub")


def test_sealed_key_files(tmp_path):
    server_env = {"CLUE_DATABASE_URL": f"sqlite:///{tmp_path / 'clue.db'}",
                  "CLUE_SERVER_KEYS_DIR": str(tmp_path / "server-keys")}
    ensure_server_keys(tmp_path / "server-keys")
    upgrade(server_env["CLUE_DATABASE_URL"])
    sealed_env = {**server_env, "CLUE_CONFIG": "alpha/clue.json", "CLUE_KEY_PASSPHRASE": "pw"}
    with Gunicorn(server_env, workers=1) as server:
        _admit(tmp_path, server_env, sealed_env, server.url, "alpha", "--passphrase")
        for name in ("member-signing.key", "member-hpke.key"):
            document = json.loads((tmp_path / "alpha/keys" / name).read_text())
            assert "sealed" in document and "key" not in document
        run(tmp_path, sealed_env, "clue", "keys", "network", "new")
        assert "sealed" in json.loads((tmp_path / "alpha/keys/network-v1.key").read_text())
        run(tmp_path, sealed_env, "clue", "ping")
        plain = {k: v for k, v in sealed_env.items() if k != "CLUE_KEY_PASSPHRASE"}
        refused = run(tmp_path, plain, "clue", "ping", ok=False)
        assert "passphrase" in refused.stderr.lower()
        wrong = run(tmp_path, {**sealed_env, "CLUE_KEY_PASSPHRASE": "nope"}, "clue", "ping",
                    ok=False)
        assert "invalid key file" in wrong.stderr


def test_demo_runs(tmp_path):
    result = subprocess.run([str(BIN / "clue-server"), "demo"], capture_output=True, text=True,
                            timeout=120, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "saved network key v1" in result.stdout
    assert "phone         MATCH (exact) card_theft; 1 member(s)" in result.stdout
    assert "email         no match" in result.stdout
