"""A Japanese fraud team's day against real gunicorn (issue 12), every step a ``clue`` or
``clue-server`` process as a member and the council would run it.

Set-up with the mistakes the issue lists (a URL ending in /v1, asking before being
admitted), a CP932 file with a Japanese header saved the way Excel saves it, imported
in one request because the rows over the council's limits are set aside locally, the
result and rejected files, then one identifier found and withdrawn by its value.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent

HEADER = "種別,値,カテゴリ,有効日数,メモ"


def run(root: Path, server: Server, *args: str, check: bool = True
        ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **server.env, "CLUE_CONFIG": str(root / "clue.json")}
    env.pop("CLUE_KEY_PASSPHRASE", None)
    result = subprocess.run([str(BIN / args[0]), *args[1:]], cwd=root, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    if check:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def _rows() -> tuple[list[str], dict[int, str]]:
    """600 rows: good ones of every kind, and (line -> reason) for the bad ones."""
    rows, bad = [], {}
    for i in range(600):
        line = i + 2
        kind = i % 4
        if kind == 0:
            rows.append(f"電話番号,090-7{i // 1000:03d}-{i % 10000:04d},カード盗用,,確認済み{i}")
        elif kind == 1:
            rows.append(f"メールアドレス,user{i}@example.jp,フィッシング,,")
        elif kind == 2:
            # Every other IP row asks for 90 days: over the council's 30 for IPs.
            days = "90" if i % 8 == 2 else "７"
            rows.append(f"IPアドレス,11.77.{i // 250}.{i % 250},アカウント乗っ取り,{days},")
            if days == "90":
                bad[line] = "expires_in_days 90 is over the council's maximum for ip reports"
        else:
            rows.append(f"口座,０００５－１２３－１－{i:07d},送金詐欺,,受け子")
    rows[10] = "電話番号,090-12,カード盗用,,桁不足"  # line 12
    bad[12] = "invalid phone: "
    rows[20] = "ファックス,03-1234-5678,その他,,"  # line 22
    bad[22] = "unknown type 'ファックス'"
    return rows, bad


def test_cp932_import_then_find_and_withdraw_one_identifier(server: Server, tmp_path: Path
                                                             ) -> None:
    root = tmp_path
    server_pub = str(Path(server.env["CLUE_SERVER_KEYS_DIR"]) / "server-signing.pub")
    init = run(root, server, "clue", "keys", "init", "--server", server.url + "/v1",
               "--server-key", server_pub, "--keys-dir", "keys")
    assert "the client adds /v1 itself" in init.stderr  # dropped, and the key checked live
    assert "warning" not in init.stderr

    waiting = run(root, server, "clue", "ping", check=False)
    assert waiting.returncode == 1
    assert "send it your public keys" in waiting.stderr and "member-signing.pub" in waiting.stderr

    name = f"Nihon Pay {secrets.token_hex(3)}"
    run(root, server, "clue-server", "member", "add", name, "--public-key",
        "keys/member-signing.pub", "--hpke-key", "keys/member-hpke.pub")
    run(root, server, "clue", "keys", "network", "new")
    assert run(root, server, "clue", "ping").stdout.startswith("ok: signed in as member m_")

    rows, bad = _rows()
    source = root / "不正利用リスト.csv"
    source.write_bytes(("\r\n".join([HEADER, *rows]) + "\r\n").encode("cp932"))
    mark = server.log_mark()
    imported = run(root, server, "clue", "import", str(source), "--no-progress", check=False)
    assert imported.returncode == 1, imported.stderr
    assert "CP932 (Shift_JIS), comma-separated, 600 row(s)" in imported.stderr
    good = 600 - len(bad)
    assert imported.stdout.splitlines()[0] == (
        f"{good} registered, 0 already registered, {len(bad)} rejected")
    examples = [line for line in imported.stderr.splitlines() if line.startswith("  line ")]
    assert len(examples) == 5 and f"... and {len(bad) - 5} more" in imported.stderr
    assert "item" not in imported.stderr
    posts = server.access_since(mark, expect=1, method="POST", path="/v1/reports")
    assert [p.status for p in posts] == [201]  # one request: nothing bad was sent
    assert len(server.access_since(mark, expect=1, method="GET", path="/v1/limits")) == 1

    result_rows = list(csv.DictReader(io.StringIO(
        (root / "不正利用リスト.result.csv").read_bytes().decode("cp932"), newline="")))
    assert len(result_rows) == 600
    outcome = {int(r["line"]): r for r in result_rows}
    assert {n for n, r in outcome.items() if r["outcome"] == "rejected"} == set(bad)
    for line, reason in bad.items():
        assert outcome[line]["reason"].startswith(reason), outcome[line]
    phone_row = outcome[2]
    assert (phone_row["type"], phone_row["outcome"]) == ("phone", "created")

    rejected_raw = (root / "不正利用リスト.rejected.csv").read_bytes()
    rejected = list(csv.reader(io.StringIO(rejected_raw.decode("cp932"), newline="")))
    assert rejected[0] == [*HEADER.split(","), "却下理由"]
    assert [",".join(r[:5]) for r in rejected[1:]] == [rows[n - 2] for n in sorted(bad)]

    # The one false positive: find it by its number, withdraw it, and only it.
    phone = "０９０－７０００－００００"  # row 2, written another way
    mark = server.log_mark()
    found = json.loads(run(root, server, "clue", "reports", "--phone", phone, "--json").stdout)
    assert [r["id"] for r in found] == [phone_row["report_id"]]
    assert found[0]["note"] == "確認済み0"
    withdrawn = run(root, server, "clue", "withdraw", "--phone", phone)
    assert withdrawn.stdout == (f"{phone_row['report_id']} withdrawn (phone {phone}, "
                                "card_theft)\n")
    searches = server.access_since(mark, expect=2, method="POST", path="/v1/reports/search")
    assert [s.target for s in searches] == ["/v1/reports/search"] * 2  # no token in a URL
    deletes = server.access_since(mark, expect=1, method="DELETE")
    assert [d.target for d in deletes] == [f"/v1/reports/{phone_row['report_id']}"]
    gone = run(root, server, "clue", "reports", "--phone", phone, check=False)
    assert gone.returncode == 1 and "0 report(s)" in gone.stdout
    listed = json.loads(run(root, server, "clue", "reports", "--json").stdout)
    assert len(listed) == good - 1

    # Fix the rejected rows in their file and import it: they land, nothing twice.
    fixed = rejected_raw.decode("cp932")
    fixed = re.sub(r",90,", ",30,", fixed).replace("090-12,", "090-6000-0012,").replace(
        "ファックス", "電話番号")
    (root / "不正利用リスト.rejected.csv").write_bytes(fixed.encode("cp932"))
    again = run(root, server, "clue", "import", str(root / "不正利用リスト.rejected.csv"),
                "--no-progress")
    assert again.stdout.splitlines()[0] == f"{len(bad)} registered, 0 already registered, " \
        "0 rejected"
