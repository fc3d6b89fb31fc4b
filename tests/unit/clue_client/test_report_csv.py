"""Reading report CSVs (issue 12): encodings, delimiters, headers, Japanese names, line
numbers, the shipped samples, and docs/csv-import.md kept in step with the code."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clue_client.report_csv import (
    CATEGORY_NAMES,
    COLUMNS,
    TYPE_NAMES,
    CsvError,
    Outcome,
    default_paths,
    read_report_csv,
    write_rejected,
    write_results,
)

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "csv-import.md"


def write(tmp_path: Path, data: bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- the shipped samples and the documentation --------------------------------------------


@pytest.mark.parametrize(("name", "encoding", "rows"), [
    ("reports.csv", "utf-8", 6), ("reports-ja-cp932.csv", "cp932", 5)])
def test_the_sample_files_in_docs_import_cleanly(name: str, encoding: str, rows: int) -> None:
    path = ROOT / "docs" / "examples" / name
    table = read_report_csv(path)
    assert table.encoding == encoding and len(table.rows) == rows
    assert [r.error for r in table.rows] == [None] * rows
    assert {r.item.id_type for r in table.rows if r.item} >= {"phone", "email", "ip"}
    if encoding == "cp932":
        path.read_bytes().decode("cp932")
        with pytest.raises(UnicodeDecodeError):
            path.read_bytes().decode("utf-8")  # really CP932, as Excel writes it


def _doc_table(marker: str) -> dict[str, set[str]]:
    text = DOC.read_text("utf-8")
    block = text.split(f"<!-- {marker}:begin -->")[1].split(f"<!-- {marker}:end -->")[0]
    table = {}
    for line in block.strip().splitlines()[2:]:
        first, others = (cell.strip() for cell in line.strip("|").split("|"))
        table[first.strip("`")] = set(re.findall(r"`([^`]+)`", others))
    return table


@pytest.mark.parametrize(("marker", "names"), [
    ("csv-columns", COLUMNS), ("csv-types", TYPE_NAMES), ("csv-categories", CATEGORY_NAMES)])
def test_the_documented_names_are_the_codes(marker: str, names: dict[str, tuple[str, ...]]
                                            ) -> None:
    expected = {k: {n for n in v if n != k} for k, v in names.items()}
    assert _doc_table(marker) == expected


# -- encodings ------------------------------------------------------------------------------

TEXT = "種別,値,カテゴリ,メモ\r\n電話番号,090-1234-5678,カード盗用,ﾃｽﾄ①\r\n"


@pytest.mark.parametrize(("data", "encoding"), [
    (TEXT.encode("cp932"), "cp932"),
    (TEXT.encode("utf-8"), "utf-8"),
    (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig"),
    (codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"), "utf-16"),
    (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16"),
])
def test_encodings_are_detected(tmp_path: Path, data: bytes, encoding: str) -> None:
    table = read_report_csv(write(tmp_path, data))
    assert table.encoding == encoding
    (row,) = table.rows
    assert row.item is not None and row.item.note == "ﾃｽﾄ①"  # NEC special char of CP932
    assert row.item.category == "card_theft" and table.header[0] == "種別"


def test_a_bom_never_sticks_to_the_first_column(tmp_path: Path) -> None:
    data = codecs.BOM_UTF8 + b"type,value,category\nip,8.8.4.1,phishing\n"
    assert read_report_csv(write(tmp_path, data), encoding="utf-8").columns["type"] == 0


def test_forcing_the_wrong_encoding_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, TEXT.encode("cp932"))
    with pytest.raises(CsvError, match=r"is not UTF-8: line 1 has the byte\(s\) 8e"):
        read_report_csv(path, encoding="utf-8")


# -- delimiters and headers -------------------------------------------------------------------


@pytest.mark.parametrize(("header", "sep"), [
    ("type,value,category", ","), ("type\tvalue\tcategory", "\t"),
    ("type;value;category", ";"), ('"type","value","category"', ","),
    # Values with commas do not fool the sniffer: it reads the header only.
    ("Value\tType\tCategory\tNote", "\t")])
def test_the_delimiter_is_the_one_that_makes_sense_of_the_header(tmp_path: Path, header: str,
                                                                sep: str) -> None:
    row = sep.join(["ip", "8.8.4.1", "phishing"]) if header.lower().startswith(
        ("type", '"type"')) else sep.join(["8.8.4.1", "ip", "phishing", "a, b, c"])
    table = read_report_csv(write(tmp_path, f"{header}\n{row}\n".encode()))
    assert table.delimiter == sep
    assert table.rows[0].item is not None, table.rows[0].error


@pytest.mark.parametrize("header", ["TYPE,Value,CaTeGoRy", "ＴＹＰＥ,ＶＡＬＵＥ,ＣＡＴＥＧＯＲＹ",
                                    " type , value , category ", "Id Type,Identifier,分類",
                                    "種類,識別子,不正種別"])
def test_header_names_in_any_case_width_and_language(tmp_path: Path, header: str) -> None:
    table = read_report_csv(write(tmp_path, f"{header}\nip,8.8.4.1,phishing\n".encode()))
    assert set(table.columns) == {"type", "value", "category"}


@pytest.mark.parametrize(("type_name", "category_name", "expected"), [
    ("電話番号", "カード盗用", ("phone", "card_theft")),
    ("ＩＰアドレス", "不正ログイン", ("ip", "account_takeover")),
    ("Eメール", "ﾌｨｯｼﾝｸﾞ", ("email", "phishing")),
    ("Phone Number", "Card Theft", ("phone", "card_theft")),
    ("DEVICE-ID", "other", ("device_id", "other")),
])
def test_type_and_category_names(tmp_path: Path, type_name: str, category_name: str,
                                 expected: tuple[str, str]) -> None:
    values = {"phone": "090-1234-5678", "ip": "8.8.4.1", "email": "a@example.com",
              "device_id": "d-1"}
    data = f"type,value,category\n{type_name},{values[expected[0]]},{category_name}\n"
    (row,) = read_report_csv(write(tmp_path, data.encode())).rows
    assert row.item is not None, row.error
    assert (row.item.id_type, row.item.category) == expected


# -- rows -------------------------------------------------------------------------------------


def test_rows_keep_their_line_numbers_across_blank_lines_and_quoted_newlines(
        tmp_path: Path) -> None:
    data = (b"\n\ntype,value,category,note\n"  # header on line 3
            b"ip,8.8.4.1,phishing,\"two\nlines\"\n"  # lines 4-5
            b"\n"  # line 6, blank: skipped
            b"ip,8.8.4.x,phishing,\n")  # line 7
    table = read_report_csv(write(tmp_path, data))
    assert [r.line for r in table.rows] == [4, 7]
    assert table.rows[0].item is not None and table.rows[0].item.note == "two\nlines"
    assert table.rows[1].error is not None and table.rows[1].error.startswith("invalid ip")


@pytest.mark.parametrize(("row", "reason"), [
    ("phone,090-12,card_theft,,", "invalid phone: "),
    ("fax,03-1234-5678,other,,", "unknown type 'fax'"),
    ("phone,090-1234-5678,arson,,", "unknown category 'arson'"),
    (",090-1234-5678,other,,", "no type"),
    ("phone,,other,,", "no value"),
    ("phone,090-1234-5678,,,", "no category"),
    ("ip,8.8.4.1,phishing,0,", "expires_in_days must be a whole number of days from 1"),
    ("ip,8.8.4.1,phishing,-3,", "expires_in_days must be a whole number"),
    ("ip,8.8.4.1,phishing,1.5,", "expires_in_days must be a whole number"),
    ("ip,8.8.4.1,phishing,9999999999,", "expires_in_days must be a whole number"),
    ("ip,8.8.4.1,phishing,,," + "x", "too many fields (6; the header has 5)"),
    ("ip,8.8.4.1,phishing,," + "あ" * 334, "note is 1,002 bytes"),
])
def test_bad_rows_get_a_reason_in_the_words_of_the_file(tmp_path: Path, row: str,
                                                        reason: str) -> None:
    data = f"type,value,category,expires_in_days,note\n{row}\n".encode()
    (parsed,) = read_report_csv(write(tmp_path, data)).rows
    assert parsed.item is None and parsed.error is not None
    assert parsed.error.startswith(reason), parsed.error


def test_full_width_days_and_trailing_empty_cells_are_fine(tmp_path: Path) -> None:
    data = "type,value,category,expires_in_days\nip,8.8.4.1,phishing,１４,,\n".encode()
    (row,) = read_report_csv(write(tmp_path, data)).rows
    assert row.item is not None and row.item.expires_in_days == 14


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_give_rows_or_a_csv_error_never_anything_else(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "x.csv"
        path.write_bytes(b"type,value,category\n" + data)
        try:
            table = read_report_csv(path)
        except CsvError:
            return
        assert all((r.item is None) != (r.error is None) for r in table.rows)


# -- writing ----------------------------------------------------------------------------------


def test_default_paths() -> None:
    assert default_paths(Path("a/x.csv")) == (Path("a/x.result.csv"), Path("a/x.rejected.csv"))
    assert default_paths(Path("x.tsv")) == (Path("x.result.csv"), Path("x.rejected.tsv"))
    assert default_paths(Path("x")) == (Path("x.result.csv"), Path("x.rejected.csv"))


def test_rejected_rows_round_trip_in_their_own_form(tmp_path: Path) -> None:
    source = ("種別\t値\tカテゴリ\r\n電話番号\t090-12\tカード盗用\r\n"
              "IPアドレス\t8.8.4.1\t架空取引\r\n")
    table = read_report_csv(write(tmp_path, codecs.BOM_UTF8 + source.encode("utf-8"), "in.tsv"))
    bad = [r for r in table.rows if r.error]
    write_rejected(tmp_path / "rej.tsv", table, [(r, r.error or "") for r in bad])
    raw = (tmp_path / "rej.tsv").read_bytes()
    assert raw.startswith(codecs.BOM_UTF8)
    assert raw.decode("utf-8-sig").splitlines()[:2] == [
        "種別\t値\tカテゴリ\t却下理由",
        "電話番号\t090-12\tカード盗用\tinvalid phone: not a valid number for its region"]
    again = read_report_csv(tmp_path / "rej.tsv")  # the reason column is ignored
    assert again.ignored == ["却下理由"] and [r.line for r in again.rows] == [2]
    write_results(tmp_path / "res.csv", table,
                  [Outcome("rejected", reason=bad[0].error), Outcome("created", "r_1")])
    lines = (tmp_path / "res.csv").read_bytes().decode("utf-8-sig").splitlines()
    assert lines[1].startswith("2,phone,card_theft,rejected,,invalid phone")
    assert lines[2] == "3,ip,fictitious_transaction,created,r_1,"
