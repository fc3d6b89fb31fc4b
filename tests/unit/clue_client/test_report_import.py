"""How an import reacts to the server's refusals, with a scripted client (issue 12).

A refused row costs one extra request for the rest of its batch, never one request per
remaining row; a body too large is halved; a quota or a connection failure stops the
import and leaves the unsent rows reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from clue_client.errors import RateLimitedError, TransportError, ValidationError
from clue_client.models import ReportInput
from clue_client.report_csv import CsvRow
from clue_client.report_import import Importer, Limits, estimated_bytes, over_retention


@dataclass
class FakeReport:
    id: str
    created: bool = True


@dataclass
class ScriptedClient:
    """Refuses items whose value is in ``refuse`` (by index, like the server) and raises
    ``fail`` on the request numbered ``fail_at``."""

    refuse: dict[str, dict[str, Any]] = field(default_factory=dict)
    too_large_over: int | None = None
    fail_at: int | None = None
    fail: Exception | None = None
    batches: list[list[str]] = field(default_factory=list)

    def register_many(self, items: list[ReportInput], *, idempotency_key: str) -> list[Any]:
        assert idempotency_key.startswith("clue-cli-")
        self.batches.append([i.value for i in items])
        if self.fail_at is not None and len(self.batches) == self.fail_at:
            assert self.fail is not None
            raise self.fail
        if self.too_large_over is not None and len(items) > self.too_large_over:
            raise ValidationError(413, {"detail": "the body exceeds 1048576 bytes"})
        for index, item in enumerate(items):
            if item.value in self.refuse:
                problem = {"detail": f"item {index}: ...", "index": index,
                           **self.refuse[item.value]}
                raise ValidationError(422, problem)
        return [FakeReport(f"r_{item.value}") for item in items]


def rows(n: int, **special: ReportInput) -> list[CsvRow]:
    out = []
    for i in range(n):
        item = special.get(str(i), ReportInput("phone", f"v{i}", "card_theft"))
        out.append(CsvRow(i + 2, [item.value], item))
    return out


def test_a_refused_row_is_dropped_by_its_index_and_the_rest_sent_in_one_request() -> None:
    client = ScriptedClient(refuse={"v3": {"field": "category", "reason": "is odd"}})
    importer = Importer(client, Limits(), batch_size=10)  # type: ignore[arg-type]
    outcomes, stopped = importer.run(rows(10))
    assert stopped is None and len(client.batches) == 2
    assert "v3" in client.batches[0] and "v3" not in client.batches[1]
    assert [o.outcome for o in outcomes].count("created") == 9
    assert outcomes[3].outcome == "rejected"
    assert outcomes[3].reason == "refused by the server: category is odd"


def test_a_refused_expires_in_days_teaches_the_maximum_for_every_waiting_row() -> None:
    special = {str(i): ReportInput("ip", f"v{i}", "phishing", 90) for i in range(0, 600, 2)}
    client = ScriptedClient(refuse={
        v.value: {"field": "expires_in_days", "reason": "must be between 1 and 30"}
        for v in special.values()})
    importer = Importer(client, Limits(), batch_size=250)  # type: ignore[arg-type]
    outcomes, stopped = importer.run(rows(600, **special))
    assert stopped is None
    # One refusal, then each batch once without the 300 rows over the maximum.
    assert len(client.batches) == 1 + 3
    assert [o.outcome for o in outcomes].count("rejected") == 300
    assert outcomes[2].reason is not None
    assert outcomes[2].reason.startswith(
        "expires_in_days 90 is over the council's maximum for ip reports (30 days)")


def test_batches_are_cut_by_body_size_too() -> None:
    note = "あ" * 330  # ~1 KB of UTF-8 each: 1,000 of them would not fit in 1 MiB
    special = {str(i): ReportInput("email", f"u{i}@example.com", "phishing", None, note)
               for i in range(1000)}
    client = ScriptedClient()
    importer = Importer(client, Limits(), batch_size=1000)  # type: ignore[arg-type]
    importer.run(rows(1000, **special))
    assert len(client.batches) >= 2
    for batch in client.batches:
        assert sum(estimated_bytes(special[v[1:].split("@")[0]]) for v in batch) \
            < 1024 * 1024 - 1024


def test_a_body_the_server_finds_too_large_is_halved() -> None:
    client = ScriptedClient(too_large_over=3)
    importer = Importer(client, Limits(), batch_size=8)  # type: ignore[arg-type]
    outcomes, stopped = importer.run(rows(8))
    assert stopped is None and all(o.outcome == "created" for o in outcomes)
    assert [len(b) for b in client.batches] == [8, 4, 2, 2, 4, 2, 2]


@pytest.mark.parametrize(("error", "message"), [
    (RateLimitedError(429, {"detail": "daily registrations quota exceeded"}, 60),
     "the daily registration quota is used up"),
    (TransportError("cannot reach CLUE"), "run the same import again to continue"),
    (ValidationError(422, {"detail": "retired", "index": 0, "field": "key_version",
                           "reason": "is a retired network-key version"}),
     "clue keys network fetch"),
    (ValidationError(400, {"detail": "/reports must be an array"}), "the server refused a batch"),
])
def test_a_stop_reports_the_unsent_rows(error: Exception, message: str) -> None:
    client = ScriptedClient(fail_at=2, fail=error)
    importer = Importer(client, Limits(), batch_size=4)  # type: ignore[arg-type]
    outcomes, stopped = importer.run(rows(10))
    assert stopped is not None and message in stopped
    assert [o.outcome for o in outcomes] == ["created"] * 4 + ["not_sent"] * 6
    assert outcomes[-1].reason == stopped


def test_over_retention_only_with_a_known_maximum() -> None:
    item = ReportInput("ip", "8.8.4.1", "phishing", 31)
    assert over_retention(item, Limits()) is None
    assert over_retention(item, Limits(retention_days={"ip": 31})) is None
    assert "(30 days)" in (over_retention(item, Limits(retention_days={"ip": 30})) or "")
    assert over_retention(ReportInput("ip", "x", "phishing"),
                          Limits(retention_days={"ip": 30})) is None
