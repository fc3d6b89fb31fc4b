"""Reading a member's customer list for ``clue watch add``: type, value and reference.

The same files as a report CSV (docs/csv-import.md) are read the same way: UTF-8 with or
without a BOM, UTF-16 with a BOM, CP932; comma, tab or semicolon; English or Japanese
headers and type names (``clue_client.report_csv``). The columns:

* ``type`` (種別, ...) and ``value`` (値, ...) as in a report CSV;
* ``ref`` (参照, 顧客ID, 会員ID, ...): the member's own reference for the customer, kept
  only in the local watch list and shown in alerts; never sent.

Nothing here talks to the server: each row is canonicalised locally, and a row that
fails is returned with its line and reason instead.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from clue_client import canonical
from clue_client.errors import InvalidIdentifier
from clue_client.report_csv import _TYPE_OF as TYPE_OF
from clue_client.report_csv import (
    COLUMNS,
    CsvError,
    _decode,
    _normal,
    _read_bytes,
    _sniff_delimiter,
)

__all__ = ["WATCH_COLUMNS", "WatchCsv", "read_watch_csv"]

WATCH_COLUMNS: dict[str, tuple[str, ...]] = {
    "type": COLUMNS["type"],
    "value": COLUMNS["value"],
    "ref": ("ref", "reference", "customer_id", "customer", "account", "account_id",
            "参照", "参照番号", "顧客ID", "顧客番号", "会員ID", "会員番号", "アカウントID"),
}
_COLUMN_OF = {_normal(name): column for column, names in WATCH_COLUMNS.items()
              for name in (column, *names)}


@dataclass
class WatchCsv:
    """The customers a file lists, ``(type, value, ref)``, and the rows refused."""

    path: Path
    customers: list[tuple[str, str, str]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


def read_watch_csv(path: Path, *, encoding: str = "auto") -> WatchCsv:
    """Read every row of a customer list; :class:`CsvError` if the file as a whole
    cannot be used (nothing is evaluated for it)."""
    data = _read_bytes(path)
    codec = {"auto": "auto", "utf-8": "utf-8", "utf-16": "utf-16", "cp932": "cp932",
             "shift_jis": "cp932", "sjis": "cp932"}.get(encoding.lower())
    if codec is None:
        raise CsvError(f"unknown encoding {encoding!r}; one of auto, utf-8, utf-16, cp932")
    text, _ = _decode(path, data, codec)
    if not text.strip():
        raise CsvError(f"{path} is empty; a customer list starts with the header "
                       "type,value,ref (or 種別,値,参照)")
    first_line = text.lstrip("\r\n").split("\n", 1)[0].rstrip("\r")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(first_line))
    try:
        header = next(reader)
        columns = _columns(path, header)
        table = WatchCsv(path)
        for fields in reader:
            if any(cell.strip() for cell in fields):
                _row(table, reader.line_num, fields, columns)
    except csv.Error as exc:
        raise CsvError(f"{path}: line {reader.line_num}: unreadable ({exc})") from None
    except StopIteration:
        raise CsvError(f"{path} has no header line") from None
    return table


def _columns(path: Path, header: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        column = _COLUMN_OF.get(_normal(cell))
        if column is not None and column not in columns:
            columns[column] = index
    missing = [name for name in WATCH_COLUMNS if name not in columns]
    if missing:
        shown = ",".join(h.strip() for h in header)[:200] or "nothing"
        raise CsvError(f"{path}: the header needs the columns type, value and ref (or 種別,"
                       f"値,参照), in any order; missing {', '.join(missing)}, found: {shown}")
    return columns


def _row(table: WatchCsv, line: int, fields: list[str], columns: dict[str, int]) -> None:
    def cell(name: str) -> str:
        index = columns[name]
        return fields[index].strip() if index < len(fields) else ""

    id_type = TYPE_OF.get(_normal(cell("type")))
    value, ref = cell("value"), cell("ref")
    if id_type is None:
        table.rejected.append((line, f"unknown type {cell('type')[:40]!r}; one of "
                                     f"{', '.join(canonical.ID_TYPES)}"))
    elif not value:
        table.rejected.append((line, "no value"))
    elif not ref:
        table.rejected.append((line, "no ref (the reference alerts will name)"))
    else:
        try:
            canonical.canonicalize(id_type, value)
        except InvalidIdentifier as exc:
            table.rejected.append((line, str(exc)))
            return
        table.customers.append((id_type, value, ref))
