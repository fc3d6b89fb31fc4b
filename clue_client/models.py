"""What the SDK returns: frozen dataclasses, safe to cache and compare."""

from __future__ import annotations

import base64
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
        """Read one result of ``POST /v1/lookups``; TypeError/ValueError if malformed."""
        match = data.get("match")
        if match not in (None, "exact", "folded"):
            raise ValueError(f"unknown match {match!r}")
        return cls(
            id_type=id_type,
            matched=_bool(data["matched"]),
            match=match,
            categories=tuple(_str(c) for c in _list(data.get("categories", []))),
            reporters=_int(data.get("reporters", 0)),
            first_reported=_date(data.get("first_reported")),
            last_reported=_date(data.get("last_reported")),
            reported_by_me=_bool(data.get("reported_by_me", False)),
            disputed=_bool(data.get("disputed", False)),
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
    #: Protocol version 2: the OPRF key version of the report's entry, and the entry's
    #: 16-byte id (an e-mail: its exact entry; ``folded_entry_id`` its folded one), when
    #: the server computed one. A replica holder keeps these to say ``reported_by_me``
    #: locally.
    oprf_version: int | None = None
    entry_id: bytes | None = None
    folded_entry_id: bytes | None = None

    @property
    def suspended(self) -> bool:
        return self.suspended_at is not None

    @classmethod
    def from_json(cls, data: dict[str, Any], note: str | None = None) -> Report:
        created = data.get("created")
        suspended_at = data.get("suspended_at")
        entry_id = _entry_id(data.get("entry_id"))
        oprf_version = data.get("oprf_version")
        return cls(
            id=_str(data["id"]), id_type=_str(data["type"]), category=_str(data["category"]),
            key_version=_int(data["key_version"]),
            created_at=_datetime(data["created_at"]), expires_at=_datetime(data["expires_at"]),
            expired=_bool(data.get("expired", False)),
            created=None if created is None else _bool(created), note=note,
            suspended_at=_opt_datetime(suspended_at),
            oprf_version=None if oprf_version is None else _int(oprf_version),
            entry_id=entry_id, folded_entry_id=_entry_id(data.get("folded_entry_id")),
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


# -- disputes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FiledDispute:
    """A dispute this member filed (``open_dispute``): routed to ``reports`` reports of
    other members, who are never named; ``status`` is ``open`` until they all answer."""

    id: str
    status: str
    deadline: dt.datetime
    reports: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FiledDispute:
        return cls(id=_str(data["id"]), status=_str(data["status"]),
                   deadline=_datetime(data["deadline"]), reports=_int(data["reports"]))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "deadline": _iso(self.deadline),
                "reports": self.reports}


@dataclass(frozen=True)
class DisputedReport:
    """One of this member's own reports covered by an incoming dispute, and its answer.

    ``suspended_at``: when the council suspended the report because this member missed
    the dispute's deadline (it no longer matches); None if it is not suspended.
    """

    id: str
    answer: str | None = None
    answer_reason: str | None = None
    answered_at: dt.datetime | None = None
    suspended_at: dt.datetime | None = None

    @property
    def suspended(self) -> bool:
        return self.suspended_at is not None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DisputedReport:
        return cls(id=_str(data["id"]), answer=_opt_str(data.get("answer")),
                   answer_reason=_opt_str(data.get("answer_reason")),
                   answered_at=_opt_datetime(data.get("answered_at")),
                   suspended_at=_opt_datetime(data.get("suspended_at")))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "answer": self.answer, "answer_reason": self.answer_reason,
                "answered_at": _iso(self.answered_at), "suspended_at": _iso(self.suspended_at)}


@dataclass(frozen=True)
class IncomingDispute:
    """A dispute routed to this member's reports (the filer is never named).

    ``status`` is ``open`` while it waits for answers, or ``expired`` when its deadline
    passed without this member's answer and a report of this member was suspended.
    """

    id: str
    id_type: str
    reason: str
    opened_at: dt.datetime
    deadline: dt.datetime
    reports: tuple[DisputedReport, ...] = ()
    status: str = "open"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IncomingDispute:
        return cls(id=_str(data["id"]), id_type=_str(data["type"]), reason=_str(data["reason"]),
                   opened_at=_datetime(data["opened_at"]), deadline=_datetime(data["deadline"]),
                   reports=tuple(DisputedReport.from_json(r)
                                 for r in _list(data.get("reports", []))),
                   status=_str(data.get("status", "open")))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.id_type, "status": self.status,
                "reason": self.reason, "opened_at": _iso(self.opened_at),
                "deadline": _iso(self.deadline),
                "reports": [r.to_json() for r in self.reports]}


@dataclass(frozen=True)
class DisputeAnswers:
    """How the reports routed in a dispute were answered, counted (reporters unnamed)."""

    withdraw: int = 0
    uphold: int = 0
    pending: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DisputeAnswers:
        return cls(withdraw=_int(data.get("withdraw", 0)), uphold=_int(data.get("uphold", 0)),
                   pending=_int(data.get("pending", 0)))

    def to_json(self) -> dict[str, int]:
        return {"withdraw": self.withdraw, "uphold": self.uphold, "pending": self.pending}


@dataclass(frozen=True)
class OutgoingDispute:
    """A dispute this member filed, with the answers so far counted."""

    id: str
    id_type: str
    status: str
    reason: str
    opened_at: dt.datetime
    deadline: dt.datetime
    closed_at: dt.datetime | None = None
    answers: DisputeAnswers = field(default_factory=DisputeAnswers)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutgoingDispute:
        answers = data.get("answers", {})
        if not isinstance(answers, dict):
            raise TypeError("answers must be an object")
        return cls(id=_str(data["id"]), id_type=_str(data["type"]), status=_str(data["status"]),
                   reason=_str(data["reason"]), opened_at=_datetime(data["opened_at"]),
                   deadline=_datetime(data["deadline"]),
                   closed_at=_opt_datetime(data.get("closed_at")),
                   answers=DisputeAnswers.from_json(answers))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.id_type, "status": self.status,
                "reason": self.reason, "opened_at": _iso(self.opened_at),
                "deadline": _iso(self.deadline), "closed_at": _iso(self.closed_at),
                "answers": self.answers.to_json()}


@dataclass(frozen=True)
class DisputeAnswer:
    """This member's answer to a dispute: the reports it covered and the dispute's status
    (``resolved`` once every routed report is answered)."""

    id: str
    answer: str
    reports: tuple[str, ...]
    status: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DisputeAnswer:
        return cls(id=_str(data["id"]), answer=_str(data["answer"]),
                   reports=tuple(_str(r) for r in _list(data["reports"])),
                   status=_str(data["status"]))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "answer": self.answer, "reports": list(self.reports),
                "status": self.status}


# -- reading JSON strictly: a wrong type is a malformed answer, never coerced --------------------


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _int(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _date(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(_str(value)) if value else None


def _datetime(value: Any) -> dt.datetime:
    return dt.datetime.fromisoformat(_str(value).replace("Z", "+00:00"))


def _opt_datetime(value: Any) -> dt.datetime | None:
    return None if value is None else _datetime(value)


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.utcoffset() == dt.timedelta(0):
        return value.replace(tzinfo=None).isoformat() + "Z"
    return value.isoformat()


def _entry_id(value: Any) -> bytes | None:
    """A report's ``entry_id``: base64url of 16 bytes, or null."""
    if value is None:
        return None
    raw = base64.urlsafe_b64decode(_str(value) + "==")
    if len(raw) != 16 or base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != value:
        raise ValueError("entry_id is not the base64url of 16 bytes")
    return raw
