"""Registering, withdrawing, listing and purging reports."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session, aliased

from clue_client.private_lookups.entries import Answer
from clue_server.audit import services as audit
from clue_server.config import CATEGORIES, ID_TYPES, Settings
from clue_server.db import iso_utc, utcnow
from clue_server.errors import NotFound
from clue_server.keystore import ServerKeys
from clue_server.private import store as entries
from clue_server.reports import bulk
from clue_server.reports.models import Report
from clue_server.validation import (
    b64url,
    expect_choice,
    expect_int,
    expect_item,
    expect_list,
    expect_note,
    expect_object,
    expect_tokens,
    plausible_id,
    token_or_none,
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


_FIELDS = frozenset({"type", "category", "key_version", "token", "folded_token",
                     "expires_in_days", "note"})
_TYPES, _CATEGORIES = frozenset(ID_TYPES), frozenset(CATEGORIES)
_SEARCH_FIELDS = frozenset({"type", "key_version", "token", "folded_token"})


def parse_register_body(body: Any, settings: Settings,
                        retention: Mapping[str, int] | None = None) -> list[NewReport]:
    """Validate a whole batch before anything is written; the first bad item rejects it.

    ``retention`` is the council maximum per type in days (default: the environment's).
    """
    retention = retention or settings.max_retention_days
    root = expect_object(body, "", required={"reports"})
    items = expect_list(root["reports"], "/reports", max_items=settings.max_batch_items)
    return [_usual_item(raw, retention) or checked_item(raw, index, retention)
            for index, raw in enumerate(items)]


def _usual_item(raw: Any, retention: Mapping[str, int]) -> NewReport | None:
    """The usual, valid item in one pass; None for anything else (``checked_item`` then
    says exactly what is wrong). tests/unit/test_parse_fast_paths.py holds the two equal."""
    if type(raw) is not dict or not raw.keys() <= _FIELDS or "note" in raw:
        return None
    id_type, category = raw.get("type"), raw.get("category")
    version, days = raw.get("key_version"), raw.get("expires_in_days")
    token = token_or_none(raw.get("token"))
    folded_text = raw.get("folded_token")
    folded = token_or_none(folded_text) if folded_text is not None else None
    if (type(id_type) is str and id_type in _TYPES and type(category) is str
            and category in _CATEGORIES and type(version) is int
            and 1 <= version <= MAX_KEY_VERSION and token is not None
            and ((days is None and "expires_in_days" not in raw)
                 or (type(days) is int and 1 <= days <= retention[id_type]))
            and ((folded_text is None and "folded_token" not in raw)
                 or (folded is not None and id_type == "email"))):
        return NewReport(id_type, category, version, token, folded,
                         retention[id_type] if days is None else days)
    return None


def checked_item(raw: Any, index: int, retention: Mapping[str, int]) -> NewReport:
    """One item, every rule checked in turn, the first one broken named in the error."""
    pointer = "/reports"
    raw = expect_item(raw, pointer, index, allowed=_FIELDS,
                      required=("type", "category", "key_version", "token"))
    id_type = expect_choice(raw, "type", pointer, index, ID_TYPES)
    category = expect_choice(raw, "category", pointer, index, CATEGORIES)
    key_version = expect_int(raw, "key_version", pointer, index, minimum=1,
                             maximum=MAX_KEY_VERSION)
    token, folded = expect_tokens(raw, pointer, index, id_type)
    maximum = retention[id_type]
    days = maximum
    if "expires_in_days" in raw:
        days = expect_int(raw, "expires_in_days", pointer, index, minimum=1, maximum=maximum)
    note = expect_note(raw, pointer, index) if "note" in raw else None
    return NewReport(id_type, category, key_version, token, folded, days, note)


def new_report_id(now: dt.datetime, position: int = 0, random_hex: str | None = None) -> str:
    # Time-ordered, then by position in the batch (which shares one ``now``), so
    # listing by id lists in registration order.
    return (f"r_{int(now.timestamp() * 1000):012x}{position:04x}"
            f"{random_hex or secrets.token_hex(8)}")


def register(session: Session, member_id: str, reports: Sequence[NewReport],
             server_keys: ServerKeys, *, now: dt.datetime
             ) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Store a batch in the session's transaction (the caller counts, audits and commits).

    A report the member already has is returned, not duplicated, so re-running an
    import is safe. Returns the per-item answers and how many reports of each type were
    created. Plain rows through one ``INSERT .. ON CONFLICT DO NOTHING RETURNING``: the
    ORM's unit of work is not the tool for a thousand rows.
    """
    conn = session.connection()
    pepper = server_keys.peppers.current.version
    oprf = server_keys.oprf_version
    hashes = [server_keys.token_hashes(new.token) for new in reports]
    known = bulk.existing(conn, member_id, [h for hs in hashes for h in hs])
    expired = [row.id for row in known.values() if row.expires_at <= now]
    if expired:
        gone = entries.entries_of_reports(session, expired)
        conn.execute(delete(Report).where(Report.id.in_(expired)))
        entries.refresh_all(session, gone, now)
        known = {k: row for k, row in known.items() if row.expires_at > now}
    answers: list[Any] = []
    attach: dict[str, entries.Made] = {}
    made_of: dict[tuple[str, str, bytes], entries.Made] = {}
    fresh: dict[tuple[str, str, bytes], dict[str, Any]] = {}
    days_of: dict[tuple[str, str, bytes], int] = {}
    expiry = {days: now + dt.timedelta(days=days) for days in
              {new.expires_in_days for new in reports}}
    # Each id ends in 8 random bytes: drawn for the whole batch at once.
    random_hex = secrets.token_hex(8 * len(reports))
    stamp = f"r_{int(now.timestamp() * 1000):012x}"
    for position, (new, token_hashes) in enumerate(zip(reports, hashes, strict=True)):
        existing = next((known[(new.id_type, new.category, h)] for h in token_hashes
                         if (new.id_type, new.category, h) in known), None)
        if existing is not None:
            answers.append(existing)
            if oprf is not None and existing.oprf_version != oprf and existing.id not in attach:
                # Stored before the OPRF key existed (or under an older one): registering
                # it again is how it gets its entry (runbook, "Moving to private look-ups").
                made = entries.make_entries(server_keys, new.id_type, new.token,
                                            new.folded_token)
                if made is not None:
                    attach[existing.id] = made
            continue
        key = (new.id_type, new.category, token_hashes[0])
        if key not in fresh:
            made = entries.make_entries(server_keys, new.id_type, new.token, new.folded_token)
            if made is not None:
                made_of[key] = made
            days_of[key] = new.expires_in_days
            fresh[key] = {
                "id": f"{stamp}{position:04x}{random_hex[16 * position:16 * position + 16]}",
                "member_id": member_id,
                "id_type": new.id_type, "category": new.category,
                "key_version": new.key_version, "pepper_version": pepper,
                "token_hash": token_hashes[0],
                "folded_hash": (server_keys.token_hash(new.folded_token)
                                if new.folded_token else None),
                "created_at": now, "expires_at": expiry[new.expires_in_days],
                "note": new.note,
                "oprf_version": made.oprf_version if made else None,
                "entry_id": made.entry.entry_id if made else None,
                "folded_entry_id": made.folded.entry_id if made and made.folded else None}
        answers.append(key)
    created_ids = bulk.insert(conn, list(fresh.values()), member_id=member_id,
                              pepper_version=pepper, created_at=now,
                              expires_in_days=[days_of[k] for k in fresh])
    lost = [k for k, row in fresh.items() if row["id"] not in created_ids]
    if lost:  # a concurrent request of the same member stored these first
        known.update(bulk.existing(conn, member_id, [k[2] for k in lost]))
    _update_entries(session, attach, [(made_of[k], row["category"]) for k, row in fresh.items()
                                      if k in made_of and row["id"] in created_ids], now)
    iso = _IsoCache()
    results: list[dict[str, Any]] = []
    created: Counter[str] = Counter()
    seen: set[str] = set()
    for answer in answers:
        if not isinstance(answer, bulk.Existing):  # the key of a row meant to be new
            row = fresh[answer]
            if row["id"] in created_ids:
                first = row["id"] not in seen
                seen.add(row["id"])
                if first:
                    created[row["id_type"]] += 1
                results.append(_report_json(row, now, created=first, iso=iso))
                continue
            answer = known[answer]
        row = answer._asdict()
        if answer.id in attach:  # it has just been given its entry
            made = attach[answer.id]
            row.update(oprf_version=made.oprf_version, entry_id=made.entry.entry_id,
                       folded_entry_id=made.folded.entry_id if made.folded else None)
        results.append(_report_json(row, now, created=False, iso=iso))
    if created_ids:
        ordered = sorted(created_ids)
        audit.record(session, actor=member_id, action="report.register",
                     subject=ordered[0] if len(ordered) == 1 else f"{len(ordered)} reports",
                     **batch_digest(ordered))
    return results, created


def _update_entries(session: Session, attach: dict[str, Any], created: list[Any],
                    now: dt.datetime) -> None:
    """Create or reseal the entries of a registration's new and re-registered reports."""
    if not attach and not created:
        return
    # Reports moving from an older OPRF key leave its entries: reseal or tombstone them.
    left = entries.entries_of_reports(session, attach)
    entries.attach(session, attach)
    entries.refresh_all(session, left, now)
    made = [*attach.values(), *(m for m, _ in created)]
    # A new entry's answer, if no report of another member (or an older one of this
    # member) shares it, is just this batch's reports: one reporter, today.
    categories: dict[bytes, set[str]] = {}
    for m, category in created:
        for entry_id in m.new_entries():
            categories.setdefault(entry_id, set()).add(category)
    for m in attach.values():
        for entry_id in m.new_entries():
            categories.pop(entry_id, None)
    fresh = {entry_id: Answer.of(found, 1, now.date(), now.date())
             for entry_id, found in categories.items()}
    for version in {m.oprf_version for m in made}:
        new: dict[bytes, Any] = {}
        for m in made:
            if m.oprf_version == version:
                new.update(m.new_entries())
        entries.refresh(session, version, new.keys(), now, new=new, fresh=fresh)


def batch_digest(report_ids: Sequence[str]) -> dict[str, Any]:
    """What the audit log keeps of a registration: the count, the first and last id, and
    SHA-256 over the ids (sorted, one per line), not the list itself. An auditor holding
    the ids (``GET /v1/reports`` by the member, or the ``reports`` table) recomputes it."""
    return {"count": len(report_ids), "first_id": report_ids[0], "last_id": report_ids[-1],
            "report_ids_sha256": hashlib.sha256("\n".join(report_ids).encode()).hexdigest()}


class _IsoCache(dict[dt.datetime, str]):
    """``iso_utc`` of the few distinct times in one batch, each computed once."""

    def __missing__(self, value: dt.datetime) -> str:
        self[value] = text = iso_utc(value)
        return text


def withdraw(session: Session, member_id: str, report_id: str) -> None:
    report = session.get(Report, report_id) if plausible_id(report_id, 40) else None
    # Another member's report is answered exactly like a missing one.
    if report is None or report.member_id != member_id:
        raise NotFound(f"no report {report_id[:40]!r} of yours")
    touched = entries.entries_of_reports(session, [report.id])
    session.delete(report)
    session.flush()
    entries.refresh_all(session, touched, utcnow())
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
        raw = expect_item(raw, pointer, index, allowed=_SEARCH_FIELDS,
                          required=("type", "key_version", "token"))
        id_type = expect_choice(raw, "type", pointer, index, ID_TYPES)
        # Checked for its shape only: a report made under a since-retired version must
        # still be findable (to withdraw it), and hashes do not depend on the version.
        expect_int(raw, "key_version", pointer, index, minimum=1, maximum=MAX_KEY_VERSION)
        parsed.append(SearchItem(id_type, *expect_tokens(raw, pointer, index, id_type)))
    return parsed


def own_reports_query(member_id: str, hashes: Sequence[bytes]) -> Any:
    """The member's reports whose token or folded hash is one of ``hashes``: found by the
    hashes' indexes, the member tested after (a MATERIALIZED fence). With the member
    beside the hashes, PostgreSQL walked a member newer than its statistics report by
    report (``reports.bulk.existing`` says more)."""
    matched = (select(Report).where(or_(Report.token_hash.in_(hashes),
                                        Report.folded_hash.in_(hashes)))
               .cte("matched").prefix_with("MATERIALIZED"))
    own = aliased(Report, matched)
    return select(own).where(own.member_id == member_id)


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
        for report in session.scalars(own_reports_query(member_id, chunk)):
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
    touched = entries.entries_expiring(session, now)
    result = session.execute(delete(Report).where(Report.expires_at <= now))
    entries.refresh_all(session, touched, now)
    entries.purge_tombstones(session, now)
    count = int(result.rowcount or 0)  # type: ignore[attr-defined]
    audit.record(session, actor=actor, action="report.purge_expired", subject="reports",
                 count=count, before=now.isoformat())
    return count


def _report_json(report: Report | Mapping[str, Any], now: dt.datetime,
                 created: bool | None = None, iso: Mapping[dt.datetime, str] | None = None
                 ) -> dict[str, Any]:
    row: Mapping[str, Any] = (report if isinstance(report, Mapping) else
                              {c: getattr(report, c) for c in _JSON_FIELDS})
    iso = iso if iso is not None else _IsoCache()
    data: dict[str, Any] = {
        "id": row["id"],
        "type": row["id_type"],
        "category": row["category"],
        "key_version": row["key_version"],
        "created_at": iso[row["created_at"]],
        "expires_at": iso[row["expires_at"]],
        "expired": row["expires_at"] <= now,
        # Ciphertext only the reporter can open; the server cannot read it.
        "note": b64url(row["note"]) if row["note"] else None,
        # The council suspended it (its reporter missed a dispute deadline): it no
        # longer matches, and its owner must be able to see that.
        "suspended": row.get("suspended_at") is not None,
        "suspended_at": iso_utc(row["suspended_at"]) if row.get("suspended_at") else None,
        # Protocol v2: the report's entry (an e-mail's exact entry), so the member knows
        # which entries are its own (docs/private-lookups.md §5); None before it has one.
        "oprf_version": row.get("oprf_version"),
        "entry_id": b64url(row["entry_id"]) if row.get("entry_id") else None,
        "folded_entry_id": (b64url(row["folded_entry_id"]) if row.get("folded_entry_id")
                            else None),
    }
    if created is not None:
        data["created"] = created
    return data


_JSON_FIELDS = ("id", "id_type", "category", "key_version", "created_at", "expires_at", "note",
                "suspended_at", "oprf_version", "entry_id", "folded_entry_id")
