"""Console sessions held on the server (``console_sessions``).

The signed ``clue_console`` cookie carries a random session token next to the CSRF token;
the server keeps only the token's SHA-256, with the staff user, the sign-in time and the
last request's time. Every request looks the row up, so deleting it (sign-out, staff
removal, ``clue-server staff signout``) ends the session even for a copied cookie.

Outside a console view (``/metrics``) call :func:`staff_of_request`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from flask import current_app, session
from sqlalchemy import delete, or_
from sqlalchemy.orm import Session

from clue_server import db
from clue_server.console.models import ConsoleSession, StaffUser

#: The last-seen time is written at most this often (a console page view is not a write).
TOUCH_EVERY = dt.timedelta(seconds=30)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _limits() -> tuple[dt.timedelta, dt.timedelta]:
    config = current_app.config
    return (dt.timedelta(seconds=config["CONSOLE_IDLE_SECONDS"]),
            dt.timedelta(seconds=config["CONSOLE_MAX_SESSION_SECONDS"]))


def start(dbs: Session, user: StaffUser, *, address: str, now: dt.datetime) -> str:
    """A new session for ``user``; returns the token for the cookie."""
    idle, max_age = _limits()
    dbs.execute(delete(ConsoleSession).where(
        ConsoleSession.staff_user_id == user.id,
        or_(ConsoleSession.seen_at < now - idle, ConsoleSession.created_at < now - max_age)))
    token = secrets.token_urlsafe(32)
    dbs.add(ConsoleSession(id=_digest(token), staff_user_id=user.id, created_at=now,
                           seen_at=now, address=address[:64]))
    return token


def resolve(dbs: Session, token: str, *, now: dt.datetime, touch: bool
            ) -> tuple[StaffUser | None, bool]:
    """The staff user of a session token, and whether the session just expired.

    An expired session's row is deleted (the caller commits); ``touch`` records the
    request as activity.
    """
    if not token or len(token) > 100:
        return None, False
    row = dbs.get(ConsoleSession, _digest(token))
    if row is None:
        return None, False
    idle, max_age = _limits()
    if now - row.seen_at > idle or now - row.created_at > max_age:
        dbs.delete(row)
        return None, True
    user = dbs.get(StaffUser, row.staff_user_id)
    if user is None:
        return None, False
    if touch and now - row.seen_at >= TOUCH_EVERY:
        row.seen_at = now
    return user, False


def end(dbs: Session, token: str) -> None:
    if token and len(token) <= 100:
        dbs.execute(delete(ConsoleSession).where(ConsoleSession.id == _digest(token)))


def staff_of_request() -> StaffUser | None:
    """The signed-in staff user of this request's console cookie, without touching it."""
    token = session.get("sid")
    if not isinstance(token, str):
        return None
    user, _expired = resolve(db.get_session(), token, now=db.utcnow(), touch=False)
    return user
