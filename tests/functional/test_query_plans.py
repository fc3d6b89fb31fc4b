"""Statements that filter by member stay fast for a member PostgreSQL's statistics do
not know yet (its imports came after the last ANALYZE, as a new member's first CSV
import does): the member's reports are never walked one by one.

Before, the planner believed such a member had one report and drove the statement by
``ix_reports_member_id``, testing every report of the member: 946 ms for a registration
of 1,000 against 30,000 reports, and 34 ms per entry of a bucket.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

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
