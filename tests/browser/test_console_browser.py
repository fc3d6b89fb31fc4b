"""The web console in a real browser: Debian's Chromium driven by Playwright against gunicorn.

Staff are created with the real CLI; the server runs two gunicorn workers on SQLite (so the
session secret must be shared through the keys directory). Screenshots go to
``test-output/console/`` in the repository (git-ignored).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import keys
from clue_server import create_app, db
from clue_server.devserver import Gunicorn
from clue_server.disputes import services as disputes
from clue_server.disputes.models import Dispute
from clue_server.keystore import load_server_keys
from clue_server.members import services as members
from clue_server.members.models import Member
from clue_server.reports.models import Report
from clue_server.stats.models import DailyUsage

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PASSWORD = "a long staff password 42"
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "console"

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium); under CI=true this test "
                "runs and fails instead", allow_module_level=True)


def _seed(app: Any, keys_dir: Path) -> dict[str, str]:
    """Two members, 90 days of usage, a report and an overdue dispute on it."""
    server_keys = load_server_keys(keys_dir)
    today = dt.datetime.now(dt.UTC).date()
    now = db.utcnow()
    token = secrets.token_bytes(32)
    with db.session_scope(app) as session:
        reporter = members.add_member(session, "Reporter Pay",
                                      keys.generate_signing_key().public_key())
        filer = members.add_member(session, "Filer Bank",
                                   keys.generate_signing_key().public_key())
        for offset in range(90):
            session.add(DailyUsage(day=today - dt.timedelta(days=offset), member_id=reporter.id,
                                   id_type="phone", lookups=300 + 5 * (offset % 11),
                                   hits=(offset % 9) * 4, registrations=offset % 6,
                                   quota_rejections=0))
        session.add(Report(id="r_browser0", member_id=reporter.id, id_type="phone",
                           category="phishing", key_version=1,
                           pepper_version=server_keys.peppers.current.version,
                           token_hash=server_keys.token_hash(token),
                           created_at=now - dt.timedelta(days=40),
                           expires_at=now + dt.timedelta(days=5)))
        session.flush()
        opened, _ = disputes.open_dispute(
            session, filer.id, disputes.NewDispute("phone", 1, token, None, "never a fraudster"),
            server_keys, now=now - dt.timedelta(days=16))
        return {"reporter": reporter.id, "dispute": opened["id"]}


def test_console_in_chromium(tmp_path: Path, sqlite_template: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    database = tmp_path / "clue.db"
    database.write_bytes(sqlite_template.read_bytes())
    keys_dir = tmp_path / "server-keys"
    env = {"CLUE_DATABASE_URL": f"sqlite:///{database}", "CLUE_SERVER_KEYS_DIR": str(keys_dir),
           "CLUE_REDIS_URL": ""}
    cli = str(Path(sys.executable).with_name("clue-server"))
    subprocess.run([cli, "init"], env={**os.environ, **env}, check=True, capture_output=True)
    added = subprocess.run([cli, "staff", "add", "alice", "--role", "admin"],
                           env={**os.environ, **env, "CLUE_STAFF_PASSWORD": PASSWORD},
                           check=True, capture_output=True, text=True)
    assert "alice (admin) created" in added.stdout
    app = create_app({"database_url": env["CLUE_DATABASE_URL"], "server_keys_dir": keys_dir,
                      "redis_url": None}, load_keys=False)
    seeded = _seed(app, keys_dir)
    member_key = tmp_path / "new-member-signing.pub"
    keys.save_public_key(member_key, keys.generate_signing_key().public_key())

    csp_violations: list[str] = []
    with Gunicorn(env, workers=2, log=tmp_path / "gunicorn.log") as server, \
            sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.on("console", lambda m: csp_violations.append(m.text)
                    if "Content Security Policy" in m.text else None)

            # Sign in (a wrong password first: the generic message).
            page.goto(server.url + "/console/?lang=en")
            expect(page).to_have_url(server.url + "/console/login")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", "not the password!")
            page.click("button[type=submit]")
            expect(page.locator("p.error")).to_contain_text("Sign-in failed")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page).to_have_url(server.url + "/console/")
            cookie = next(c for c in context.cookies() if c["name"] == "clue_console")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["secure"]

            # Overview: three server-rendered SVG charts, styled by console.css.
            expect(page.locator("svg.chart")).to_have_count(3)
            expect(page.locator("svg.chart rect.bar")).to_have_count(180)
            expect(page.locator("svg.chart polyline.line")).to_have_count(1)
            fill = page.locator("svg.chart rect.bar").first.evaluate(
                "e => getComputedStyle(e).fill")
            assert fill == "rgb(31, 95, 191)"  # the stylesheet loaded under the CSP
            expect(page.locator("table.by-status")).to_contain_text("active")
            expect(page.locator("table.reports")).to_contain_text("phone")
            page.screenshot(path=str(SHOTS / "1-overview.png"), full_page=True)

            # Members: admit one by uploading its public key, then suspend it.
            page.click("nav >> text=Members")
            page.fill("form.admit input[name=name]", "Browser Pay")
            page.set_input_files("input[name=public_key_file]", str(member_key))
            page.click("text=Admit member")
            expect(page.locator("p.flash").first).to_contain_text("Admitted Browser Pay")
            expect(page.locator("p.flash.warn")).to_contain_text("has no HPKE key yet")
            row = page.locator("tr", has_text="Browser Pay")
            expect(row.locator("td.status")).to_have_text("active")
            page.screenshot(path=str(SHOTS / "2-member-admitted.png"), full_page=True)
            row.locator("button", has_text="Suspend").click()
            expect(page.locator("h1")).to_have_text("Suspend Browser Pay?")  # confirm first
            page.screenshot(path=str(SHOTS / "3-member-suspend-confirm.png"), full_page=True)
            page.locator("form.confirm button").click()
            expect(page.locator("p.flash")).to_contain_text("Browser Pay is now suspended")
            expect(page.locator("tr", has_text="Browser Pay").locator("td.status")
                   ).to_have_text("suspended")
            page.screenshot(path=str(SHOTS / "3-member-suspended.png"), full_page=True)

            # Disputes: the overdue one, and suspending its unanswered report.
            page.click("nav >> text=Disputes")
            dispute_row = page.locator(f"#dispute-{seeded['dispute']}")
            expect(dispute_row).to_have_class("overdue")
            expect(dispute_row).to_contain_text("Filer Bank")
            expect(dispute_row).to_contain_text("no answer")
            page.screenshot(path=str(SHOTS / "4-dispute-overdue.png"), full_page=True)
            dispute_row.locator("button", has_text="Suspend unanswered reports").click()
            page.locator("form.confirm button").click()
            expect(page.locator("p.flash")).to_contain_text("Suspended 1 report")
            expect(page.locator(f"#dispute-{seeded['dispute']} td.status")).to_have_text(
                "expired")
            page.screenshot(path=str(SHOTS / "5-dispute-handled.png"), full_page=True)

            # Audit: every action above, by staff:alice, and an intact chain.
            page.click("nav >> text=Audit")
            expect(page.locator("p.chain-status")).to_contain_text("Never verified")
            page.click("button:has-text('Verify now')")
            expect(page.locator("p.chain-status")).to_contain_text("Intact")
            audit = page.locator("table.audit")
            for action in ("member.add", "member.suspend", "dispute.suspend_overdue",
                           "console.login"):
                expect(audit.locator("tr", has_text=action).first).to_contain_text(
                    "staff:alice")
            page.screenshot(path=str(SHOTS / "6-audit.png"), full_page=True)

            # Settings: limits, and the phone report that expires within 30 days.
            page.click("nav >> text=Settings")
            expect(page.locator("#retention-ip td.days")).to_have_text("30")
            expect(page.locator("table.expiring")).to_contain_text("1")
            page.screenshot(path=str(SHOTS / "7-settings.png"), full_page=True)

            page.click("text=Sign out")
            expect(page).to_have_url(server.url + "/console/login")
        finally:
            context.close()
    print(f"\nconsole screenshots: {SHOTS}")
    assert csp_violations == []
    with db.session_scope(app) as session:
        admitted = session.query(Member).filter_by(name="Browser Pay").one()
        assert admitted.status == "suspended"
        assert session.get(Report, "r_browser0").suspended_at is not None
        assert session.get(Dispute, seeded["dispute"]).status == "expired"
    app.extensions["clue_engine"].dispose()
