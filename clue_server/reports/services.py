"""Registering, withdrawing, listing and purging reports."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from clue_server.audit import services as audit
from clue_server.config import CATEGORIES, ID_TYPES, Settings
from clue_server.db import iso_utc
from clue_server.errors import NotFound
from clue_server.keystore import ServerKeys
from clue_server.reports.models import Report
from clue_server.validation import (
    b64url,
    expect_choice,
    expect_int,
    expect_list,
    expect_note,
    expect_object,
    expect_token,
    item_error,
    plausible_id,
)

MAX_KEY_VERSION = 1_000_000


@dataclass(frozen=True)
class NewReport:
    id_type: str
    category: str
    key_version: int
    token: bytes
    folded_token: bytes | None
    expires_in_days: int
    note: bytes | None = None


def parse_register_body(body: Any, settings: Settings,
                        retention: Mapping[str, int] | None = None) -> list[NewReport]:
    """Validate a whole batch before anything is written; the first bad item rejects it.

    ``retention`` is the council maximum per type in days (default: the environment's).
    """
    retention = retention or settings.max_retention_days
    root = expect_object(body, "", required={"reports"})
    items = expect_list(root["reports"], "/reports", max_items=settings.max_batch_items)
    parsed = []
    for index, raw in enumerate(items):
        pointer = "/reports"
        if not isinstance(raw, dict):
            raise item_error(pointer, index, "item", "must be an object", structural=True)
        unknown = sorted(set(raw) - {"type", "category", "key_version", "token", "folded_token",
                                     "expires_in_days", "note"})
        if unknown:
            raise item_error(pointer, index, unknown[0], "is not a known field", structural=True)
        for field in ("type", "category", "key_version", "token"):
            if field not in raw:
                raise item_error(pointer, index, field, "is required", structural=True)
        id_type = expect_choice(raw, "type", pointer, index, ID_TYPES)
        category = expect_choice(raw, "category", pointer, index, CATEGORIES)
        key_version = expect_int(raw, "key_version", pointer, index, minimum=1,
                                 maximum=MAX_KEY_VERSION)
        token = expect_token(raw, "token", pointer, index)
        folded = None
        if "folded_token" in raw:
            if id_type != "email":
                raise item_error(pointer, index, "folded_token", "is only allowed for email")
            folded = expect_token(raw, "folded_token", pointer, index)
        maximum = retention[id_type]
        days = maximum
        if "expires_in_days" in raw:
            days = expect_int(raw, "expires_in_days", pointer, index, minimum=1, maximum=maximum)
        note = expect_note(raw, pointer, index) if "note" in raw else None
        parsed.append(NewReport(id_type, category, key_version, token, folded, days, note))
    return parsed


def new_report_id(now: dt.datetime, position: int = 0) -> str:
    # Time-ordered, then by position in the batch (which shares one ``now``), so
    # listing by id lists in registration order.
    return f"r_{int(now.timestamp() * 1000):012x}{position:04x}{secrets.token_hex(8)}"


def register(session: Session, member_id: str, reports: Sequence[NewReport],
             server_keys: ServerKeys, *, now: dt.datetime) -> list[dict[str, Any]]:
    """Store a batch (the caller commits). A report the member already has is returned, not
    duplicated, so re-running an import is safe."""
    results: list[dict[str, Any]] = []
    created_ids = []
    hashes = [server_keys.token_hashes(new.token) for new in reports]
    known = _existing(session, member_id, [h for hs in hashes for h in hs])
    for position, (new, token_hashes) in enumerate(zip(reports, hashes, strict=True)):
        existing = next((known[(new.id_type, new.category, h)] for h in token_hashes
                         if (new.id_type, new.category, h) in known), None)
        if existing is not None and existing.expires_at <= now:
            session.delete(existing)
            session.flush()
            existing = None
        if existing is not None:
            results.append(_report_json(existing, now, created=False))
            continue
        report = Report(
            id=new_report_id(now, position), member_id=member_id, id_type=new.id_type,
            category=new.category, key_version=new.key_version,
            pepper_version=server_keys.peppers.current.version,
            token_hash=token_hashes[0],
            folded_hash=server_keys.token_hash(new.folded_token) if new.folded_token else None,
            created_at=now, expires_at=now + dt.timedelta(days=new.expires_in_days),
            note=new.note)
        session.add(report)
        known[(new.id_type, new.category, token_hashes[0])] = report
        created_ids.append(report.id)
        results.append(_report_json(report, now, created=True))
    session.flush()
    if created_ids:
        subject = created_ids[0] if len(created_ids) == 1 else f"{len(created_ids)} reports"
        audit.record(session, actor=member_id, action="report.register", subject=subject,
                     report_ids=created_ids)
    return results


def _existing(session: Session, member_id: str, hashes: list[bytes]
              ) -> dict[tuple[str, str, bytes], Report]:
    found: dict[tuple[str, str, bytes], Report] = {}
    for start in range(0, len(hashes), 500):
        chunk = hashes[start:start + 500]
        for report in session.scalars(select(Report).where(Report.member_id == member_id,
                                                           Report.token_hash.in_(chunk))):
            found[(report.id_type, report.category, report.token_hash)] = report
    return found


def withdraw(session: Session, member_id: str, report_id: str) -> None:
    report = session.get(Report, report_id) if plausible_id(report_id, 40) else None
    # Another member's report is answered exactly like a missing one.
    if report is None or report.member_id != member_id:
        raise NotFound(f"no report {report_id[:40]!r} of yours")
    session.delete(report)
    audit.record(session, actor=member_id, action="report.withdraw", subject=report_id,
                 id_type=report.id_type, category=report.category)


def list_reports(session: Session, member_id: str, *, after: str | None, limit: int,
                 now: dt.datetime) -> tuple[list[dict[str, Any]], str | None]:
    query = select(Report).where(Report.member_id == member_id).order_by(Report.id).limit(limit + 1)
    if after:
        query = query.where(Report.id > after)
    rows = list(session.scalars(query))
    page, more = rows[:limit], len(rows) > limit
    return [_report_json(r, now) for r in page], (page[-1].id if more else None)


@dataclass(frozen=True)
class SearchItem:
    id_type: str
    token: bytes
    folded_token: bytes | None


def parse_search_body(body: Any, settings: Settings) -> list[SearchItem]:
    """``{"items": [{type, key_version, token, folded_token?}]}``, checked like a look-up.

    Tokens travel in the body, never in the URL: access logs keep URLs.
    """
    root = expect_object(body, "", required={"items"})
    items = expect_list(root["items"], "/items", max_items=settings.max_batch_items)
    parsed = []
    for index, raw in enumerate(items):
        pointer = "/items"
        if not isinstance(raw, dict):
            raise item_error(pointer, index, "item", "must be an object", structural=True)
        unknown = sorted(set(raw) - {"type", "key_version", "token", "folded_token"})
        if unknown:
            raise item_error(pointer, index, unknown[0], "is not a known field", structural=True)
        for field in ("type", "key_version", "token"):
            if field not in raw:
                raise item_error(pointer, index, field, "is required", structural=True)
        id_type = expect_choice(raw, "type", pointer, index, ID_TYPES)
        # Checked for its shape only: a report made under a since-retired version must
        # still be findable (to withdraw it), and hashes do not depend on the version.
        expect_int(raw, "key_version", pointer, index, minimum=1, maximum=MAX_KEY_VERSION)
        token = expect_token(raw, "token", pointer, index)
        folded = None
        if "folded_token" in raw:
            if id_type != "email":
                raise item_error(pointer, index, "folded_token", "is only allowed for email")
            folded = expect_token(raw, "folded_token", pointer, index)
        parsed.append(SearchItem(id_type, token, folded))
    return parsed


def search_own(session: Session, member_id: str, items: Sequence[SearchItem],
               server_keys: ServerKeys, *, now: dt.datetime) -> list[dict[str, Any]]:
    """For each item, the caller's own reports of that type whose token (``exact``) or,
    for e-mail, folded token (``folded``) matches, under any pepper version.

    Expired (not yet purged) and suspended reports are included, flagged: the owner
    looks for them to withdraw them. Nobody else's report is ever read.
    """
    exact_of: dict[bytes, list[int]] = {}
    folded_of: dict[bytes, list[int]] = {}
    for index, item in enumerate(items):
        for h in server_keys.token_hashes(item.token):
            exact_of.setdefault(h, []).append(index)
        if item.folded_token is not None:
            for h in server_keys.token_hashes(item.folded_token):
                folded_of.setdefault(h, []).append(index)
    exact: list[dict[str, Report]] = [{} for _ in items]
    folded: list[dict[str, Report]] = [{} for _ in items]
    hashes = list({*exact_of, *folded_of})
    for start in range(0, len(hashes), 400):
        chunk = hashes[start:start + 400]
        for report in session.scalars(select(Report).where(
                Report.member_id == member_id,
                or_(Report.token_hash.in_(chunk), Report.folded_hash.in_(chunk)))):
            for index in exact_of.get(report.token_hash, ()):
                if items[index].id_type == report.id_type:
                    exact[index][report.id] = report
            if report.folded_hash is not None:
                for index in folded_of.get(report.folded_hash, ()):
                    if items[index].id_type == report.id_type:
                        folded[index][report.id] = report
    return [{"exact": [_report_json(r, now) for _, r in sorted(exact[i].items())],
             "folded": [_report_json(r, now) for rid, r in sorted(folded[i].items())
                        if rid not in exact[i]]}
            for i in range(len(items))]


def purge_expired(session: Session, *, now: dt.datetime, actor: str = "council") -> int:
    from clue_server.disputes.services import purge_with_expired_reports  # (imports us)

    purge_with_expired_reports(session, now=now, actor=actor)  # audited there
    result = session.execute(delete(Report).where(Report.expires_at <= now))
    count = int(result.rowcount or 0)  # type: ignore[attr-defined]
    audit.record(session, actor=actor, action="report.purge_expired", subject="reports",
                 count=count, before=now.isoformat())
    return count


def _report_json(report: Report, now: dt.datetime, created: bool | None = None
                 ) -> dict[str, Any]:
    data: Mapping[str, Any] = {
        "id": report.id,
        "type": report.id_type,
        "category": report.category,
        "key_version": report.key_version,
        "created_at": iso_utc(report.created_at),
        "expires_at": iso_utc(report.expires_at),
        "expired": report.expires_at <= now,
        # Ciphertext only the reporter can open; the server cannot read it.
        "note": b64url(report.note) if report.note else None,
        # The council suspended it (its reporter missed a dispute deadline): it no
        # longer matches, and its owner must be able to see that.
        "suspended": report.suspended_at is not None,
        "suspended_at": iso_utc(report.suspended_at) if report.suspended_at else None,
    }
    return {**data, "created": created} if created is not None else dict(data)

