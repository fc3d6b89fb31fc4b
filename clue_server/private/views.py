"""Protocol version 2 endpoints (docs/private-lookups.md §6 and §7).

Authenticated and signed exactly like version 1 (``clue_server.api`` hangs this
blueprint under the same checks). Nothing here learns an identifier: an evaluation sees
a blinded element, a bucket request a short prefix, a replica request only a cursor.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from sqlalchemy import select

import keys
from clue_client.private_lookups.replica import Delta, encode_delta
from clue_client.protocol import b64url
from clue_server import db
from clue_server.config import ID_TYPES
from clue_server.errors import (
    BadRequest,
    CursorExpired,
    NotFound,
    PrefixBitsChanged,
    ValidationFailed,
)
from clue_server.hotpath import pg_placeholders
from clue_server.idempotency import run_once
from clue_server.keystore import ServerKeys
from clue_server.private.models import Entry
from clue_server.private.store import TOMBSTONE_HORIZON
from clue_server.quotas import settings as council
from clue_server.quotas.counters import add_usage
from clue_server.quotas.services import lookup_counter
from clue_server.validation import (
    expect_choice,
    expect_list,
    expect_object,
    item_error,
    json_body,
    token_or_none,
)

bp = Blueprint("v2", __name__, url_prefix="/v2")

MAX_PREFIXES = 100
#: A day's matches reported in one request, per type (a look-up quota is far below).
MAX_REPORTED_MATCHES = 10_000_000
MAX_REPLICA_PAGE = 100_000
REPLICA_CONTENT_TYPE = "application/vnd.clue.replica-delta"


def _keys() -> ServerKeys:
    server_keys: ServerKeys = current_app.extensions["clue_keys"]
    if server_keys.oprf_version is None:
        raise NotFound("this server has no OPRF key yet, so private look-ups (protocol v2) "
                       "are off: the council runs `clue-server oprf-key create`")
    return server_keys


def _settings() -> tuple[int, int]:
    loaded: tuple[int, int] = current_app.extensions["clue_private_settings"]()
    return loaded


def _version(root: Any, server_keys: ServerKeys, pointer: str = "/oprf_version") -> int:
    version = root["oprf_version"]
    if type(version) is not int:
        raise BadRequest("oprf_version must be an integer", pointer=pointer)
    if version not in server_keys.oprf_keys:
        held = ", ".join(map(str, sorted(server_keys.oprf_keys)))
        raise ValidationFailed(f"oprf_version {version} is not held by this server (it holds "
                               f"{held}); fetch GET /v2/config", pointer=pointer)
    return version


@bp.get("/config")
def config() -> dict[str, Any]:
    server_keys = _keys()
    prefix_bits, lookup_protocol = _settings()
    return {"oprf_version": server_keys.oprf_version,
            "oprf_versions": sorted(server_keys.oprf_keys), "prefix_bits": prefix_bits,
            "lookup_protocol": lookup_protocol,
            "v1_lookups": "retired" if current_app.extensions["clue_v1_retired"]() else "open",
            "max_items": current_app.extensions["clue_settings"].max_batch_items,
            "max_prefixes": MAX_PREFIXES}


@bp.post("/evaluations")
def evaluations() -> dict[str, Any]:
    """BlindEvaluate each blinded element; every item counts one look-up of its type."""
    server_keys = _keys()
    root = expect_object(json_body(request), "", required={"oprf_version", "items"})
    version = _version(root, server_keys)
    items = expect_list(root["items"], "/items",
                        max_items=current_app.extensions["clue_settings"].max_batch_items)
    types: Counter[str] = Counter()
    evaluated = []
    key = server_keys.oprf_keys[version]
    for index, raw in enumerate(items):
        item = expect_object(raw, f"/items/{index}", required={"type", "blinded"})
        types[expect_choice(item, "type", "/items", index, ID_TYPES)] += 1
        element = token_or_none(item["blinded"])
        if element is None:
            raise item_error("/items", index, "blinded",
                             "must be 32 bytes in unpadded base64url (43 characters)")
        try:
            evaluated.append(b64url(key.blind_evaluate(element)))
        except keys.OprfError:  # not a canonical group element, or the identity
            raise item_error("/items", index, "blinded",
                             "is not a valid ristretto255 element") from None
    # Counted (with the nonce claimed in the same step) only once the whole batch is
    # good: a refused request costs no quota. Over the quota nothing is answered.
    lookup_counter().count(g.caller.member_id, types, {}, db.utcnow(),
                           nonce=g.pop("nonce_owed"))
    prefix_bits, _ = _settings()
    return {"oprf_version": version, "prefix_bits": prefix_bits, "evaluated": evaluated}


@bp.post("/buckets")
def buckets() -> dict[str, Any]:
    """Every live entry whose bucket starts with each prefix; ``mine``: the caller's."""
    server_keys = _keys()
    root = expect_object(json_body(request), "",
                         required={"oprf_version", "prefix_bits", "prefixes"})
    version = _version(root, server_keys)
    prefix_bits, _ = _settings()
    if root["prefix_bits"] != prefix_bits or type(root["prefix_bits"]) is not int:
        raise PrefixBitsChanged(f"buckets are {prefix_bits} bits now: GET /v2/config and "
                                "ask again", prefix_bits=prefix_bits)
    prefixes = expect_list(root["prefixes"], "/prefixes", max_items=MAX_PREFIXES)
    for index, prefix in enumerate(prefixes):
        if type(prefix) is not int or not 0 <= prefix < 1 << prefix_bits:
            raise ValidationFailed(f"prefix {index} must be an integer from 0 to "
                                   f"{(1 << prefix_bits) - 1}", pointer=f"/prefixes/{index}")
    if len(set(prefixes)) != len(prefixes):
        raise ValidationFailed("prefixes must be distinct", pointer="/prefixes")
    shift = 32 - prefix_bits
    hot = current_app.extensions["clue_hot"]
    member_id, now = g.caller.member_id, db.utcnow()
    found, cursor_seq = [], 0
    for prefix in prefixes:
        rows, cursor_seq = _bucket(hot, version, prefix << shift, (prefix + 1) << shift,
                                   member_id, now)
        found.append((prefix, rows))
    return {"oprf_version": version, "prefix_bits": prefix_bits, "cursor": cursor_seq,
            "buckets": [{"prefix": prefix,
                         "entries": b64url(b"".join(bytes(r[0]) + bytes(r[1]) for r in rows)),
                         "mine": [i for i, r in enumerate(rows) if r[2]]}
                        for prefix, rows in found]}


# One statement per bucket on the request's own hot-path connection (no ORM session,
# no transaction): the register's change cursor, joined to the live entries of the
# bucket in id order (none: one row of NULLs), and whether each stands for a live
# report of the caller. "Mine" is a correlated scalar subquery over the entry's own
# reports (a handful: one per reporter), found by the entry index, the caller tested
# after. An EXISTS here let PostgreSQL hash every report of the caller instead (76 ms
# for a member with 40,000 reports), and ``r.member_id = :member_id`` in the WHERE let
# it walk the caller's reports for every entry when its statistics predate the
# caller's imports (34 ms per entry for 30,000 reports).
_MINE = ("(SELECT max(CASE WHEN r.member_id = :member_id THEN 1 END) FROM reports r "
         "WHERE r.oprf_version = e.oprf_version AND r.{column} = e.entry_id "
         "AND r.expires_at > :now AND r.suspended_at IS NULL)")
_BUCKET_SQL = (
    "SELECT c.seq, e.entry_id, e.sealed, "  # noqa: S608 - constants only
    f"COALESCE({_MINE.format(column='entry_id')}, "
    f"{_MINE.format(column='folded_entry_id')}, 0) "
    "FROM entry_cursor c LEFT JOIN entries e ON e.oprf_version = :version "
    "AND e.deleted_at IS NULL AND e.bucket >= :low AND e.bucket < :high "
    "WHERE c.id = 1 ORDER BY e.entry_id")
_BUCKET_PG = pg_placeholders(_BUCKET_SQL)


def _bucket(hot: Any, version: int, low: int, high: int, member_id: str,
            now: dt.datetime) -> tuple[list[tuple[Any, ...]], int]:
    """``([(entry_id, sealed, mine), ...], cursor)`` of one bucket."""
    params = {"member_id": member_id, "version": version, "low": low, "high": high,
              "now": now if hot.postgres else db.sqlite_time(now)}
    cursor = hot.cursor()
    if hot.postgres:
        cursor.execute(_BUCKET_PG, params, prepare=True)
    else:
        cursor.execute(_BUCKET_SQL, params)
    rows = cursor.fetchall()
    seq = int(rows[0][0] or 0) if rows else 0
    return [row[1:] for row in rows if row[1] is not None], seq


@bp.get("/replica")
def replica() -> Response:
    """The entries changed since ``after``, in ``seq`` order, as one signed delta."""
    server_keys = _keys()
    unknown = set(request.args) - {"oprf_version", "after", "limit"}
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(sorted(unknown))[:200]}")
    version = _version({"oprf_version": _int_arg("oprf_version", None, 1, 2**32 - 1)},
                       server_keys)
    after = _int_arg("after", 0, 0, 2**63 - 1)
    limit = _int_arg("limit", MAX_REPLICA_PAGE, 1, MAX_REPLICA_PAGE)
    session = db.get_session()
    horizon = council.get_int(session, TOMBSTONE_HORIZON, 0)
    if 0 < after < horizon:
        raise CursorExpired(f"changes before {horizon} were purged; download again from "
                            "after=0", horizon=horizon)
    query = (select(Entry.entry_id, Entry.sealed, Entry.seq)
             .where(Entry.oprf_version == version, Entry.seq > after)
             .order_by(Entry.seq).limit(limit + 1))
    if after == 0:  # a full download: only what exists
        query = query.where(Entry.deleted_at.is_(None))
    rows = session.execute(query).all()
    page, more = rows[:limit], len(rows) > limit
    delta = Delta(oprf_version=version, after=after, to=page[-1].seq if page else after,
                  issued_at=int(db.utcnow().timestamp()), more=more,
                  puts=tuple((r.entry_id, r.sealed) for r in page if r.sealed is not None),
                  deletes=tuple(r.entry_id for r in page if r.sealed is None))
    body = encode_delta(delta, server_keys.signing_key, server_keys.signing_key_id)
    return Response(body, content_type=REPLICA_CONTENT_TYPE)


@bp.post("/usage")
def usage() -> Response:
    """What the member's SDK matched in its private look-ups, per type, for the console's
    hit rate: the server cannot see matches any more, so members report the counts
    (self-declared, aggregated, never per identifier). Idempotent with a key."""
    root = expect_object(json_body(request), "", required={"day", "matched"})
    day = _recent_day(root["day"])
    matched = root["matched"]
    if not isinstance(matched, dict) or not matched:
        raise BadRequest("matched must be a non-empty object of counts by type",
                         pointer="/matched")
    for id_type, count in matched.items():
        if id_type not in ID_TYPES:
            raise ValidationFailed(f"matched: {id_type[:40]!r} is not one of: "
                                   f"{', '.join(ID_TYPES)}", pointer="/matched")
        if type(count) is not int or not 0 <= count <= MAX_REPORTED_MATCHES:
            raise ValidationFailed(f"matched.{id_type} must be a whole number from 0 to "
                                   f"{MAX_REPORTED_MATCHES}", pointer=f"/matched/{id_type}")
    session = db.get_session()
    member_id = g.caller.member_id

    def write() -> tuple[int, dict[str, Any]]:
        add_usage(session.connection(), member_id, day,
                  {t: {"hits": n} for t, n in matched.items()})
        return 200, {"day": day.isoformat(), "recorded": matched}

    extensions = current_app.extensions
    return run_once(session, request, member_id, write,
                    ttl=dt.timedelta(hours=extensions["clue_settings"].idempotency_ttl_hours),
                    server_keys=extensions["clue_keys"])


def _recent_day(value: Any) -> dt.date:
    """Today or yesterday (UTC): a count for a day long past would rewrite statistics."""
    today = db.utcnow().date()
    try:
        day = dt.date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 \
            else None
    except ValueError:
        day = None
    if day is None:
        raise BadRequest("day must be a date, YYYY-MM-DD", pointer="/day")
    if day not in (today, today - dt.timedelta(days=1)):
        raise ValidationFailed(f"day must be today or yesterday (UTC: {today})",
                               pointer="/day")
    return day


def _int_arg(name: str, default: int | None, minimum: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        if default is None:
            raise BadRequest(f"query parameter {name} is required")
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 20:
        raise BadRequest(f"{name} must be a whole number")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise BadRequest(f"{name} must be from {minimum} to {maximum}")
    return value
