from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from clue_server.db import Base, UtcDateTime, utcnow

ROLES = ("admin", "auditor")


class StaffUser(Base):
    """A council staff member of the web console (Argon2id password hash)."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ConsoleSession(Base):
    """A signed-in console session, held on the server so that it can be ended there.

    The browser's cookie carries a random token; only its SHA-256 is stored, so a copy
    of this table does not let anyone sign in. Signing out, removing the staff user or
    ``clue-server staff signout`` deletes the row, and the cookie is worthless from then on.
    """

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 hex of the token
    staff_user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    #: The client address at sign-in (shown by ``clue-server staff list``).
    address: Mapped[str] = mapped_column(String(64))


class LoginFailure(Base):
    """One failed console sign-in: the client address and the username tried.

    Throttling reads these rows (per address, per address and username, per username);
    ``clue-server staff unlock`` deletes a username's rows. Rows older than a day go.
    """

    __tablename__ = "console_login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
