"""What the SDK returns: frozen dataclasses, safe to cache and compare."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LookupResult:
    """The answer for one identifier.

    ``match`` is ``"exact"`` or ``"folded"`` (e-mail only: the folded form, with
    ``+tag`` and gmail dots removed, matched but the exact address did not), or
    ``None`` when nothing matched. ``reporters`` counts distinct members; who
    they are is never disclosed.
    """

    id_type: str
    matched: bool
    match: str | None = None
    categories: tuple[str, ...] = ()
    reporters: int = 0
    first_reported: dt.date | None = None
    last_reported: dt.date | None = None
    reported_by_me: bool = False
    #: An open dispute (a data subject contests it) covers a matching report.
    disputed: bool = False
    value: str = field(default="", repr=False, compare=False)

    @classmethod
    def from_json(cls, id_type: str, data: dict[str, Any], value: str = "") -> LookupResult:
        return cls(
            id_type=id_type,
            matched=bool(data["matched"]),
            match=data.get("match"),
            categories=tuple(data.get("categories", ())),
            reporters=int(data.get("reporters", 0)),
            first_reported=_date(data.get("first_reported")),
            last_reported=_date(data.get("last_reported")),
            reported_by_me=bool(data.get("reported_by_me", False)),
            disputed=bool(data.get("disputed", False)),
            value=value,
        )

    def merge(self, other: LookupResult) -> LookupResult:
        """Combine the answers for one identifier under two network-key versions."""
        if not other.matched:
            return self
        if not self.matched:
            return other
        firsts = [d for d in (self.first_reported, other.first_reported) if d]
        lasts = [d for d in (self.last_reported, other.last_reported) if d]
        return LookupResult(
            id_type=self.id_type, matched=True,
            match="exact" if "exact" in (self.match, other.match) else "folded",
            categories=tuple(sorted(set(self.categories) | set(other.categories))),
            # Reporters under two versions may overlap; the larger count is a safe lower bound.
            reporters=max(self.reporters, other.reporters),
            first_reported=min(firsts) if firsts else None,
            last_reported=max(lasts) if lasts else None,
            reported_by_me=self.reported_by_me or other.reported_by_me,
            disputed=self.disputed or other.disputed,
            value=self.value,
        )


@dataclass(frozen=True)
class Report:
    """One of the member's own reports as the server holds it (no identifier: only tokens)."""

    id: str
    id_type: str
    category: str
    key_version: int
    created_at: dt.datetime
    expires_at: dt.datetime
    expired: bool = False
    created: bool | None = None
    #: The report's note, opened locally with the member's notes key (None if none).
    note: str | None = None
    #: When the council suspended it (its reporter missed a dispute deadline): it no
    #: longer matches. None if it is not suspended.
    suspended_at: dt.datetime | None = None

    @property
    def suspended(self) -> bool:
        return self.suspended_at is not None

    @classmethod
    def from_json(cls, data: dict[str, Any], note: str | None = None) -> Report:
        suspended_at = data.get("suspended_at")
        return cls(
            id=data["id"], id_type=data["type"], category=data["category"],
            key_version=int(data["key_version"]),
            created_at=_datetime(data["created_at"]), expires_at=_datetime(data["expires_at"]),
            expired=bool(data.get("expired", False)), created=data.get("created"), note=note,
            suspended_at=_datetime(suspended_at) if suspended_at else None,
        )


@dataclass(frozen=True)
class ReportInput:
    """One identifier to register."""

    id_type: str
    value: str
    category: str
    expires_in_days: int | None = None
    #: Free text only this member can read back (sealed locally; the server sees ciphertext).
    note: str | None = None


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _datetime(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
