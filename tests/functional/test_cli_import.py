"""``clue import`` for Japanese fraud teams, and finding and withdrawing by identifier
(issue 12), through the real command line against the app in-process.

A member is set up by ``clue keys init`` in a temporary directory and admitted; its
client talks to the app through the WSGI adapter, so every request is signed, sent and
counted for real.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from clue_client import ClueClient, ReportInput
from clue_server import db
from clue_server.quotas import settings as council
from tests.functional.member_cli import (  # noqa: F401 (fixtures)
    Member,
    member_fixture,
    server_get_fixture,
)

JP_HEADER = "種別,値,カテゴリ,有効日数,メモ"


def read_csv(path: Path, encoding: str, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode(encoding), newline=""),
                           delimiter=delimiter))


# -- Japanese and other spreadsheets -------------------------------------------------------

JP_ROWS = [
    "電話番号,０９０－６６２６－０７０１,カード盗用,,初回の不正利用",
    "メールアドレス,Fraud.Ster+shop@gmail.com,フィッシング,90,",
    "IPアドレス,8.8.4.44,不正ログイン,7,",
    "口座,0001-001-1-1234567,送金詐欺,,振込先口座",
    "電話番号,090-12,カード盗用,,桁が足りない",  # line 6: invalid number
    "ファックス,03-1234-5678,その他,,",  # line 7: unknown type
    "IPアドレス,8.8.4.45,フィッシング,90,",  # line 8: over the council's IP maximum
]


def test_cp932_with_a_japanese_header_imports_and_writes_result_and_rejected_files(
        member: Member) -> None:
    source = member.root / "不正リスト.csv"
    source.write_bytes(("\r\n".join([JP_HEADER, *JP_ROWS]) + "\r\n").encode("cp932"))
    result = member.run("import", str(source), "--no-progress")
    assert result.exit_code == 1, result.output
    assert "CP932 (Shift_JIS), comma-separated, 7 row(s)" in result.stderr
    assert "種別→type" in result.stderr and "メモ→note" in result.stderr
    assert result.stdout.splitlines()[0] == "4 registered, 0 already registered, 3 rejected"
    assert "  line 6: invalid phone: " in result.stderr
    assert "  line 7: unknown type 'ファックス'" in result.stderr
    assert ("  line 8: expires_in_days 90 is over the council's maximum for ip reports "
            "(30 days)") in result.stderr
    assert "item" not in result.stderr
    assert member.posts() == 1  # the bad rows never travelled

    results = read_csv(member.root / "不正リスト.result.csv", "cp932")
    assert results[0] == ["line", "type", "category", "outcome", "report_id", "reason"]
    outcome = {int(r[0]): r for r in results[1:]}
    assert [outcome[n][3] for n in range(2, 9)] == ["created"] * 4 + ["rejected"] * 3
    assert outcome[2][1:3] == ["phone", "card_theft"] and outcome[3][1:3] == ["email", "phishing"]
    assert outcome[6][1:3] == ["phone", "card_theft"] and outcome[7][1:3] == ["", "other"]
    mine = {r.id: r for r in member.client().reports()}
    assert {outcome[n][4] for n in range(2, 6)} == set(mine)
    assert mine[outcome[2][4]].note == "初回の不正利用"  # the note column, sealed like --note
    assert mine[outcome[3][4]].expires_at - mine[outcome[3][4]].created_at == \
        __import__("datetime").timedelta(days=90)

    # The rejected rows as they were, in CP932, plus the reason: fix and import again.
    rejected_path = member.root / "不正リスト.rejected.csv"
    raw = rejected_path.read_bytes()
    raw.decode("cp932")  # still CP932
    rejected = read_csv(rejected_path, "cp932")
    assert rejected[0] == [*JP_HEADER.split(","), "却下理由"]
    assert [r[:5] for r in rejected[1:]] == [row.split(",") for row in JP_ROWS[4:]]
    assert rejected[3][5].startswith("expires_in_days 90 is over the council's maximum")
    fixed = raw.decode("cp932").replace("090-12,", "090-6626-0702,").replace(
        "ファックス", "電話番号").replace(",90,", ",30,")
    rejected_path.write_bytes(fixed.encode("cp932"))
    again = member.run("import", str(rejected_path), "--no-progress")
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[0] == "3 registered, 0 already registered, 0 rejected"
    assert not (member.root / "不正リスト.rejected.rejected.csv").exists()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_utf8_with_and_without_bom_and_utf16_tab_separated(member: Member,
                                                           encoding: str) -> None:
    source = member.root / "reports.tsv"
    text = ("Value\tCATEGORY\tType\tNote\n"
            "090-6626-0711\tcard_theft\tphone\tメモ\n"
            "dev-ü-1\tother\tdevice_id\t\n")
    if encoding == "utf-16":
        source.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    else:
        source.write_bytes(text.encode(encoding))
    result = member.run("import", str(source), "--no-progress")
    assert result.exit_code == 0, result.output
    assert "tab-separated, 2 row(s)" in result.stderr
    assert result.stdout.startswith("2 registered, 0 already registered, 0 rejected\n")
    results = read_csv(member.root / "reports.result.csv",
                       "utf-16" if encoding == "utf-16" else encoding)
    assert [r[3] for r in results[1:]] == ["created", "created"]
    assert member.run("reports", "--device-id", "dev-ü-1").exit_code == 0


def test_shuffled_columns_in_any_case_and_forced_encoding_and_delimiter(
        member: Member) -> None:
    source = member.root / "x.csv"
    source.write_bytes("CATEGORY;Expires In Days;VALUE;TYPE\n"
                       "phishing;5;8.8.4.9;ip\n".encode("cp932"))
    forced = member.run("import", str(source), "--encoding", "shift_jis", "--delimiter",
                        "semicolon", "--no-progress")
    assert forced.exit_code == 0, forced.output
    (report,) = member.client().reports()
    assert (report.id_type, (report.expires_at - report.created_at).days) == ("ip", 5)
    wrong = member.run("import", str(source), "--encoding", "utf-16", "--no-progress")
    assert wrong.exit_code == 1 and "no UTF-16 byte-order mark" in wrong.output
    bad = member.run("import", str(source), "--encoding", "latin-9", "--no-progress")
    assert bad.exit_code == 1 and "unknown encoding 'latin-9'" in bad.output


# -- hostile and broken files --------------------------------------------------------------

HOSTILE: list[tuple[str, bytes, str]] = [
    ("empty", b"", "is empty; a report CSV starts with a header line"),
    ("blank lines", b"\r\n\r\n  \r\n", "is empty"),
    ("binary", bytes(range(256)) * 4, "has a NUL byte: this looks like a binary file"),
    ("xlsx", b"PK\x03\x04" + b"\x00" * 100, "is a spreadsheet workbook (.xlsx/.xls)"),
    ("neither utf-8 nor cp932", b"type,value,category\n\xff\xff\xff\n",
     "neither UTF-8 nor CP932"),
    ("huge line", b"type,value,category\nphone," + b"9" * 300_000 + b",card_theft\n",
     "line 2: unreadable"),
    ("unknown columns", b"type,value,category,expires_in_dyas,customer\n",
     "unknown column(s) 'expires_in_dyas' (did you mean expires_in_days?), 'customer'"),
    ("no header", b"phone,090-1234-5678,card_theft\n", "The first line looks like data"),
    ("duplicate column", "type,value,category,種別\n".encode(), "both mean type"),
]


@pytest.mark.parametrize(("name", "data", "message"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_files_get_one_clear_line_and_nothing_is_sent(member: Member, name: str,
                                                              data: bytes, message: str) -> None:
    source = member.root / "in.csv"
    source.write_bytes(data)
    result = member.run("import", str(source), "--no-progress")
    assert result.exit_code == 1, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert result.output.count("\n") <= 2  # one line, not a flood
    assert member.adapter.captured == []
    assert not (member.root / "in.result.csv").exists()


def test_header_only_missing_file_and_directory(member: Member) -> None:
    source = member.root / "in.csv"
    source.write_text(JP_HEADER + "\n", encoding="utf-8")
    only = member.run("import", str(source))
    assert only.exit_code == 0 and "no rows to import" in only.stdout
    missing = member.run("import", str(member.root / "nope.csv"))
    assert missing.exit_code == 1 and "cannot read" in missing.output
    directory = member.run("import", str(member.root))
    assert directory.exit_code != 0 and "Traceback" not in directory.output
    assert member.adapter.captured == []


def test_unknown_columns_can_be_ignored_and_unnamed_ones_are(member: Member) -> None:
    source = member.root / "in.csv"
    source.write_text("type,value,category,担当者,\nphone,090-6626-0721,phishing,山田,\n",
                      encoding="utf-8")
    assert member.run("import", str(source)).exit_code == 1
    ok = member.run("import", str(source), "--ignore-unknown-columns", "--no-progress")
    assert ok.exit_code == 0, ok.output
    assert "ignoring 担当者, (column 5)" in ok.stderr


def test_a_flood_of_bad_rows_shows_a_few_examples_and_a_count(member: Member) -> None:
    source = member.root / "in.csv"
    lines = ["type,value,category"] + [f"phone,090-12-{i},card_theft" for i in range(300)]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = member.run("import", str(source), "--no-progress")
    assert result.exit_code == 1
    examples = [line for line in result.stderr.splitlines() if line.startswith("  line ")]
    assert len(examples) == 5 and "... and 295 more" in result.stderr
    assert len(read_csv(member.root / "in.rejected.csv", "utf-8")) == 301


# -- checking against the server's limits, and server refusals ------------------------------


def test_420_ip_rows_over_the_council_maximum_cost_no_round_trip(app: Any, member: Member) -> None:
    with db.session_scope(app) as session:
        council.set_int(session, "retention_days.ip", 30)
    source = member.root / "ips.csv"
    rows = [f"ip,11.1.{i // 250}.{i % 250},phishing,{90 if i % 5 else 7}" for i in range(525)]
    source.write_text("type,value,category,expires_in_days\n" + "\n".join(rows) + "\n",
                      encoding="utf-8")
    result = member.run("import", str(source), "--no-progress")
    assert result.stdout.splitlines()[0] == "105 registered, 0 already registered, 420 rejected"
    assert member.posts() == 1
    assert "line 3: expires_in_days 90 is over the council's maximum for ip reports (30 days)" \
        in result.stderr


def test_stale_limits_a_refused_row_teaches_the_maximum_and_the_rest_goes_in_one_request(
        app: Any, member: Member, monkeypatch: pytest.MonkeyPatch) -> None:
    # The council lowered the IP maximum after the CLI read the limits.
    real_limits = ClueClient.limits

    def stale(self: ClueClient) -> dict[str, Any]:
        answer = real_limits(self)
        answer["retention_days"]["ip"] = 365
        return answer

    monkeypatch.setattr(ClueClient, "limits", stale)
    with db.session_scope(app) as session:
        council.set_int(session, "retention_days.ip", 30)
    source = member.root / "ips.csv"
    rows = [f"ip,11.2.{i // 250}.{i % 250},phishing,{90 if i % 5 else 7}" for i in range(525)]
    source.write_text("type,value,category,expires_in_days\n" + "\n".join(rows) + "\n",
                      encoding="utf-8")
    result = member.run("import", str(source), "--no-progress")
    assert result.stdout.splitlines()[0] == "105 registered, 0 already registered, 420 rejected"
    assert member.posts() == 2  # the refused batch, then the rest in one request
    assert "(30 days)" in result.stderr and "item" not in result.stderr


def test_an_older_server_without_limits_still_imports(member: Member,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from clue_client.errors import NotFoundError

    def missing(self: ClueClient) -> dict[str, Any]:
        raise NotFoundError(404, {"detail": "no such endpoint"})

    monkeypatch.setattr(ClueClient, "limits", missing)
    source = member.root / "in.csv"
    source.write_text("type,value,category,expires_in_days\nip,8.8.4.1,phishing,90\n"
                      "ip,8.8.4.2,phishing,\n", encoding="utf-8")
    result = member.run("import", str(source), "--no-progress")
    assert "does not publish its limits" in result.stderr
    assert result.stdout.splitlines()[0] == "1 registered, 0 already registered, 1 rejected"
    assert "council's maximum for ip reports (30 days)" in result.stderr


def test_check_only_registers_nothing(member: Member) -> None:
    source = member.root / "in.csv"
    source.write_text("type,value,category,expires_in_days\nip,8.8.4.1,phishing,90\n"
                      "ip,8.8.4.2,phishing,\n", encoding="utf-8")
    result = member.run("import", str(source), "--check")
    assert result.stdout.splitlines()[0] == "1 row(s) would be sent, 1 rejected (nothing was " \
        "registered)"
    assert member.posts() == 0 and list(member.client().reports()) == []
    assert [r[3] for r in read_csv(member.root / "in.result.csv", "utf-8")[1:]] == [
        "rejected", "valid"]


def test_result_paths_can_be_chosen_and_never_overwrite_the_input(member: Member) -> None:
    source = member.root / "in.csv"
    source.write_text("type,value,category\nphone,090-6626-0731,phishing\n", encoding="utf-8")
    same = member.run("import", str(source), "--result", str(source))
    assert same.exit_code == 2 and "is the input file" in same.output
    nowhere = member.run("import", str(source), "--result", str(member.root / "no" / "r.csv"))
    assert nowhere.exit_code == 1 and "cannot write" in nowhere.output
    chosen = member.run("import", str(source), "--result", str(member.root / "r.csv"),
                        "--no-progress")
    assert chosen.exit_code == 0 and (member.root / "r.csv").exists()


# -- finding and withdrawing by identifier ------------------------------------------------


def test_find_and_withdraw_by_value_for_every_type(member: Member) -> None:
    client = member.client()
    values = {"phone": "090-6626-0741", "email": "a.b+x@gmail.com", "ip": "8.8.4.77",
              "device_id": "dev-77", "bank_account": "0001-001-1-0000777",
              "jpqr_store": "00000000000010001000001000077",
              "qr_payee": "com.example.pay|01=Store-Acct-77"}
    created = {r.id_type: r.id for r in client.register_many(
        [ReportInput(t, v, "other") for t, v in values.items()])}
    for id_type, value in values.items():
        option = "--" + id_type.replace("_", "-")
        found = member.run("reports", option, value, "--json")
        assert found.exit_code == 0, found.output
        assert [r["id"] for r in json.loads(found.stdout)] == [created[id_type]]
        gone = member.run("withdraw", option, value)
        assert gone.exit_code == 0, gone.output
        assert gone.stdout == f"{created[id_type]} withdrawn ({id_type} {value}, other)\n"
    assert list(client.reports()) == []
    # Tokens travelled in POST bodies; the raw values never left.
    for request in member.adapter.captured:
        body = request.body or b""
        sent = (body if isinstance(body, bytes) else body.encode()) + request.url.encode()
        assert b"6626" not in sent and b"dev-77" not in sent and b"a.b" not in sent


def test_withdraw_by_value_narrows_by_category_and_explains_a_miss(member: Member) -> None:
    client = member.client()
    card = client.register("phone", "090-6626-0751", "card_theft")
    phishing = client.register("phone", "090-6626-0751", "phishing")
    folded = client.register("email", "jdoe+shop@example.com", "phishing")
    one = member.run("withdraw", "--phone", "+81 90 6626 0751", "--category", "phishing")
    assert one.exit_code == 0 and one.stdout == (
        f"{phishing.id} withdrawn (phone +81 90 6626 0751, phishing)\n")
    miss = member.run("withdraw", "--phone", "090-6626-0751", "--category", "phishing")
    assert miss.exit_code == 1 and "yours are in card_theft" in miss.stderr
    near = member.run("withdraw", "--email", "jdoe@example.com")
    assert near.exit_code == 1 and folded.id in near.stderr and "folded" in near.stderr
    invalid = member.run("withdraw", "--phone", "12")
    assert invalid.exit_code == 1 and "invalid phone" in invalid.output
    assert member.run("withdraw").exit_code == 2
    assert {r.id for r in client.reports()} == {card.id, folded.id}
    by_id = member.run("withdraw", card.id)
    assert by_id.stdout == f"{card.id} withdrawn\n"


def test_reports_show_suspended_reports(app: Any, member: Member) -> None:
    from sqlalchemy import update

    from clue_server.reports.models import Report

    report = member.client().register("phone", "090-6626-0761", "card_theft")
    with db.session_scope(app) as session:
        session.execute(update(Report).values(suspended_at=db.utcnow()))
    listed = member.run("reports")
    assert re.search(rf"{report.id} .* SUSPENDED \d{{4}}-\d\d-\d\d", listed.stdout)
    assert "1 suspended by the council" in listed.stdout
    as_json = json.loads(member.run("reports", "--json").stdout)
    assert as_json[0]["suspended"] is True and as_json[0]["suspended_at"]


def test_a_result_file_that_cannot_be_written_is_one_clear_line(
        member: Member, monkeypatch: pytest.MonkeyPatch) -> None:
    from clue_client import report_csv

    def full(*args: Any) -> None:
        raise OSError(28, "No space left on device", "in.result.csv")

    monkeypatch.setattr(report_csv, "write_results", full)
    source = member.root / "in.csv"
    source.write_text("type,value,category\nphone,090-6626-0781,phishing\n", encoding="utf-8")
    result = member.run("import", str(source), "--no-progress")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "cannot write the result files (No space left on device: in.result.csv); 1 row(s) " \
        "landed" in result.output
