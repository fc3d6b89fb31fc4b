"""Helpers shared by the console tests (fixtures live in tests/functional/conftest.py)."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import select

import keys
from clue_server import db
from clue_server.audit.models import AuditEvent
from clue_server.console import auth
from clue_server.disputes import services as disputes
from clue_server.keystore import load_server_keys
from clue_server.reports.models import Report
from clue_server.stats.models import DailyUsage

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def add_staff(app: Any, username: str, role: str = "admin") -> None:
    with db.session_scope(app) as session:
        auth.add_staff(session, username, PASSWORD, role)


def csrf_token(client: Any, path: str = "/console/login") -> str:
    page = client.get(path)
    match = CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client: Any, username: str, password: str = PASSWORD, *,
          address: str = "192.0.2.10") -> Any:
    token = csrf_token(client)
    return client.post("/console/login", data={"username": username, "password": password,
                                               "csrf_token": token},
                       environ_base={"REMOTE_ADDR": address})


def post(client: Any, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """A form POST with the page's CSRF token, as a browser would send it."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client, "/console/")},
                       **kwargs)


def audit_events(app: Any, action: str) -> list[AuditEvent]:
    with db.session_scope(app) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                    .order_by(AuditEvent.id)))


def pem(public_key: Any) -> bytes:
    return keys.public_key_pem(public_key).encode()


def text(answer: Any) -> str:
    return str(answer.get_data(as_text=True))


def seed(app: Any, make_member: Any, server_keys_dir: Path) -> dict[str, Any]:
    """Members, 90 days of usage, reports, and an overdue dispute on one of them."""
    reporter = make_member("Reporter Pay")
    filer = make_member("Filer Bank")
    server_keys = load_server_keys(server_keys_dir)
    today = dt.datetime.now(dt.UTC).date()
    now = db.utcnow()
    token = secrets.token_bytes(32)
    with db.session_scope(app) as session:
        for offset in range(90):
            session.add(DailyUsage(day=today - dt.timedelta(days=offset),
                                   member_id=reporter.member_id, id_type="phone",
                                   lookups=100 + offset, hits=10, registrations=offset % 7,
                                   quota_rejections=0))
        for index, (id_type, category) in enumerate([("phone", "phishing"),
                                                     ("phone", "phishing"),
                                                     ("email", "account_takeover")]):
            session.add(Report(
                id=f"r_seed{index}", member_id=reporter.member_id, id_type=id_type,
                category=category, key_version=1,
                pepper_version=server_keys.peppers.current.version,
                token_hash=server_keys.token_hash(token if index == 0
                                                  else secrets.token_bytes(32)),
                created_at=now - dt.timedelta(days=30),
                expires_at=now + dt.timedelta(days=3 + index)))
        session.flush()
        opened, _ = disputes.open_dispute(
            session, filer.member_id,
            disputes.NewDispute("phone", 1, token, None, "my customer was never a fraudster"),
            server_keys, now=now - dt.timedelta(days=20))
    return {"reporter": reporter, "filer": filer, "dispute_id": opened["id"]}
