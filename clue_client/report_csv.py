"""Reading a fraud team's CSV of identifiers, and writing an import's result files.

Reads what spreadsheet tools in Japan save: UTF-8 with or without a BOM, UTF-16 with a
BOM (Excel's "Unicode text"), and CP932 (Shift_JIS as Windows and Excel write it);
comma-, tab- or semicolon-separated; a header in English or Japanese, in any column
order and case. Types and categories may be written in Japanese too. The names are
listed in docs/csv-import.md (a test keeps that page and this module in step).

    >>> table = read_report_csv(Path("docs/examples/reports.csv"))  # doctest: +SKIP
    >>> table.rows[0].item
    ReportInput(id_type='phone', value='090-1234-5678', category='card_theft', ...)

Nothing here talks to the server: rows are checked locally (canonical forms included),
and a row that fails gets a reason naming what is wrong in the words of the file.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clue_client import canonical
from clue_client.errors import InvalidIdentifier
from clue_client.models import ReportInput
from clue_client.notes import MAX_NOTE_BYTES
from clue_client.protocol import CATEGORIES

__all__ = ["CATEGORY_NAMES", "COLUMNS", "TYPE_NAMES", "CsvError", "CsvRow", "ReportCsv",
           "read_report_csv", "write_rejected", "write_results"]

#: A report CSV of 100 MB is about two million rows; beyond that, split the file.
MAX_FILE_BYTES = 100 * 1024 * 1024

#: Column names, each with the other names accepted for it. Every name here and below is
#: compared after NFKC (full-width letters fold), lower-casing, and turning spaces and
#: hyphens into "_": "Expires In Days", "ＴＹＰＥ" and "ip address" all match.
COLUMNS: dict[str, tuple[str, ...]] = {
    "type": ("type", "id_type", "identifier_type", "種別", "種類", "識別子種別", "タイプ"),
    "value": ("value", "identifier", "値", "識別子", "内容"),
    "category": ("category", "カテゴリ", "カテゴリー", "分類", "不正種別"),
    "expires_in_days": ("expires_in_days", "expires", "有効日数", "保持日数", "有効期間(日)"),
    "note": ("note", "memo", "メモ", "備考"),
}
REQUIRED_COLUMNS = ("type", "value", "category")
#: The reason column this module adds to a rejected-rows file; ignored on re-import.
REASON_COLUMNS = ("rejected_reason", "却下理由")

#: Identifier types, each with the other names accepted for it in the type column.
TYPE_NAMES: dict[str, tuple[str, ...]] = {
    "phone": ("tel", "telephone", "phone_number", "電話", "電話番号", "携帯電話番号",
              "携帯番号"),
    "email": ("e_mail", "mail", "email_address", "メール", "メールアドレス", "Eメール",
              "Eメールアドレス"),
    "ip": ("ip_address", "IPアドレス"),
    "device_id": ("device", "端末ID", "デバイスID", "端末識別子"),
    "bank_account": ("口座", "銀行口座", "口座番号"),
    "jpqr_store": ("store_id", "店舗ID", "統一店舗識別コード"),
    "qr_payee": ("payee", "QR受取人", "QR支払先"),
}

#: Fraud categories, each with the other names accepted for it in the category column.
CATEGORY_NAMES: dict[str, tuple[str, ...]] = {
    "card_theft": ("カード盗用", "クレジットカード不正利用", "カード不正利用"),
    "bank_account_theft": ("口座不正利用", "不正口座利用"),
    "remittance_scam": ("送金詐欺", "送金機能の悪用"),
    "fictitious_transaction": ("架空取引",),
    "circular_transaction": ("循環取引",),
    "forged_identity": ("本人確認書類偽造", "身分証偽造", "なりすまし登録"),
    "account_takeover": ("アカウント乗っ取り", "乗っ取り", "不正ログイン"),
    "phishing": ("フィッシング",),
    "sticker_swap": ("ステッカー差し替え", "QRステッカー差し替え", "QR差し替え"),
    "other": ("その他",),
}

#: ``--encoding`` values; "auto" detects (see :func:`read_report_csv`).
ENCODINGS: dict[str, str] = {
    "auto": "auto", "utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8",
    "cp932": "cp932", "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932",
    "windows-31j": "cp932", "ms932": "cp932", "utf-16": "utf-16",
}
#: ``--delimiter`` values; "auto" picks the one that makes sense of the header line.
DELIMITERS: dict[str, str] = {
    "auto": "auto", "comma": ",", ",": ",", "tab": "\t", "\\t": "\t", "\t": "\t",
    "semicolon": ";", ";": ";",
}
_DELIMITER_NAMES = {",": "comma", "\t": "tab", ";": "semicolon"}
_ENCODING_NAMES = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 with BOM", "utf-16": "UTF-16",
                   "cp932": "CP932 (Shift_JIS)"}


class CsvError(Exception):
    """The file as a whole cannot be imported; the message says why and what to do."""


@dataclass
class CsvRow:
    """One record of the file: where it starts, its fields as read, and the report it
    asks for or why not."""

    line: int
    fields: list[str]
    item: ReportInput | None = None
    error: str | None = None
    #: The type and category the row names, when recognised (also for a rejected row).
    id_type: str | None = None
    category: str | None = None


@dataclass
class ReportCsv:
    path: Path
    encoding: str  # the Python codec used ("utf-8-sig" when the file had a BOM)
    delimiter: str
    header: list[str]
    #: Column name -> index in the header (only the columns present).
    columns: dict[str, int]
    ignored: list[str] = field(default_factory=list)
    rows: list[CsvRow] = field(default_factory=list)

    def describe(self) -> str:
        mapped = ", ".join(f"{self.header[i].strip()}→{name}" if self.header[i].strip() != name
                           else name for name, i in sorted(self.columns.items(),
                                                           key=lambda c: c[1]))
        ignored = f"; ignoring {', '.join(self.ignored)}" if self.ignored else ""
        return (f"{self.path}: {_ENCODING_NAMES.get(self.encoding, self.encoding)}, "
                f"{_DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))}-separated, "
                f"{len(self.rows):,} row(s); columns {mapped}{ignored}")


def _normal(name: str) -> str:
    text = unicodedata.normalize("NFKC", name).strip().lower()
    return re.sub(r"[\s\-]+", "_", text)


def _lookup(names: Mapping[str, Iterable[str]]) -> dict[str, str]:
    table = {}
    for canonical_name, others in names.items():
        for name in (canonical_name, *others):
            table[_normal(name)] = canonical_name
    return table


_COLUMN_OF = _lookup(COLUMNS)
_TYPE_OF = _lookup(TYPE_NAMES)
_CATEGORY_OF = _lookup(CATEGORY_NAMES)
_REASON_COLUMNS = {_normal(n) for n in REASON_COLUMNS}


# -- reading -----------------------------------------------------------------------------


def read_report_csv(path: Path, *, encoding: str = "auto", delimiter: str = "auto",
                    ignore_unknown_columns: bool = False) -> ReportCsv:
    """Read and check every row of a report CSV; raise :class:`CsvError` for a file that
    cannot be imported at all (nothing is sent for it).

    Encoding "auto": a UTF-8 or UTF-16 byte-order mark decides; otherwise the file is
    UTF-8 if all of it decodes as UTF-8, else CP932 if all of it decodes as CP932. A
    CP932 file of Japanese text practically never also decodes as UTF-8, and plain ASCII
    reads the same either way.
    """
    codec = ENCODINGS.get(encoding.lower())
    if codec is None:
        raise CsvError(f"unknown encoding {encoding!r}; one of {', '.join(ENCODINGS)}")
    sep = DELIMITERS.get(delimiter.lower() if len(delimiter) > 1 else delimiter)
    if sep is None:
        raise CsvError(f"unknown delimiter {delimiter!r}; one of auto, comma, tab, semicolon")
    data = _read_bytes(path)
    text, used = _decode(path, data, codec)
    if "\x00" in text:
        offset = text.index("\x00")
        raise CsvError(f"{path}: line {text.count(chr(10), 0, offset) + 1} has a NUL "
                       "byte: this looks like a binary file, not a CSV")
    if not text.strip():
        raise CsvError(f"{path} is empty; a report CSV starts with a header line such as "
                       "type,value,category,expires_in_days,note "
                       "(or 種別,値,カテゴリ,有効日数,メモ)")
    first_line = text.lstrip("\r\n").split("\n", 1)[0].rstrip("\r")
    if sep == "auto":
        sep = _sniff_delimiter(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=False)
    try:
        header = next(reader)
        while not any(cell.strip() for cell in header):  # blank lines before the header
            header = next(reader)
    except StopIteration:
        raise CsvError(f"{path} has no header line") from None
    except csv.Error as exc:
        raise CsvError(f"{path}: line {reader.line_num}: unreadable header ({exc})") from None
    columns, ignored = _map_header(path, header, ignore_unknown_columns)
    table = ReportCsv(path, used, sep, header, columns, ignored)
    line = reader.line_num + 1
    try:
        for fields in reader:
            if any(cell.strip() for cell in fields):
                table.rows.append(_row(line, fields, columns, len(header)))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise CsvError(f"{path}: line {line}: unreadable ({exc}); nothing was imported. "
                       "Is this the right file?") from None
    return table


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise CsvError(f"{path} is {size / 1e6:,.0f} MB; split it into files under "
                           f"{MAX_FILE_BYTES // 1_000_000} MB")
        return path.read_bytes()
    except IsADirectoryError:
        raise CsvError(f"{path} is a directory, not a CSV file") from None
    except OSError as exc:
        raise CsvError(f"cannot read {path}: {exc.strerror or exc}") from None


def _decode(path: Path, data: bytes, codec: str) -> tuple[str, str]:
    if data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise CsvError(f"{path} is a spreadsheet workbook (.xlsx/.xls), not a CSV; in Excel "
                       "save it as \"CSV UTF-8\" or \"CSV\" (名前を付けて保存 → CSV) and "
                       "import that")
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if b"\x00" in data and not (utf16 or codec == "utf-16"):
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise CsvError(f"{path}: line {line} has a NUL byte: this looks like a binary file, "
                       "not a CSV")
    if codec == "auto":
        if data.startswith(codecs.BOM_UTF8):
            codec = "utf-8"
        elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            codec = "utf-16"
        else:
            for candidate in ("utf-8", "cp932"):
                try:
                    text = data.decode(candidate)
                except UnicodeDecodeError:
                    continue
                # Python maps the unassigned single bytes A0 and FD-FF of CP932 to
                # U+F8F0-U+F8F3; no Shift_JIS text has them, binary junk does.
                if candidate == "cp932" and _CP932_UNASSIGNED.search(text):
                    break
                return text, candidate
            _, line, bad = _first_bad(data, "utf-8")
            raise CsvError(f"{path} is neither UTF-8 nor CP932 (Shift_JIS): line {line} has "
                           f"the byte(s) {bad}. Is it a CSV? If it is, pass its encoding "
                           "with --encoding") from None
    if codec == "utf-8" and data.startswith(codecs.BOM_UTF8):
        codec = "utf-8-sig"
    if codec == "utf-16" and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CsvError(f"{path} has no UTF-16 byte-order mark; save it again as "
                       "\"Unicode text\" or as CSV UTF-8")
    try:
        return data.decode(codec), codec
    except UnicodeDecodeError:
        _, line, bad = _first_bad(data, codec)
        name = _ENCODING_NAMES.get(codec, codec)
        raise CsvError(f"{path} is not {name}: line {line} has the byte(s) {bad}; try "
                       "--encoding auto, or save the file again as CSV UTF-8") from None


_CP932_UNASSIGNED = re.compile("[\uf8f0-\uf8f3]")


def _first_bad(data: bytes, codec: str) -> tuple[int, int, str]:
    try:
        data.decode(codec)
    except UnicodeDecodeError as exc:
        bad = " ".join(f"{b:02x}" for b in data[exc.start:exc.end][:4])
        return exc.start, data.count(b"\n", 0, exc.start) + 1, bad
    return 0, 1, ""


def _sniff_delimiter(header_line: str) -> str:
    """The delimiter that splits the header into the most known column names (ties:
    comma, tab, semicolon); if none splits out any, the one the line uses most."""
    def known(sep: str) -> int:
        return sum(_normal(cell.strip('"')) in _COLUMN_OF for cell in header_line.split(sep))

    candidates = (",", "\t", ";")
    best = max(candidates, key=lambda sep: (known(sep), -candidates.index(sep)))
    if known(best):
        return best
    return max(candidates, key=lambda sep: (header_line.count(sep), -candidates.index(sep)))


def _map_header(path: Path, header: Sequence[str], ignore_unknown: bool
                ) -> tuple[dict[str, int], list[str]]:
    columns: dict[str, int] = {}
    unknown: list[str] = []
    ignored: list[str] = []
    for index, cell in enumerate(header):
        name = _normal(cell)
        column = _COLUMN_OF.get(name)
        if column is None:
            # Our own reason column, and unnamed columns (a spreadsheet's trailing empty
            # cells) are ignored; other names are probably typos, which would lose data.
            if name in _REASON_COLUMNS or not name or ignore_unknown:
                ignored.append(cell.strip() or f"(column {index + 1})")
            else:
                unknown.append(cell)
            continue
        if column in columns:
            raise CsvError(f"{path}: columns {columns[column] + 1} ({header[columns[column]]!r})"
                           f" and {index + 1} ({cell!r}) both mean {column}; keep one")
        columns[column] = index
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        shown = ",".join(h.strip() for h in header)[:200] or "nothing"
        hint = ""
        if any(_looks_like_data(cell) for cell in header):
            hint = " The first line looks like data: add a header line."
        raise CsvError(
            f"{path}: the header needs the columns type, value and category (and may have "
            f"expires_in_days and note), in any order, in English or Japanese (種別,値,"
            f"カテゴリ,有効日数,メモ); missing {', '.join(missing)}, found: {shown}.{hint} "
            "See docs/csv-import.md")
    if unknown:
        parts = []
        accepted = list(_COLUMN_OF)
        for cell in unknown:
            close = difflib.get_close_matches(_normal(cell), accepted, n=1)
            guess = f" (did you mean {close[0]}?)" if close else ""
            parts.append(f"{cell.strip()[:40]!r}{guess}")
        raise CsvError(f"{path}: unknown column(s) {', '.join(parts)}; known columns are "
                       "type, value, category, expires_in_days, note (see docs/csv-import.md). "
                       "Rename them, or pass --ignore-unknown-columns to import without them")
    return columns, ignored


def _looks_like_data(cell: str) -> bool:
    text = _normal(cell)
    return any(ch.isdigit() for ch in text) or "@" in text or text in _TYPE_OF


def _row(line: int, fields: list[str], columns: Mapping[str, int], width: int) -> CsvRow:
    row = CsvRow(line, fields)
    if len(fields) > width and any(cell.strip() for cell in fields[width:]):
        row.error = f"too many fields ({len(fields)}; the header has {width})"
        return row

    def cell(name: str) -> str:
        index = columns.get(name)
        return fields[index].strip() if index is not None and index < len(fields) else ""

    row.id_type = _TYPE_OF.get(_normal(cell("type")))
    row.category = _CATEGORY_OF.get(_normal(cell("category")))
    try:
        row.item = _item(cell("type"), cell("value"), cell("category"),
                         cell("expires_in_days"), cell("note"))
    except (InvalidIdentifier, ValueError) as exc:
        row.error = str(exc)
    return row


def _item(type_text: str, value: str, category_text: str, days_text: str,
          note: str) -> ReportInput:
    if not type_text:
        raise ValueError("no type")
    id_type = _TYPE_OF.get(_normal(type_text))
    if id_type is None:
        raise ValueError(f"unknown type {type_text[:40]!r}; one of "
                         f"{', '.join(canonical.ID_TYPES)} (or a Japanese name, see "
                         "docs/csv-import.md)")
    if not category_text:
        raise ValueError("no category")
    category = _CATEGORY_OF.get(_normal(category_text))
    if category is None:
        raise ValueError(f"unknown category {category_text[:40]!r}; one of "
                         f"{', '.join(CATEGORIES)} (or a Japanese name, see "
                         "docs/csv-import.md)")
    if not value:
        raise ValueError("no value")
    canonical.canonicalize(id_type, value)  # InvalidIdentifier says what is wrong
    days = None
    if days_text:
        digits = unicodedata.normalize("NFKC", days_text)
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 9 and int(digits)):
            raise ValueError("expires_in_days must be a whole number of days from 1, not "
                             f"{days_text[:20]!r}")
        days = int(digits)
    size = len(note.encode("utf-8"))
    if size > MAX_NOTE_BYTES:
        raise ValueError(f"note is {size:,} bytes; at most {MAX_NOTE_BYTES:,} bytes of "
                         "UTF-8 (about 330 Japanese characters)")
    return ReportInput(id_type, value, category, days, note or None)


# -- writing -----------------------------------------------------------------------------


def default_paths(source: Path) -> tuple[Path, Path]:
    """``x.csv`` -> ``x.result.csv`` and ``x.rejected.csv`` next to it."""
    stem = source.name[:-len(source.suffix)] if source.suffix else source.name
    rejected_suffix = source.suffix or ".csv"
    return (source.with_name(f"{stem}.result.csv"),
            source.with_name(f"{stem}.rejected{rejected_suffix}"))


@dataclass(frozen=True)
class Outcome:
    """What became of one row: ``created``, ``existing``, ``rejected``, ``not_sent``
    (the import stopped before it) or ``valid`` (``--check``)."""

    outcome: str
    report_id: str | None = None
    reason: str | None = None


def write_results(path: Path, table: ReportCsv, outcomes: Sequence[Outcome]) -> None:
    """``line,type,category,outcome,report_id,reason``, one row per data row, in the
    input's encoding (so a spreadsheet opens it the way it opened the input)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["line", "type", "category", "outcome", "report_id", "reason"])
    for row, outcome in zip(table.rows, outcomes, strict=True):
        writer.writerow([row.line, row.id_type or "", row.category or "", outcome.outcome,
                         outcome.report_id or "", outcome.reason or ""])
    _write(path, out.getvalue(), table.encoding)


def write_rejected(path: Path, table: ReportCsv, rejected: Sequence[tuple[CsvRow, str]]) -> None:
    """The rejected rows as they were (same columns, delimiter and encoding) plus a reason
    column, so the file can be fixed and imported again (the reason column is ignored)."""
    width = len(table.header)
    japanese = any(not cell.isascii() for cell in table.header)
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=table.delimiter)
    writer.writerow([*table.header, REASON_COLUMNS[1] if japanese else REASON_COLUMNS[0]])
    for row, reason in rejected:
        fields = row.fields + [""] * (width - len(row.fields))
        writer.writerow([*fields[:width], reason, *fields[width:]])
    _write(path, out.getvalue(), table.encoding)


def _write(path: Path, text: str, encoding: str) -> None:
    # The reasons are ours (ASCII) or echo the file's own text, so they encode back;
    # "replace" only guards against a character CP932 cannot hold.
    path.write_bytes(text.encode(encoding, errors="replace"))
