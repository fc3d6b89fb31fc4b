"""Sending a checked report CSV to the server: few round trips, no surprises.

Rows are checked against the server's published limits (``GET /v1/limits``: batch and
body size, the council's maximum retention per identifier type) before anything is
sent, so a row over a council limit never costs a round trip. Batches are cut by item
count *and* body size (notes make items large). If the server still refuses a batch
(a limit changed meanwhile, or an older server without ``/v1/limits``), the refused row
is dropped by the index the problem names and the rest is sent again in one request;
a refusal of ``expires_in_days`` also teaches the council's maximum for that type, so
every other row over it is set aside locally instead of one round trip each.
"""

from __future__ import annotations

import re
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clue_client.client import MAX_BATCH, ClueClient
from clue_client.errors import ClueError, RateLimitedError, ValidationError
from clue_client.models import ReportInput
from clue_client.report_csv import CsvRow, Outcome

_BETWEEN = re.compile(r"must be between 1 and ([0-9]{1,9})")
#: Room left in a body for the envelope (``{"reports":[...]}``) and rounding.
_BODY_MARGIN = 1024


@dataclass
class Limits:
    """What the server accepts (defaults: an older server without ``/v1/limits``)."""

    max_batch_items: int = MAX_BATCH
    max_body_bytes: int = 1024 * 1024
    #: The council's maximum ``expires_in_days`` per type; types missing are unknown.
    retention_days: dict[str, int] = field(default_factory=dict)
    registrations_remaining: int | None = None
    resets_at: str | None = None
    published: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Limits:
        registrations = data.get("quotas", {}).get("registrations", {})
        return cls(max_batch_items=int(data["max_batch_items"]),
                   max_body_bytes=int(data["max_body_bytes"]),
                   retention_days={str(k): int(v) for k, v in data["retention_days"].items()},
                   registrations_remaining=registrations.get("remaining"),
                   resets_at=data.get("quotas", {}).get("resets_at"), published=True)


def over_retention(item: ReportInput, limits: Limits) -> str | None:
    """Why ``item`` is over the council's retention for its type, or ``None``."""
    maximum = limits.retention_days.get(item.id_type)
    if item.expires_in_days is None or maximum is None or item.expires_in_days <= maximum:
        return None
    return (f"expires_in_days {item.expires_in_days} is over the council's maximum for "
            f"{item.id_type} reports ({maximum} days); leave it empty to keep the report "
            f"the maximum {maximum} days")


def estimated_bytes(item: ReportInput) -> int:
    """An upper bound of the item's size in the request body (compact JSON)."""
    size = 170 + (70 if item.id_type == "email" else 0)
    if item.note:
        sealed = 12 + len(item.note.encode("utf-8")) + 16
        size += 12 + (sealed * 4 + 2) // 3
    return size


class ImportStopped(Exception):
    """The import cannot go on (quota, connection, a batch-wide refusal); the rows not yet
    sent are reported as ``not_sent`` with this reason."""


@dataclass
class Importer:
    client: ClueClient
    limits: Limits
    batch_size: int = MAX_BATCH
    progress: Callable[[int], None] = lambda n: None
    #: Round trips to ``POST /v1/reports`` (refused ones included).
    requests: int = 0

    def run(self, rows: Sequence[CsvRow]) -> tuple[list[Outcome], str | None]:
        """An outcome per row (in order), and why the import stopped early (or None)."""
        outcomes: list[Outcome | None] = [None] * len(rows)
        pending: list[int] = []
        for index, row in enumerate(rows):
            if row.item is None:
                outcomes[index] = Outcome("rejected", reason=row.error)
                continue
            reason = over_retention(row.item, self.limits)
            if reason is not None:
                outcomes[index] = Outcome("rejected", reason=reason)
                continue
            pending.append(index)
        self.progress(len(rows) - len(pending))
        stopped = None
        queue = deque(self._batches(rows, pending))
        try:
            while queue:
                batch = [i for i in queue.popleft() if outcomes[i] is None]
                if batch:
                    queue.extendleft(reversed(self._send(rows, batch, outcomes)))
        except ImportStopped as exc:
            stopped = str(exc)
        left = [i for i, o in enumerate(outcomes) if o is None]
        for index in left:
            outcomes[index] = Outcome("not_sent", reason=stopped)
        return [o for o in outcomes if o is not None], stopped

    def _batches(self, rows: Sequence[CsvRow], indexes: list[int]) -> list[list[int]]:
        most = min(self.batch_size, self.limits.max_batch_items)
        budget = self.limits.max_body_bytes - _BODY_MARGIN
        batches: list[list[int]] = []
        current: list[int] = []
        size = 0
        for index in indexes:
            item = rows[index].item
            assert item is not None
            cost = estimated_bytes(item)
            if current and (len(current) >= most or size + cost > budget):
                batches.append(current)
                current, size = [], 0
            current.append(index)
            size += cost
        if current:
            batches.append(current)
        return batches

    def _send(self, rows: Sequence[CsvRow], batch: list[int],
              outcomes: list[Outcome | None]) -> list[list[int]]:
        """Send one batch; return batches still to send (split or retried), else []."""
        items = [rows[i].item for i in batch]
        self.requests += 1
        try:
            reports = self.client.register_many(
                items, idempotency_key="clue-cli-" + secrets.token_hex(16))  # type: ignore[arg-type]
        except RateLimitedError as exc:
            raise ImportStopped(f"the daily registration quota is used up ({exc.detail}); "
                                "run the same import again after it resets: rows already "
                                "registered are skipped") from exc
        except ValidationError as exc:
            return self._refused(rows, batch, outcomes, exc)
        except ClueError as exc:
            raise ImportStopped(f"{exc}; run the same import again to continue: nothing is "
                                "registered twice") from exc
        for index, report in zip(batch, reports, strict=True):
            outcomes[index] = Outcome("created" if report.created else "existing", report.id)
        self.progress(len(batch))
        return []

    def _refused(self, rows: Sequence[CsvRow], batch: list[int],
                 outcomes: list[Outcome | None], exc: ValidationError) -> list[list[int]]:
        problem = exc.problem
        position = problem.get("index")
        if exc.status == 413 or not isinstance(position, int):
            if exc.status == 413 and len(batch) > 1:  # too big after all: halve it
                half = len(batch) // 2
                return [batch[:half], batch[half:]]
            if exc.status == 413:
                self._reject(outcomes, batch[0], "the row is too large for the server")
                return []
            raise ImportStopped(f"the server refused a batch: {exc.detail}") from exc
        if not 0 <= position < len(batch):
            raise ImportStopped(f"the server refused a batch: {exc.detail}") from exc
        index = batch[position]
        item = rows[index].item
        assert item is not None
        field_name, reason = str(problem.get("field", "")), str(problem.get("reason", ""))
        if field_name == "key_version":
            raise ImportStopped(f"the server refused the network-key version: {reason}; "
                                "fetch the current key (`clue keys network fetch`)") from exc
        learned = _BETWEEN.search(reason) if field_name == "expires_in_days" else None
        if learned is not None:
            # The council's maximum for this type, as the server just said: apply it to
            # every row still waiting instead of finding them one round trip each.
            self.limits.retention_days[item.id_type] = int(learned.group(1))
            for waiting, outcome in enumerate(outcomes):
                candidate = rows[waiting].item
                if outcome is None and candidate is not None:
                    why = over_retention(candidate, self.limits)
                    if why is not None:
                        self._reject(outcomes, waiting, why)
            if outcomes[index] is None:  # the server's rule and ours disagree: trust it
                self._reject(outcomes, index, f"{field_name} {reason}")
        else:
            self._reject(outcomes, index, f"refused by the server: {field_name} {reason}")
        return [[i for i in batch if outcomes[i] is None]]

    def _reject(self, outcomes: list[Outcome | None], index: int, reason: str) -> None:
        outcomes[index] = Outcome("rejected", reason=reason)
        self.progress(1)
