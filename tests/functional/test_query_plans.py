"""Statements that filter by member stay fast for a member PostgreSQL's statistics do
not know yet (its imports came after the last ANALYZE, as a new member's first CSV
import does): the member's reports are never walked one by one.

Before, the planner believed such a member had one report and drove the statement by
``ix_reports_member_id``, testing every report of the member: 946 ms for a registration
of 1,000 against 30,000 reports, and 34 ms per entry of a bucket.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from clue_server.private.views import _BUCKET_PG
from clue_server.reports import bulk
from clue_server.reports.services import own_reports_query

pytestmark = pytest.mark.postgres

REPORTS = 3000


def _fill(conn: Any, member_id: str, prefix: str, count: int) -> None:
    conn.execute(text(
        "INSERT INTO reports (id, member_id, id_type, category, key_version, pepper_version, "
        "token_hash, created_at, expires_at, oprf_version, entry_id) "
        "SELECT :prefix || i, :member_id, 'phone', 'account_takeover', 1, 1, "
        "sha256((:prefix || i)::bytea), now(), now() + interval '30 days', 1, "
        "substring(sha256(('entry' || :prefix || i)::bytea) FOR 16) "
        "FROM generate_series(1, :count) AS i"),
        {"prefix": prefix, "member_id": member_id, "count": count})


def _plan(cursor: Any, sql: str, params: dict[str, Any]) -> str:
    cursor.execute("EXPLAIN " + sql, params)
    return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_member_newer_than_the_statistics_is_not_walked_report_by_report(
        app: Any, make_member: Any) -> None:
    known, new = make_member("Known Pay"), make_member("New Pay")
    engine = app.extensions["clue_engine"]
    with engine.begin() as conn:
        _fill(conn, known.member_id, "r_known", 200)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE reports"))
        conn.commit()
    with engine.begin() as conn:  # after the statistics: the planner does not know them
        _fill(conn, new.member_id, "r_new", REPORTS)
    with engine.connect() as conn:
        hashes = [row[0] for row in conn.execute(text(
            "SELECT token_hash FROM reports WHERE member_id = :m ORDER BY id LIMIT 1000"),
            {"m": new.member_id})]
        other = [row[0] for row in conn.execute(text(
            "SELECT token_hash FROM reports WHERE member_id = :m LIMIT 50"),
            {"m": known.member_id})]
        # What a registration reads back: the member's own reports among the hashes,
        # none of another member's.
        found = bulk.existing(conn, new.member_id, [*hashes, *other])
        assert len(found) == len(hashes)
        assert {row.token_hash for row in found.values()} == set(hashes)
        assert not bulk.existing(conn, known.member_id, hashes)

        driver = conn.connection.driver_connection
        with driver.cursor() as cursor:
            existing_plan = _plan(cursor, bulk._PG_EXISTING, {
                "member_id": new.member_id, "hashes": b"".join(hashes)})
            bucket_plan = _plan(cursor, _BUCKET_PG, {
                "version": 1, "low": 0, "high": 1 << 31, "member_id": new.member_id,
                "now": dt.datetime.now(dt.UTC)})
            search = own_reports_query(new.member_id, hashes[:400]).compile(
                dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
            search_plan = _plan(cursor, str(search), search.params)
        # The member's own-report search (POST /v1/reports/search) finds them all.
        assert len(conn.execute(own_reports_query(new.member_id, hashes[:400])).all()) == 400
    # (The search's CTE may scan: the statistics say the table has 200 rows. What
    # matters is that no plan starts from the member.)
    for plan in (existing_plan, bucket_plan, search_plan):
        assert "ix_reports_member_id" not in plan, plan[:600]
        assert "uq_reports_member_type_category_token" not in plan, plan[:600]
    assert "ix_reports_token_hash" in existing_plan, existing_plan
    assert "ix_reports_entry" in bucket_plan, bucket_plan


def _fill_entries(conn: Any, count: int) -> None:
    conn.execute(text(
        "INSERT INTO entries (oprf_version, entry_id, bucket, id_type, entry_key, sealed, seq) "
        "SELECT 1, substring(sha256(('entry' || 'r_hot' || i)::bytea) FOR 16), "
        "('x' || substring(encode(sha256(('entry' || 'r_hot' || i)::bytea), 'hex') FOR 8))"
        "::bit(32)::bigint & 4294967295, 'phone', sha256(('key' || i)::bytea), "
        "substring(sha256(('sealed' || i)::bytea) || sha256(i::text::bytea) FOR 38), i "
        "FROM generate_series(1, :count) AS i"), {"count": count})
    conn.execute(text("INSERT INTO entry_cursor (id, seq) VALUES (1, :count) "
                      "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq"), {"count": count})


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_hot_path_keeps_its_generic_plans_and_they_use_the_indexes(
        app: Any, make_member: Any) -> None:
    """The hot path's statements are planned once per connection, not on every execution
    (PostgreSQL's default re-planned the match and bucket statements each time: 4x their
    backend CPU), and the plans they keep find rows by the indexes."""
    from clue_server.private.views import _bucket

    member = make_member("Hot Pay")
    engine = app.extensions["clue_engine"]
    with engine.begin() as conn:
        _fill(conn, member.member_id, "r_hot", REPORTS)
        _fill_entries(conn, REPORTS)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE reports"))
        conn.execute(text("ANALYZE entries"))
        conn.commit()
        hashes = [row[0] for row in conn.execute(text(
            "SELECT token_hash FROM reports WHERE member_id = :m ORDER BY id LIMIT 20"),
            {"m": member.member_id})]
    hot = app.extensions["clue_hot"]
    now = dt.datetime.now(dt.UTC)
    runs = 8  # beyond the 5 custom plans PostgreSQL tries before it may settle
    with app.app_context():
        for i in range(runs):
            assert len(hot.match([hashes[i]], [], now)) == 1
            assert len(hot.match([hashes[i]], [bytes(32)], now)) == 1
            rows, _seq = _bucket(hot, 1, i << 28, (i + 1) << 28, member.member_id, now)
            assert rows and all((i << 28) <= int.from_bytes(r[0][:4], "big") < (i + 1) << 28
                                for r in rows)
            assert hot.claim_nonce(f"hot-plan-{i}", now + dt.timedelta(minutes=5))
        cursor = hot.connection().cursor()
        cursor.execute("SELECT name, statement, generic_plans, custom_plans "
                       "FROM pg_prepared_statements")
        prepared = cursor.fetchall()
    # (psycopg prepares a statement once per set of parameter types: a bucket's bounds
    # travel as int2, int4 or int8 by their size.)
    texts = {statement for _n, statement, _g, _c in prepared}
    for fragment in ("INSERT INTO seen_nonces", "WHERE r.token_hash = ANY($1) AND",
                     "r.folded_hash = ANY($2)", "FROM entry_cursor c"):
        assert any(fragment in t for t in texts), (fragment, texts)
    for _name, statement, _generic, custom in prepared:
        assert custom == 0, (statement[:120], custom)
    generic_runs: Counter[str] = Counter()
    for _name, statement, generic, _custom in prepared:
        generic_runs[statement] += generic
    assert min(generic_runs.values()) >= runs, generic_runs
    by_text = {statement: name for name, statement, _g, _c in prepared}

    def generic_plan(fragment: str, args: list[Any]) -> str:
        name = next(n for s, n in by_text.items() if fragment in s)
        with psycopg.ClientCursor(hot.connection().driver_connection) as explain:
            explain.execute(f"EXPLAIN EXECUTE {name}({', '.join(['%s'] * len(args))})",
                            args)
            return "\n".join(row[0] for row in explain.fetchall())

    match_plan = generic_plan("r.folded_hash = ANY", [[hashes[0]], [bytes(32)], now])
    bucket_plan = generic_plan("FROM entry_cursor c", [member.member_id, now, 1, 0, 1 << 28])
    assert "$1" in match_plan and "$3" in bucket_plan  # the generic plans, not one for these
    assert "ix_reports_token_hash" in match_plan and "ix_reports_folded_hash" in match_plan, \
        match_plan
    assert "Seq Scan on reports" not in match_plan, match_plan
    assert "ix_entries_bucket" in bucket_plan and "Seq Scan on entries" not in bucket_plan, \
        bucket_plan
