"""Council staff accounts: Argon2id password hashes, roles, lockout after repeated failures.

Shared by the console's login view and the ``clue-server staff`` commands. Functions take a
session and never commit; every change is audited by the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from clue_server.audit import services as audit
from clue_server.console.models import ROLES, StaffUser

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
MAX_FAILURES = 5
LOCKOUT = dt.timedelta(minutes=15)
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,49}")


class StaffError(ValueError):
    """A staff account operation was refused; the message says why."""


@cache
def _hasher() -> PasswordHasher:
    # argon2-cffi's defaults are Argon2id (RFC 9106 low-memory profile: t=3, m=64 MiB, p=4).
    return PasswordHasher()


@cache
def _dummy_hash() -> str:
    return _hasher().hash("not a password: equalises the time of unknown-user logins")


def actor(username: str) -> str:
    """The audit actor for a console action."""
    return f"staff:{username}"


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"a password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise StaffError(f"a password must be at most {MAX_PASSWORD_LENGTH} characters")


def add_staff(session: Session, username: str, password: str, role: str, *,
              by: str = "council") -> StaffUser:
    if not USERNAME.fullmatch(username):
        raise StaffError("a username is 1 to 50 of a-z, 0-9, '.', '_' and '-', "
                         "starting with a letter or digit")
    if role not in ROLES:
        raise StaffError(f"a role is one of {', '.join(ROLES)}")
    check_password(password)
    if find_staff(session, username) is not None:
        raise StaffError(f"a staff user named {username!r} already exists")
    user = StaffUser(username=username, password_hash=_hasher().hash(password), role=role,
                     failed_logins=0)
    session.add(user)
    session.flush()
    audit.record(session, actor=by, action="staff.add", subject=username, role=role)
    return user


def remove_staff(session: Session, username: str, *, by: str = "council") -> None:
    user = find_staff(session, username)
    if user is None:
        raise StaffError(f"no staff user named {username!r}")
    session.delete(user)
    audit.record(session, actor=by, action="staff.remove", subject=username)


def unlock_staff(session: Session, username: str, *, by: str = "council") -> None:
    """Lift a lockout before its 15 minutes are up (and forget earlier failures)."""
    user = find_staff(session, username)
    if user is None:
        raise StaffError(f"no staff user named {username!r}")
    user.locked_until, user.failed_logins = None, 0
    audit.record(session, actor=by, action="staff.unlock", subject=username)


def list_staff(session: Session) -> list[StaffUser]:
    return list(session.scalars(select(StaffUser).order_by(StaffUser.username)))


def find_staff(session: Session, username: str) -> StaffUser | None:
    if len(username) > 64:
        return None
    return session.scalar(select(StaffUser).where(StaffUser.username == username))


def authenticate(session: Session, username: str, password: str, *,
                 now: dt.datetime) -> StaffUser | None:
    """The staff user if the password is right and the account not locked, else ``None``.

    The caller shows one message for every refusal, so a guesser cannot tell an unknown
    user from a wrong password or a locked account. Unknown users cost a hash
    verification too. Five failures in a row lock the account for 15 minutes; a locked
    account refuses even the right password.
    """
    hasher = _hasher()
    user = None
    if len(username) <= 64 and len(password) <= MAX_PASSWORD_LENGTH:
        user = session.scalar(select(StaffUser).where(StaffUser.username == username)
                              .with_for_update())
    if user is None or (user.locked_until is not None and user.locked_until > now):
        _verify_quietly(_dummy_hash(), password[:MAX_PASSWORD_LENGTH])
        if user is not None:
            audit.record(session, actor=actor(user.username), action="console.login_refused",
                         subject=user.username, reason="locked")
        return None
    if not _verify_quietly(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILURES:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
            audit.record(session, actor=actor(user.username), action="console.lockout",
                         subject=user.username, until=(now + LOCKOUT).isoformat())
        return None
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    audit.record(session, actor=actor(user.username), action="console.login",
                 subject=user.username)
    return user


def _verify_quietly(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
