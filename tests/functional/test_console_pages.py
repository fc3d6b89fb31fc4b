"""The council's day in the console (issue 12): health at a glance, an audit log that stays
usable after bulk imports, quotas and confirmations, settings, HTML for stray paths,
and the console in Japanese as well as English."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from sqlalchemy import select

import keys
from clue_server import db
from clue_server.audit import services as audit
from clue_server.audit.models import AuditEvent
from clue_server.console import i18n
from clue_server.disputes.models import Dispute
from clue_server.members import services as members
from clue_server.members.models import Member
from clue_server.quotas import services as quotas
from clue_server.quotas import settings as council
from clue_server.quotas.models import QuotaUsage
from clue_server.reports.models import Report
from clue_server.stats.models import DailyUsage
from tests.functional.console_helpers import audit_events, pem, post, seed, text

TRANSLATIONS = Path(i18n.TRANSLATIONS)


def _card(page: str, card: str) -> str:
    match = re.search(rf'<article class="card (\w+)" id="health-{card}">(.*?)</article>', page,
                      re.S)
    assert match, card
    return f"{match.group(1)}|{match.group(2)}"


# -- overview: health at a glance -------------------------------------------------------------


def test_overview_health_panel(app: Any, admin: Any, make_member: Any,
                               server_keys_dir: Path) -> None:
    data = seed(app, make_member, server_keys_dir)
    today = dt.datetime.now(dt.UTC).date()
    busy = make_member("Busy Pay")
    with db.session_scope(app) as session:
        quotas.set_member_quota(session, data["reporter"].member_id, 120, None, actor="test")
        quotas.set_member_quota(session, busy.member_id, 100, None, actor="test")
        session.add(DailyUsage(day=today, member_id=busy.member_id, id_type="email",
                               lookups=100, hits=0, registrations=0, quota_rejections=7))
        members.add_member(session, "Keyed Pay", keys.generate_signing_key().public_key(),
                           hpke_public_key=keys.generate_hpke_key().public_key())
    page = text(admin.get("/console/"))

    disputes = _card(page, "disputes")
    assert disputes.startswith("bad|") and "1 open, 1 overdue" in disputes

    chain = _card(page, "audit")
    assert chain.startswith("warn|") and "Never verified" in chain
    assert post(admin, "/console/audit/verify").status_code == 302
    chain = _card(text(admin.get("/console/")), "audit")
    assert chain.startswith("ok|") and "Intact" in chain and "staff:alice" in chain
    assert "JST" in chain

    quota = _card(page, "quota")  # Reporter Pay: 100 of 120 lookups (83%); Busy Pay: over
    assert quota.startswith("bad|") and "2 members at 80% or more" in quota
    assert "Busy Pay</span>: 100%" in quota and "7 refused" in quota
    assert "Reporter Pay</span>: 83%" in quota
    assert quota.index("Busy Pay") < quota.index("Reporter Pay")

    hpke = _card(page, "hpke")
    assert hpke.startswith("warn|")
    for name in ("Reporter Pay", "Filer Bank", "Busy Pay"):
        assert name in hpke
    assert "Keyed Pay" not in hpke

    anomalies = _card(page, "anomalies")
    assert anomalies.startswith("ok|")


def test_overview_health_shows_a_broken_chain_and_a_stale_verification(
        app: Any, admin: Any, make_member: Any) -> None:
    make_member("Example Pay")
    assert post(admin, "/console/audit/verify").status_code == 302
    with db.session_scope(app) as session:
        from clue_server.audit.models import AuditVerification

        session.scalars(select(AuditVerification)).one().at = (
            db.utcnow() - dt.timedelta(days=8))
    stale = _card(text(admin.get("/console/")), "audit")
    assert stale.startswith("warn|") and "Older than 7 days" in stale
    with db.session_scope(app) as session:
        edited = session.scalar(select(AuditEvent).where(AuditEvent.action == "member.add"))
        assert edited is not None
        edited.subject, edited_id = "m_forged", edited.id
    answer = post(admin, "/console/audit/verify")
    assert answer.status_code == 302
    broken = _card(text(admin.get("/console/")), "audit")
    assert broken.startswith("bad|") and f"BROKEN at entry #{edited_id}<" in broken


def test_chart_tooltips_show_the_exact_value(app: Any, admin: Any, make_member: Any) -> None:
    member = make_member()
    today = dt.datetime.now(dt.UTC).date()
    with db.session_scope(app) as session:
        session.add(DailyUsage(day=today, member_id=member.member_id, id_type="phone",
                               lookups=123_456, hits=1_234, registrations=0, quota_rejections=0))
    page = text(admin.get("/console/"))
    assert f"<title>{today.isoformat()}: 123,456</title>" in page  # not "123.456k"
    assert f"<title>{today.isoformat()}: 1.0%</title>" in page


def test_cli_audit_verify_is_what_the_overview_shows(app: Any, admin: Any,
                                                     database_url: str,
                                                     server_keys_dir: Path) -> None:
    from click.testing import CliRunner

    from clue_server.cli import main as server_cli

    env = {"CLUE_DATABASE_URL": database_url, "CLUE_SERVER_KEYS_DIR": str(server_keys_dir)}
    result = CliRunner().invoke(server_cli, ["audit", "verify"], env=env)
    assert result.exit_code == 0, result.output
    chain = _card(text(admin.get("/console/")), "audit")
    assert chain.startswith("ok|") and "by council" in chain


# -- the audit log after bulk imports ---------------------------------------------------------


def _bulk_entries(app: Any, member_id: str, count: int, ids_each: int) -> None:
    with db.session_scope(app) as session:
        for batch in range(count):
            audit.record(session, actor=member_id, action="report.register",
                         subject=f"{ids_each} reports",
                         report_ids=[f"r_{batch:03d}{n:05d}" for n in range(ids_each)])


def test_audit_page_stays_small_after_bulk_imports(app: Any, admin: Any,
                                                   make_member: Any) -> None:
    member = make_member("Bulk Pay")
    _bulk_entries(app, member.member_id, 52, 1000)
    answer = admin.get("/console/audit")
    page = text(answer)
    assert answer.status_code == 200
    assert len(page) < 150_000, len(page)  # 52 × 1,000 ids used to make a 119,000 px page
    assert page.count("<details>") >= 50
    assert "report_ids: 1,000 items" in page
    assert "r_05100019" in page and "r_05100020" not in page  # the first 20 of the newest
    newest = re.search(r'<tr id="entry-(\d+)">', page)
    assert newest
    entry = text(admin.get(f"/console/audit/{newest.group(1)}"))
    assert "r_05100999" in entry and "1,000 items" in entry


def test_audit_page_paginates_and_filters(app: Any, admin: Any, make_member: Any) -> None:
    alpha, beta = make_member("Alpha Pay"), make_member("Beta Pay")
    with db.session_scope(app) as session:
        for index in range(70):
            audit.record(session, actor=alpha.member_id if index % 2 else beta.member_id,
                         action="report.withdraw", subject=f"r_{index:04d}")
    first = text(admin.get("/console/audit"))
    rows = re.findall(r'<tr id="entry-(\d+)">', first)
    assert len(rows) == 50 and rows == sorted(rows, key=int, reverse=True)
    older = re.search(r'<a href="([^"]+)" class="older">', first)
    assert older and "newer" not in first.split('class="pager"')[1].split("</nav>")[0]
    second = text(admin.get(older.group(1).replace("&amp;", "&")))
    second_rows = re.findall(r'<tr id="entry-(\d+)">', second)
    assert second_rows and int(second_rows[0]) == int(rows[-1]) - 1
    assert 'class="newer"' in second

    by_actor = text(admin.get(f"/console/audit?actor={alpha.member_id}"))
    actors = re.findall(r'<td class="actor">([^<]*)</td>', by_actor)
    assert len(actors) == 35 and set(actors) == {alpha.member_id}
    by_action = text(admin.get("/console/audit?action=member.add"))
    assert re.findall(r'<td class="action">([^<]*)</td>', by_action) == ["member.add"] * 2
    assert '<option value="member.add" selected>' in by_action

    both = text(admin.get(f"/console/audit?actor={beta.member_id}&action=report.withdraw"))
    assert len(re.findall(r'<tr id="entry-', both)) == 35
    paged = re.search(r'<a href="([^"]+)" class="older">', first)
    assert paged is not None

    now_jst = dt.datetime.now(i18n.JST).date()
    today = text(admin.get(f"/console/audit?from={now_jst}&to={now_jst}"))
    assert len(re.findall(r'<tr id="entry-', today)) == 50
    tomorrow = now_jst + dt.timedelta(days=1)
    assert "No entries match." in text(admin.get(f"/console/audit?from={tomorrow}"))
    yesterday = now_jst - dt.timedelta(days=1)
    assert "No entries match." in text(admin.get(f"/console/audit?to={yesterday}"))


def test_audit_filters_carry_over_to_the_next_page(app: Any, admin: Any,
                                                   make_member: Any) -> None:
    alpha = make_member("Alpha Pay")
    with db.session_scope(app) as session:
        for index in range(60):
            audit.record(session, actor=alpha.member_id, action="report.withdraw",
                         subject=f"r_{index:04d}")
    first = text(admin.get("/console/audit?action=report.withdraw"))
    older = re.search(r'<a href="([^"]+)" class="older">', first)
    assert older and "action=report.withdraw" in older.group(1)
    second = text(admin.get(older.group(1).replace("&amp;", "&")))
    assert len(re.findall(r'<tr id="entry-', second)) == 10


# -- members: today's use, warnings and confirmations ------------------------------------------


def test_a_quota_below_todays_use_is_saved_with_a_warning(app: Any, admin: Any,
                                                          make_member: Any) -> None:
    member = make_member("Busy Pay")
    today = dt.datetime.now(dt.UTC).date()
    with db.session_scope(app) as session:
        session.add(DailyUsage(day=today, member_id=member.member_id, id_type="phone",
                               lookups=1500, hits=0, registrations=3, quota_rejections=0))
        # What the quota checks count (quotas.counters) beside the day's statistics.
        session.add(QuotaUsage(day=today, member_id=member.member_id, quota="lookups",
                               used=1500))
        session.add(QuotaUsage(day=today, member_id=member.member_id, quota="registrations",
                               used=3))
    answer = post(admin, f"/console/members/{member.member_id}/quota",
                  {"daily_lookups": "1000"})
    assert answer.status_code == 302
    page = text(admin.get("/console/members"))
    assert re.search(r'<p class="flash warn"[^>]*>Busy Pay has already made 1,500 lookups today, '
                     r"more than the new limit of 1,000", page)
    row = re.search(rf'<tr id="member-{member.member_id}".*?</tr>', page, re.S)
    assert row and 'class="usage over"' in row.group(0) and "lookups 1,500 / 1,000<" in row.group(0)
    assert post(admin, f"/console/members/{member.member_id}/quota",
                {"daily_lookups": "2000"}).status_code == 302
    assert "has already made" not in text(admin.get("/console/members"))


def test_suspending_a_member_asks_for_confirmation_first(app: Any, admin: Any,
                                                         make_member: Any) -> None:
    member = make_member("Example Pay")
    asked = post(admin, f"/console/members/{member.member_id}/status", {"action": "suspend"})
    assert asked.status_code == 200
    page = text(asked)
    assert "Suspend Example Pay?" in page and 'name="confirm" value="yes"' in page
    assert 'href="/console/members" class="cancel"' in page
    with db.session_scope(app) as session:
        assert session.get(Member, member.member_id).status == "active"
    assert audit_events(app, "member.suspend") == []
    done = post(admin, f"/console/members/{member.member_id}/status",
                {"action": "suspend", "confirm": "yes"})
    assert done.status_code == 302
    with db.session_scope(app) as session:
        assert session.get(Member, member.member_id).status == "suspended"
    # Resuming needs no confirmation.
    assert post(admin, f"/console/members/{member.member_id}/status",
                {"action": "resume"}).status_code == 302


def test_suspend_overdue_asks_for_confirmation_first(app: Any, admin: Any, make_member: Any,
                                                     server_keys_dir: Path) -> None:
    data = seed(app, make_member, server_keys_dir)
    asked = post(admin, "/console/disputes/suspend-overdue")
    assert asked.status_code == 200
    page = text(asked)
    assert "Suspend the unanswered reports of 1 overdue dispute?" in page
    assert "Up to 1 report of reporters" in page and data["dispute_id"] in page
    with db.session_scope(app) as session:
        assert session.get(Report, "r_seed0").suspended_at is None
        assert session.get(Dispute, data["dispute_id"]).status == "open"
    done = post(admin, "/console/disputes/suspend-overdue", {"confirm": "yes"})
    assert done.status_code == 302
    with db.session_scope(app) as session:
        assert session.get(Report, "r_seed0").suspended_at is not None
    nothing = post(admin, "/console/disputes/suspend-overdue")
    assert nothing.status_code == 302
    assert "No overdue dispute" in text(admin.get("/console/disputes"))


def test_the_disputes_table_has_no_unlabelled_column(app: Any, admin: Any, make_member: Any,
                                                     server_keys_dir: Path) -> None:
    seed(app, make_member, server_keys_dir)
    page = text(admin.get("/console/disputes"))
    head = re.search(r'<table class="disputes">\s*<thead>(.*?)</thead>', page, re.S)
    assert head
    cells = re.findall(r"<th>(.*?)</th>", head.group(1))
    assert len(cells) == 9 and all(c.strip() for c in cells)
    assert "<th></th>" not in page


def test_admitting_without_an_hpke_key_says_what_follows(app: Any, admin: Any) -> None:
    answer = post(admin, "/console/members",
                  {"name": "Keyless Pay",
                   "public_key": pem(keys.generate_signing_key().public_key()).decode()},
                  content_type="multipart/form-data")
    assert answer.status_code == 302
    page = text(admin.get("/console/members"))
    assert "Keyless Pay has no HPKE key yet" in page and "clue keys publish" in page
    assert "no HPKE key: cannot receive the network key" in page


# -- council settings ---------------------------------------------------------------------------


def test_the_dispute_deadline_is_a_council_setting(app: Any, admin: Any) -> None:
    page = text(admin.get("/console/settings"))
    assert 'name="days" type="number" min="1" max="365" value="14"' in page
    assert post(admin, "/console/settings/dispute-deadline", {"days": "21"}).status_code == 302
    with db.session_scope(app) as session:
        assert council.dispute_deadline_days(session) == 21
    [event] = audit_events(app, "dispute.deadline_set")
    assert event.actor == "staff:alice" and event.details == {"days": 21, "previous": 14}
    assert "Reporters have 21 days to answer" in text(admin.get("/console/disputes"))
    for bad in ("0", "366", "x", "", "9" * 5000):
        answer = post(admin, "/console/settings/dispute-deadline", {"days": bad})
        assert answer.status_code == 400, bad
        assert "Days to answer a dispute" in text(answer)


def test_quota_defaults_from_the_settings_page(app: Any, admin: Any) -> None:
    assert post(admin, "/console/settings/quota-defaults",
                {"daily_lookups": "5000", "daily_registrations": ""}).status_code == 302
    with db.session_scope(app) as session:
        assert council.quota_defaults(session) == (5000, council.DEFAULT_DAILY_REGISTRATIONS)
    assert post(admin, "/console/settings/quota-defaults", {}).status_code == 400


# -- HTML for stray paths -------------------------------------------------------------------------


def test_the_root_points_to_the_console(app: Any) -> None:
    answer = app.test_client().get("/")
    assert answer.status_code == 200 and answer.content_type.startswith("text/html")
    assert 'href="/console/"' in text(answer)


def test_unknown_console_paths_get_a_console_404(app: Any, admin: Any) -> None:
    for client in (app.test_client(), admin):
        for path in ("/console/nowhere", "/console/members/extra/deep", "/console/static/x.css"):
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert answer.content_type.startswith("text/html"), path
            assert "CLUE council console" in text(answer)
            assert "There is no console page at this address." in text(answer)
    api = app.test_client().get("/v1/nowhere")
    assert api.status_code == 404 and api.content_type == "application/problem+json"


# -- Japanese and English --------------------------------------------------------------------------


@pytest.mark.parametrize(("accept", "language"), [
    ("ja", "ja"), ("ja-JP,ja;q=0.9,en;q=0.8", "ja"), ("en-US,en;q=0.9,ja;q=0.8", "en"),
    ("fr-FR", "en"), ("", "en"), ("zh-CN,ja;q=0.5", "ja"),
])
def test_the_language_follows_the_browser(app: Any, admin: Any, accept: str,
                                          language: str) -> None:
    page = text(admin.get("/console/", headers={"Accept-Language": accept}))
    assert f'<html lang="{language}">' in page
    assert ("概要" if language == "ja" else ">Overview<") in page


def test_the_language_switch_is_remembered(app: Any, admin: Any) -> None:
    switched = admin.get("/console/members?lang=ja", headers={"Accept-Language": "en"})
    assert '<html lang="ja">' in text(switched)
    assert "clue_lang=ja" in switched.headers["Set-Cookie"]
    later = admin.get("/console/disputes", headers={"Accept-Language": "en"})
    assert '<html lang="ja">' in text(later) and "異議" in text(later)
    back = admin.get("/console/audit?lang=en&action=member.add")
    assert '<html lang="en">' in text(back)
    # Each page links to itself in the other language, keeping its query.
    assert 'href="/console/audit?action=member.add&amp;lang=ja"' in text(back)


def test_the_login_page_and_errors_are_japanese_too(app: Any) -> None:
    client = app.test_client()
    page = text(client.get("/console/login", headers={"Accept-Language": "ja"}))
    assert "サインイン" in page and "ユーザー名" in page
    missing = client.get("/console/nowhere", headers={"Accept-Language": "ja"})
    assert missing.status_code == 404
    assert "このアドレスにコンソールのページはありません" in text(missing)


def test_japanese_pages_show_jst_and_grouped_numbers(app: Any, admin: Any, make_member: Any,
                                                     server_keys_dir: Path) -> None:
    seed(app, make_member, server_keys_dir)
    page = text(admin.get("/console/disputes?lang=ja"))
    opened = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d) JST", page)
    assert opened
    with db.session_scope(app) as session:
        dispute = session.scalars(select(Dispute)).one()
        expected = dispute.opened_at.astimezone(i18n.JST).strftime("%Y-%m-%d %H:%M")
    assert expected in page
    overview = text(admin.get("/console/?lang=ja"))
    lookups = sum(100 + offset for offset in range(90))
    assert f"{lookups:,}" in overview


def test_every_message_has_a_japanese_translation() -> None:
    with (TRANSLATIONS / "ja" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    missing = [m.id for m in catalog if m.id and not (
        all(m.string) if isinstance(m.string, tuple) else m.string)]
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert missing == [] and fuzzy == []


def test_the_catalogue_covers_every_message_in_the_code() -> None:
    from babel.messages.extract import extract_from_dir

    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    found = {message[2] if isinstance(message[2], str) else message[2][0]
             for message in extract_from_dir(str(TRANSLATIONS.parent), method_map)}
    with (TRANSLATIONS / "ja" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    known = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}
    assert sorted(found - known) == []


def test_the_compiled_catalogue_matches_the_po_file() -> None:
    """``make install`` compiles the .mo; a stale one would show old or English text."""
    from babel.messages.mofile import read_mo

    messages = TRANSLATIONS / "ja" / "LC_MESSAGES"
    def plain(value: Any) -> Any:
        return tuple(value) if isinstance(value, list | tuple) else value

    with (messages / "messages.po").open("rb") as handle:
        source = {plain(m.id): plain(m.string) for m in read_po(handle) if m.id}
    with (messages / "messages.mo").open("rb") as handle:
        compiled = {plain(m.id): plain(m.string) for m in read_mo(handle) if m.id}
    assert compiled == source, "run `make install` (pybabel compile) after editing the .po"
