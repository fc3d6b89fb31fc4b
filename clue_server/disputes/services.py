"""Disputes: a data subject, through their provider (a member), contests reports on a token.

The filer never learns who reported; a reporter never learns who filed; the council
(``list_disputes``) sees both, the age and the deadline, and may suspend the reports of
reporters who stayed silent past it (``suspend_overdue``).

The API, the ``clue-server dispute`` commands and the web console all call these
functions; each takes the session and the time, and the caller commits.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from clue_server.audit import services as audit
from clue_server.config import ID_TYPES
from clue_server.db import iso_utc
from clue_server.disputes.models import ANSWERS, Dispute, DisputeReport
from clue_server.errors import BadRequest, NotFound, ValidationFailed
from clue_server.keystore import ServerKeys
from clue_server.members.models import Member
from clue_server.private import store as entries
from clue_server.quotas import settings as council
from clue_server.reports import services as reports
from clue_server.reports.models import Report
from clue_server.reports.services import MAX_KEY_VERSION
from clue_server.validation import (
    expect_choice,
    expect_int,
    expect_object,
    expect_token,
    plausible_id,
)

MAX_REASON_CHARS = 1000
T = TypeVar("T")
_CHUNK = 400


@dataclass(frozen=True)
class NewDispute:
    id_type: str
    key_version: int
    token: bytes
    folded_token: bytes | None
    reason: str


@dataclass(frozen=True)
class Answer:
    answer: str
    reason: str


# -- parsing ------------------------------------------------------------------------------


def parse_open_body(body: Any) -> NewDispute:
    root = expect_object(body, "", required={"type", "key_version", "token", "reason"},
                         optional={"folded_token"})
    id_type = _choice(root, "type")
    key_version = _int(root, "key_version")
    token = _token(root, "token")
    folded = None
    if "folded_token" in root:
        if id_type != "email":
            raise ValidationFailed("folded_token is only allowed for email",
                                   pointer="/folded_token")
        folded = _token(root, "folded_token")
    return NewDispute(id_type, key_version, token, folded, _reason(root))


def parse_answer_body(body: Any) -> Answer:
    root = expect_object(body, "", required={"answer", "reason"})
    value = root["answer"]
    if not isinstance(value, str):
        raise ValidationFailed("answer must be a string", pointer="/answer")
    if value not in ANSWERS:
        raise ValidationFailed(f"answer must be one of: {', '.join(ANSWERS)}",
                               pointer="/answer")
    return Answer(value, _reason(root))


def _choice(root: Any, field: str) -> str:
    return _single(expect_choice, root, field, ID_TYPES)


def _int(root: Any, field: str) -> int:
    return _single(expect_int, root, field, minimum=1, maximum=MAX_KEY_VERSION)


def _token(root: Any, field: str) -> bytes:
    return _single(expect_token, root, field)


def _single(check: Callable[..., T], root: Any, field: str, *args: Any, **kwargs: Any) -> T:
    """Run a batch-item validator on a top-level field; re-point its error at ``/field``."""
    try:
        return check(root, field, "", 0, *args, **kwargs)
    except (ValidationFailed, BadRequest) as exc:
        reason = exc.extra.get("reason", exc.detail)
        raise type(exc)(f"{field} {reason}", pointer=f"/{field}") from None


def _reason(root: Any) -> str:
    value = root["reason"]
    if not isinstance(value, str):
        raise ValidationFailed("reason must be a string", pointer="/reason")
    stripped = value.strip()
    if not 1 <= len(stripped) <= MAX_REASON_CHARS:
        raise ValidationFailed(f"reason must be 1 to {MAX_REASON_CHARS} characters "
                               f"(got {len(stripped)})", pointer="/reason")
    if any(ord(c) < 32 and c not in "\n\t" for c in stripped) or "\x7f" in stripped:
        raise ValidationFailed("reason must not contain control characters",
                               pointer="/reason")
    # json_body already refuses lone surrogates; a reason must be storable as UTF-8
    # whatever called this.
    if any("\ud800" <= c <= "\udfff" for c in stripped):
        raise ValidationFailed("reason must be valid Unicode (no lone surrogates)",
                               pointer="/reason")
    return stripped


# -- filing -----------------------------------------------------------------------------


def new_dispute_id(now: dt.datetime) -> str:
    return f"d_{int(now.timestamp() * 1000):012x}{secrets.token_hex(8)}"


class NothingToDispute(NotFound):
    """No active report matches: the caller's view keeps the count and audit row."""


class OnlyOwnReports(ValidationFailed):
    """Every matching report is the caller's: the caller's view keeps the count."""


def open_dispute(session: Session, member_id: str, new: NewDispute, server_keys: ServerKeys,
                 *, now: dt.datetime, count: Callable[[bool], None] = lambda _matched: None
                 ) -> tuple[dict[str, Any], bool]:
    """File a dispute; returns ``(answer, created)``.

    Routed to every active (unexpired, unsuspended) report of another member that matches
    the token (under any pepper) or, for e-mail, the folded token. The caller's own
    matching reports are not routed: it can withdraw them itself.

    Filing answers "is this token reported?", so it is counted like a look-up of one
    identifier whatever the outcome: ``count(matched)`` (the view's look-up counter,
    which raises 429 when the quota is used up) runs once the matching is done and
    before anything is written.
    A miss raises ``NothingToDispute`` (404) after an audit row (``dispute.no_match``,
    with the type and never the token); every report being the caller's own raises
    ``OnlyOwnReports`` (422). The view commits before either is sent.
    """
    hashes = server_keys.token_hashes(new.token)
    matches = [_Matched(r.id, r.member_id)
               for r in _active_matches(session, new, hashes, server_keys, now)]
    count(bool(matches))
    existing = session.scalars(select(Dispute).where(
        Dispute.opened_by == member_id, Dispute.status == "open",
        Dispute.id_type == new.id_type, Dispute.token_hash.in_(hashes))).first()
    if existing is not None:
        return _filed_json(session, existing), False
    if not matches:
        audit.record(session, actor=member_id, action="dispute.no_match", subject=member_id,
                     id_type=new.id_type)
        raise NothingToDispute("no active report matches this token; there is nothing to "
                               "dispute")
    routed = [r for r in matches if r.member_id != member_id]
    if not routed:
        own = [r.id for r in matches]
        raise OnlyOwnReports(
            f"every report matching this token is your own ({', '.join(own)}); withdraw "
            f"it instead of disputing it: `clue withdraw {' '.join(own)}` (in the API, "
            "DELETE /v1/reports/{id})", report_ids=own)
    days = council.dispute_deadline_days(session)
    dispute = Dispute(id=new_dispute_id(now), opened_by=member_id, id_type=new.id_type,
                      token_hash=hashes[0], pepper_version=server_keys.peppers.current.version,
                      reason=new.reason, status="open", opened_at=now,
                      deadline=now + dt.timedelta(days=days))
    session.add(dispute)
    session.flush()
    for report in routed:
        session.add(DisputeReport(dispute_id=dispute.id, report_id=report.id,
                                  reporter_id=report.member_id))
    session.flush()
    entries.refresh_all(session, entries.entries_of_reports(session, [r.id for r in routed]),
                        now)  # now disputed
    audit.record(session, actor=member_id, action="dispute.open", subject=dispute.id,
                 id_type=new.id_type, reports=len(routed),
                 reporters=len({r.member_id for r in routed}), deadline=iso_utc(dispute.deadline))
    return _filed_json(session, dispute), True


@dataclass(frozen=True)
class _Matched:
    id: str
    member_id: str


def _active_matches(session: Session, new: NewDispute, hashes: list[bytes],
                    server_keys: ServerKeys, now: dt.datetime) -> list[Report]:
    active = (Report.id_type == new.id_type, Report.expires_at > now,
              Report.suspended_at.is_(None))
    conditions = [Report.token_hash.in_(hashes)]
    if new.folded_token is not None:
        conditions.append(Report.folded_hash.in_(server_keys.token_hashes(new.folded_token)))
    found: dict[str, Report] = {}
    for condition in conditions:
        for report in session.scalars(select(Report).where(condition, *active)):
            found[report.id] = report
    return sorted(found.values(), key=lambda r: r.id)


def _filed_json(session: Session, dispute: Dispute) -> dict[str, Any]:
    count = len(session.scalars(select(DisputeReport.report_id).where(
        DisputeReport.dispute_id == dispute.id)).all())
    return {"id": dispute.id, "status": dispute.status, "deadline": iso_utc(dispute.deadline),
            "reports": count}


# -- the two sides ----------------------------------------------------------------------


def incoming(session: Session, member_id: str) -> list[dict[str, Any]]:
    """Open disputes routed to ``member_id``: its own affected reports and answers, and
    never who filed. Also the expired ones whose deadline it missed while a report the
    council suspended for it is still there: the owner must see why it stopped matching."""
    suspended_here = and_(Dispute.status == "expired", DisputeReport.answer.is_(None),
                          Report.suspended_at.is_not(None))
    rows = session.execute(
        select(Dispute, DisputeReport, Report.suspended_at)
        .join(DisputeReport, DisputeReport.dispute_id == Dispute.id)
        .outerjoin(Report, Report.id == DisputeReport.report_id)
        .where(DisputeReport.reporter_id == member_id,
               or_(Dispute.status == "open", suspended_here))
        .order_by(Dispute.opened_at, Dispute.id, DisputeReport.report_id)).all()
    answers: dict[str, dict[str, Any]] = {}
    for dispute, routed, suspended_at in rows:
        entry = answers.setdefault(dispute.id, {
            "id": dispute.id, "type": dispute.id_type, "status": dispute.status,
            "reason": dispute.reason, "opened_at": iso_utc(dispute.opened_at),
            "deadline": iso_utc(dispute.deadline), "reports": []})
        entry["reports"].append({
            "id": routed.report_id, "answer": routed.answer,
            "answer_reason": routed.answer_reason,
            "answered_at": iso_utc(routed.answered_at) if routed.answered_at else None,
            "suspended_at": iso_utc(suspended_at) if suspended_at else None})
    return list(answers.values())


def outgoing(session: Session, member_id: str) -> list[dict[str, Any]]:
    """Disputes ``member_id`` filed, with answer counts and never who answered."""
    disputes = session.scalars(select(Dispute).where(Dispute.opened_by == member_id)
                               .order_by(Dispute.opened_at, Dispute.id)).all()
    counts = _answer_counts(session, [d.id for d in disputes])
    return [{"id": d.id, "type": d.id_type, "status": d.status, "reason": d.reason,
             "opened_at": iso_utc(d.opened_at), "deadline": iso_utc(d.deadline),
             "closed_at": iso_utc(d.closed_at) if d.closed_at else None,
             "answers": counts.get(d.id, {"withdraw": 0, "uphold": 0, "pending": 0})}
            for d in disputes]


def _answer_counts(session: Session, dispute_ids: list[str]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"withdraw": 0, "uphold": 0,
                                                             "pending": 0})
    for start in range(0, len(dispute_ids), _CHUNK):
        chunk = dispute_ids[start:start + _CHUNK]
        for dispute_id, answer in session.execute(
                select(DisputeReport.dispute_id, DisputeReport.answer)
                .where(DisputeReport.dispute_id.in_(chunk))):
            counts[dispute_id][answer or "pending"] += 1
    return dict(counts)


def answer(session: Session, member_id: str, dispute_id: str, given: Answer, *,
           now: dt.datetime) -> dict[str, Any]:
    """Answer for all of the caller's reports in the dispute; ``withdraw`` withdraws them."""
    dispute = session.get(Dispute, dispute_id) if plausible_id(dispute_id, 40) else None
    mine = [] if dispute is None else list(session.scalars(select(DisputeReport).where(
        DisputeReport.dispute_id == dispute_id, DisputeReport.reporter_id == member_id)))
    # A dispute not routed to the caller is answered exactly like a missing one.
    if dispute is None or not mine:
        raise NotFound(f"no dispute {dispute_id[:40]!r} routed to you")
    if dispute.status != "open":
        raise ValidationFailed(f"dispute {dispute.id} is {dispute.status}; it takes no answers")
    pending = [row for row in mine if row.answer is None]
    if not pending:
        raise ValidationFailed(f"you already answered dispute {dispute.id}")
    withdrawn = []
    for row in pending:
        row.answer, row.answer_reason, row.answered_at = given.answer, given.reason, now
        if given.answer == "withdraw" and session.get(Report, row.report_id) is not None:
            reports.withdraw(session, member_id, row.report_id)  # audited there
            withdrawn.append(row.report_id)
    session.flush()
    left = session.scalars(select(DisputeReport.report_id).where(
        DisputeReport.dispute_id == dispute.id, DisputeReport.answer.is_(None))).first()
    if left is None:
        dispute.status, dispute.closed_at = "resolved", now
        session.flush()  # no longer disputed: reseal what is left of its reports
        entries.refresh_all(session, entries.entries_of_reports(session, session.scalars(
            select(DisputeReport.report_id).where(DisputeReport.dispute_id == dispute.id))),
            now)
    audit.record(session, actor=member_id, action="dispute.answer", subject=dispute.id,
                 answer=given.answer, reports=[r.report_id for r in pending],
                 withdrawn=withdrawn, status=dispute.status)
    return {"id": dispute.id, "answer": given.answer,
            "reports": [r.report_id for r in pending], "status": dispute.status}


def disputed_report_ids(session: Session, report_ids: Iterable[str]) -> set[str]:
    """Of ``report_ids``, those an open dispute covers (what lookups call ``disputed``)."""
    ids = list(report_ids)
    found: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        found.update(session.scalars(
            select(DisputeReport.report_id).join(Dispute, Dispute.id == DisputeReport.dispute_id)
            .where(DisputeReport.report_id.in_(chunk), Dispute.status == "open")))
    return found


# -- the council --------------------------------------------------------------------------


def list_disputes(session: Session, now: dt.datetime, include_closed: bool = False
                  ) -> list[dict[str, Any]]:
    """Every open dispute (and closed ones when asked), oldest first, for the council.

    Each entry::

        {"id": "d_...", "type": "phone", "status": "open" | "resolved" | "expired",
         "opened_by": "m_...", "opened_by_name": "Example Pay", "reason": "...",
         "opened_at": datetime, "deadline": datetime, "closed_at": datetime | None,
         "age_days": int,            # whole days since opened (until closed, if closed)
         "overdue": bool,            # open, past the deadline, some answer still pending
         "answers": [                # one per reporter, sorted by member id
             {"reporter_id": "m_...", "reporter_name": "...", "report_ids": ["r_...", ...],
              "answer": "withdraw" | "uphold" | None, "answer_reason": str | None,
              "answered_at": datetime | None, "suspended": int}]}   # reports suspended

    Times are aware UTC datetimes (the CLI and console format them).
    """
    query = select(Dispute).order_by(Dispute.opened_at, Dispute.id)
    if not include_closed:
        query = query.where(Dispute.status == "open")
    disputes = session.scalars(query).all()
    names = dict(session.execute(select(Member.id, Member.name)).all())
    routed: dict[str, list[DisputeReport]] = defaultdict(list)
    ids = [d.id for d in disputes]
    for start in range(0, len(ids), _CHUNK):
        for row in session.scalars(select(DisputeReport).where(
                DisputeReport.dispute_id.in_(ids[start:start + _CHUNK]))):
            routed[row.dispute_id].append(row)
    report_ids = [row.report_id for rows in routed.values() for row in rows]
    suspended = _suspended(session, report_ids)
    result = []
    for dispute in disputes:
        per_reporter: dict[str, dict[str, Any]] = {}
        for row in sorted(routed[dispute.id], key=lambda r: (r.reporter_id, r.report_id)):
            entry = per_reporter.setdefault(row.reporter_id, {
                "reporter_id": row.reporter_id, "reporter_name": names.get(row.reporter_id),
                "report_ids": [], "answer": row.answer, "answer_reason": row.answer_reason,
                "answered_at": row.answered_at, "suspended": 0})
            entry["report_ids"].append(row.report_id)
            entry["suspended"] += row.report_id in suspended
        pending = any(e["answer"] is None for e in per_reporter.values())
        end = dispute.closed_at or now
        result.append({
            "id": dispute.id, "type": dispute.id_type, "status": dispute.status,
            "opened_by": dispute.opened_by, "opened_by_name": names.get(dispute.opened_by),
            "reason": dispute.reason, "opened_at": dispute.opened_at,
            "deadline": dispute.deadline, "closed_at": dispute.closed_at,
            "age_days": max(0, (end - dispute.opened_at).days),
            "overdue": dispute.status == "open" and dispute.deadline <= now and pending,
            "answers": list(per_reporter.values())})
    return result


def _suspended(session: Session, report_ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(report_ids), _CHUNK):
        found.update(session.scalars(select(Report.id).where(
            Report.id.in_(report_ids[start:start + _CHUNK]), Report.suspended_at.is_not(None))))
    return found


def suspend_overdue(session: Session, now: dt.datetime, actor: str,
                    dispute_id: str | None = None) -> int:
    """For open disputes past their deadline (or the one named): suspend the reports of
    reporters that did not answer, and mark the dispute ``expired``. Returns the number
    of reports suspended. Naming a dispute that is not open and overdue raises
    ``NotFound`` / ``ValidationFailed``."""
    query = select(Dispute).where(Dispute.status == "open", Dispute.deadline <= now)
    if dispute_id is not None:
        named = session.get(Dispute, dispute_id) if plausible_id(dispute_id, 40) else None
        if named is None:
            raise NotFound(f"no dispute {dispute_id[:40]!r}")
        if named.status != "open" or named.deadline > now:
            raise ValidationFailed(f"dispute {named.id} is {named.status}, deadline "
                                   f"{iso_utc(named.deadline)}: not overdue")
        query = query.where(Dispute.id == dispute_id)
    total = 0
    for dispute in session.scalars(query.order_by(Dispute.opened_at, Dispute.id)).all():
        silent = list(session.scalars(select(DisputeReport).where(
            DisputeReport.dispute_id == dispute.id, DisputeReport.answer.is_(None))))
        suspended = []
        for row in silent:
            report = session.get(Report, row.report_id)
            if report is not None and report.suspended_at is None:
                report.suspended_at = now
                suspended.append(report.id)
        dispute.status, dispute.closed_at = "expired", now
        session.flush()  # suspended, and the rest no longer disputed: reseal
        entries.refresh_all(session, entries.entries_of_reports(
            session, [r.report_id for r in silent] + list(session.scalars(
                select(DisputeReport.report_id).where(
                    DisputeReport.dispute_id == dispute.id)))), now)
        total += len(suspended)
        audit.record(session, actor=actor, action="dispute.suspend_overdue", subject=dispute.id,
                     count=len(suspended), report_ids=suspended,
                     reporters=sorted({r.reporter_id for r in silent}))
    session.flush()
    return total


def purge_with_expired_reports(session: Session, *, now: dt.datetime,
                               actor: str = "council") -> int:
    """Delete the disputes whose every routed report is gone or about to be purged as
    expired. Call it before the expired reports are deleted (``reports.purge_expired``
    does); returns how many disputes went."""
    touched = set(session.scalars(
        select(DisputeReport.dispute_id).join(Report, Report.id == DisputeReport.report_id)
        .where(Report.expires_at <= now)))
    gone = []
    for dispute_id in sorted(touched):
        alive = session.scalars(
            select(Report.id).join(DisputeReport, DisputeReport.report_id == Report.id)
            .where(DisputeReport.dispute_id == dispute_id, Report.expires_at > now)).first()
        if alive is None:
            gone.append(dispute_id)
    for start in range(0, len(gone), _CHUNK):
        chunk = gone[start:start + _CHUNK]
        session.execute(delete(DisputeReport).where(DisputeReport.dispute_id.in_(chunk)))
        session.execute(delete(Dispute).where(Dispute.id.in_(chunk)))
    if gone:
        audit.record(session, actor=actor, action="dispute.purge_expired", subject="disputes",
                     count=len(gone), before=now.isoformat())
    return len(gone)
