"""The ``clue`` and ``clue-server`` command lines against real gunicorn (2 workers).

Each command runs as its own process from the venv, with ``CLUE_CONFIG`` per
member, as ``clue-server demo`` does. Issue 2: key set-up, admission, register,
lookup, reports, withdraw, a 2,500-row CSV import with bad rows and a re-run,
and a suspended member's refusal.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from clue_client import ClueClient
from clue_server import db
from clue_server.auth.services import KEY_CACHE_SECONDS
from clue_server.members import services as members
from clue_server.reports.models import Report
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
CATEGORIES = ("card_theft", "bank_account_theft", "remittance_scam", "fictitious_transaction",
              "circular_transaction", "forged_identity", "account_takeover", "phishing",
              "sticker_swap", "other")


@dataclass
class Member:
    name: str
    id: str
    config: Path


@dataclass
class Shell:
    """Runs ``clue`` / ``clue-server`` in one working directory against one server."""

    root: Path
    server: Server

    def run(self, *args: str, member: Member | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.server.env}
        if member is not None:
            env["CLUE_CONFIG"] = str(member.config)
        env.pop("CLUE_KEY_PASSPHRASE", None)
        result = subprocess.run([str(BIN / args[0]), *args[1:]], cwd=self.root, env=env,
                                capture_output=True, text=True, timeout=120, check=False)
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def json(self, *args: str, member: Member) -> object:
        return json.loads(self.run(*args, member=member).stdout)


@dataclass
class Network:
    shell: Shell
    alpha: Member
    beta: Member


@pytest.fixture(scope="module")
def network(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Network:
    """Two members set up as the issue describes: keys, admission, a shared network key."""
    shell = Shell(tmp_path_factory.mktemp("cli"), server)
    server_pub = str(Path(server.env["CLUE_SERVER_KEYS_DIR"]) / "server-signing.pub")

    def set_up(short: str, name: str) -> Member:
        member = Member(f"{name} {secrets.token_hex(3)}", "", shell.root / short / "clue.json")
        init = shell.run("clue", "keys", "init", "--server", server.url, "--server-key",
                         server_pub, "--keys-dir", f"{short}/keys", member=member)
        assert "send this to the council" in init.stdout
        added = shell.run("clue-server", "member", "add", member.name, "--public-key",
                          f"{short}/keys/member-signing.pub")
        member.id = added.stdout.strip()
        assert re.fullmatch(r"m_[0-9a-f]{12}", member.id), added.stdout
        return member

    # The two members' set-ups are independent: run them side by side.
    with ThreadPoolExecutor(2) as pool:
        alpha, beta = pool.map(set_up, ("alpha", "beta"), ("Alpha Pay", "Beta Bank"))
    created = shell.run("clue", "keys", "network", "new", member=alpha)
    assert "network key v1" in created.stdout
    # Members pass the network key among themselves; the council never sees it.
    shutil.copy(shell.root / "alpha" / "keys" / "network-v1.key", shell.root / "beta" / "keys")
    os.chmod(shell.root / "beta" / "keys" / "network-v1.key", 0o600)
    return Network(shell, alpha, beta)


def test_register_lookup_reports_withdraw(network: Network) -> None:
    shell, alpha, beta = network.shell, network.alpha, network.beta
    registered = shell.run("clue", "register", "--type", "phone", "--category", "card_theft",
                           "090-6626-0701", member=alpha)
    match = re.fullmatch(r"(r_[0-9a-f]+) registered \(phone, card_theft, expires "
                         r"\d{4}-\d\d-\d\d\)\n", registered.stdout)
    assert match, registered.stdout
    report_id = match[1]
    again = shell.run("clue", "register", "--type", "phone", "--category", "card_theft",
                      "+81 90 6626 0701", member=alpha)
    assert again.stdout.startswith(f"{report_id} already registered "), again.stdout

    seen = shell.json("clue", "lookup", "--phone", "０９０ー６６２６ー０７０１", "--email",
                      "nobody@example.com", "--json", member=beta)
    fields = ("matched", "match", "categories", "reporters", "reported_by_me")
    assert {t: {f: r[f] for f in fields} for t, r in seen.items()} == {
        "phone": {"matched": True, "match": "exact", "categories": ["card_theft"],
                  "reporters": 1, "reported_by_me": False},
        "email": {"matched": False, "match": None, "categories": [], "reporters": 0,
                  "reported_by_me": False},
    }
    assert seen["phone"]["first_reported"] == seen["phone"]["last_reported"] is not None
    assert seen["email"]["first_reported"] is None

    listed = shell.json("clue", "reports", "--json", member=alpha)
    mine = [r for r in listed if r["id"] == report_id]
    assert len(mine) == 1
    assert (mine[0]["type"], mine[0]["category"], mine[0]["expired"]) == (
        "phone", "card_theft", False)

    withdrawn = shell.run("clue", "withdraw", report_id, member=alpha)
    assert withdrawn.stdout == f"{report_id} withdrawn\n"
    beta_sdk = ClueClient.from_config(beta.config)
    assert beta_sdk.lookup(phone="090-6626-0701")["phone"].matched is False

    # Withdrawn by mistake: registering it again stores a new report.
    back = shell.run("clue", "register", "--type", "phone", "--category", "card_theft",
                     "090-6626-0701", member=alpha)
    new_id = back.stdout.split()[0]
    assert back.stdout.startswith(f"{new_id} registered ") and new_id != report_id, back.stdout
    assert beta_sdk.lookup(phone="09066260701")["phone"].matched is True


# -- import ------------------------------------------------------------------------------

ROWS = 2500
BAD_ROWS = {  # 0-based row -> (the row, the reason the CLI must give)
    6: (["phone", "090-12", "card_theft", ""], "invalid phone: "),
    512: (["email", "user512@example.com", "fraudish", ""], "unknown category 'fraudish'"),
    1200: (["ssn", "123-45-6789", "card_theft", ""], "unknown type 'ssn'"),
    1999: (["ip", "9.9.9.9", "phishing", "", "extra"], "too many fields"),
    2450: (["email", "not-an-address", "phishing", ""], "invalid email: "),
}


def _good_row(i: int) -> list[str]:
    kind = i % 5
    category = CATEGORIES[i % len(CATEGORIES)]
    if kind == 0:
        value = f"090-{1000 + i // 10000:04d}-{i % 10000:04d}" if i % 2 else f"+8190{10000000 + i}"
        return ["phone", value, category, ""]
    if kind == 1:
        return ["email", f"User{i}@Example.com", category, "90" if i % 3 == 0 else ""]
    if kind == 2:
        return ["ip", f"8.{i // 250}.{i % 250}.7", category, "7" if i % 4 == 0 else ""]
    if kind == 3:
        return ["device_id", f"dev-{i:05d}", category, ""]
    return ["bank_account", f"{i % 9000 + 1:04d}-{i % 1000:03d}-1-{i:07d}", category, ""]


def _write_csv(path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["type", "value", "category", "expires_in_days"])
        for i in range(ROWS):
            writer.writerow(BAD_ROWS[i][0] if i in BAD_ROWS else _good_row(i))


def _held_reports(server: Server, member_id: str) -> tuple[int, int]:
    """(reports, distinct stored identifiers) the server holds for one member."""
    with db.session_scope(server.app) as session:
        rows = session.execute(select(Report.id_type, Report.category, Report.token_hash)
                               .where(Report.member_id == member_id)).all()
    return len(rows), len({tuple(row) for row in rows})


def test_import_csv_with_bad_rows_and_a_rerun(network: Network, server: Server) -> None:
    shell, alpha = network.shell, network.alpha
    source = shell.root / "reports.csv"
    _write_csv(source)
    good = ROWS - len(BAD_ROWS)
    before, _ = _held_reports(server, alpha.id)
    expected_errors = [(i + 2, reason) for i, (_, reason) in sorted(BAD_ROWS.items())]

    def run_import(rejected_file: str) -> tuple[str, list[int]]:
        mark = server.log_mark()
        result = shell.run("clue", "import", str(source), "--rejected", rejected_file,
                           "--no-progress", member=alpha, check=False)
        assert result.returncode == 1, (result.stdout, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.startswith("  line ")]
        assert len(lines) == len(expected_errors), result.stderr
        for line, (number, reason) in zip(lines, expected_errors, strict=True):
            assert line.startswith(f"  line {number}: {reason}"), (line, number, reason)
        # 2,495 good rows in batches of at most 1,000: three requests.
        posts = server.access_since(mark, expect=3, method="POST", path="/v1/reports")
        assert len(posts) == 3, posts
        return result.stdout.splitlines()[0], [p.status for p in posts]

    summary, statuses = run_import("errors.csv")
    assert statuses == [201, 201, 201]
    assert summary == f"{good:,} registered, 0 already registered, {len(BAD_ROWS)} rejected"
    with (shell.root / "errors.csv").open(newline="", encoding="utf-8") as rejected:
        rows = list(csv.reader(rejected))
    assert rows[0] == ["type", "value", "category", "expires_in_days", "rejected_reason"]
    # The rejected rows as they were (the extra field kept after the reason).
    originals = [row for _, (row, _) in sorted(BAD_ROWS.items())]
    assert [r[:4] + r[5:] for r in rows[1:]] == originals
    assert all(r[4].startswith(reason) for r, (_, reason) in zip(rows[1:], expected_errors,
                                                                  strict=True))
    with (shell.root / "reports.result.csv").open(newline="", encoding="utf-8") as result:
        outcomes = list(csv.DictReader(result))
    assert len(outcomes) == ROWS
    assert {int(o["line"]) for o in outcomes if o["outcome"] == "rejected"} == {
        n for n, _ in expected_errors}
    created_ids = {o["report_id"] for o in outcomes if o["outcome"] == "created"}
    assert len(created_ids) == good
    assert _held_reports(server, alpha.id) == (before + good, before + good)

    summary, statuses = run_import("errors-again.csv")
    assert statuses == [200, 200, 200]  # answered from what is stored, nothing written
    assert summary == f"0 registered, {good:,} already registered, {len(BAD_ROWS)} rejected"
    assert _held_reports(server, alpha.id) == (before + good, before + good)
    with (shell.root / "reports.result.csv").open(newline="", encoding="utf-8") as result:
        again = list(csv.DictReader(result))
    assert {o["report_id"] for o in again if o["outcome"] == "existing"} == created_ids
    client = ClueClient.from_config(alpha.config)
    assert len({r.id for r in client.reports()}) == before + good


def test_suspended_member_is_refused_with_403(network: Network, server: Server) -> None:
    shell, beta = network.shell, network.beta
    suspended = shell.run("clue-server", "member", "suspend", beta.id)
    assert suspended.stdout.strip() == f"{beta.id} suspended"
    # The workers trust what they read of a member for at most KEY_CACHE_SECONDS: past
    # that, the suspension made by another process holds in every worker.
    time.sleep(KEY_CACHE_SECONDS + 0.05)
    try:
        refused = shell.run("clue", "lookup", "--phone", "090-6626-0701", member=beta,
                            check=False)
        assert refused.returncode != 0
        assert refused.stdout == ""
        assert refused.stderr.startswith("Error: 403 Member is suspended: "), refused.stderr
        assert beta.id in refused.stderr
    finally:
        with db.session_scope(server.app) as session:  # resume (the CLI's own service call)
            members.set_status(session, beta.id, "active")
        time.sleep(KEY_CACHE_SECONDS + 0.05)
    assert ClueClient.from_config(beta.config).ping()["member_id"] == beta.id
