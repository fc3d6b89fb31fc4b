"""Council staff accounts: Argon2id password hashes, roles, and sign-in throttling.

Shared by the console's sign-in view and the ``clue-server staff`` commands. Functions take
a session and never commit; every change is audited in the caller's transaction.

Throttling counts failed sign-ins over a sliding 15-minute window, three ways:

* per client address (any username): 20 failures and that address is refused;
* per client address and username: 5 failures and that username is refused from there;
* per username (every address together): 50 failures and the username is refused from
  everywhere, which only a distributed attack reaches (one address stops at 5).

So a single client cannot lock anyone out but itself. A refused attempt costs no Argon2id
hash (64 MiB) and is not counted again, so a throttle ends 15 minutes after the failures
that caused it. ``clue-server staff unlock NAME`` (and ``--address``) is the trusted path:
it forgets the failures and lifts every throttle at once.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from clue_server.audit import services as audit
from clue_server.console.models import ROLES, ConsoleSession, LoginFailure, StaffUser

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,49}")

WINDOW = dt.timedelta(minutes=15)
PER_ADDRESS = 20
PER_ADDRESS_AND_USER = 5
PER_USER = 50
#: Failure rows older than this are deleted when the next failure is written.
KEEP_FAILURES = dt.timedelta(days=1)


class StaffError(ValueError):
    """A staff account operation was refused; the message says why."""


@dataclass(frozen=True)
class Refused:
    """A sign-in that did not succeed.

    ``retry_after`` is 0 for a wrong username or password, else the seconds until the
    throttle that refused the attempt (without checking the password) ends.
    """

    retry_after: int = 0

    @property
    def throttled(self) -> bool:
        return self.retry_after > 0


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


def valid_username(username: str) -> bool:
    """Only names that could be a staff user ever reach a query (no NUL, no 10 kB names)."""
    return USERNAME.fullmatch(username) is not None


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"a password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise StaffError(f"a password must be at most {MAX_PASSWORD_LENGTH} characters")


def add_staff(session: Session, username: str, password: str, role: str, *,
              by: str = "council") -> StaffUser:
    if not valid_username(username):
        raise StaffError("a username is 1 to 50 of a-z, 0-9, '.', '_' and '-', "
                         "starting with a letter or digit")
    if role not in ROLES:
        raise StaffError(f"a role is one of {', '.join(ROLES)}")
    check_password(password)
    if find_staff(session, username) is not None:
        raise StaffError(f"a staff user named {username!r} already exists")
    user = StaffUser(username=username, password_hash=_hasher().hash(password), role=role)
    session.add(user)
    session.flush()
    audit.record(session, actor=by, action="staff.add", subject=username, role=role)
    return user


def remove_staff(session: Session, username: str, *, by: str = "council") -> int:
    """Delete a staff user and end its sessions; returns how many sessions ended."""
    user = _existing(session, username)
    ended = end_sessions(session, user)
    session.delete(user)
    audit.record(session, actor=by, action="staff.remove", subject=username,
                 sessions_ended=ended)
    return ended


def end_sessions(session: Session, user: StaffUser) -> int:
    """End every console session of ``user`` (its cookies stop working at once)."""
    result = session.execute(delete(ConsoleSession)
                             .where(ConsoleSession.staff_user_id == user.id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def sign_out_everywhere(session: Session, username: str, *, by: str = "council") -> int:
    user = _existing(session, username)
    ended = end_sessions(session, user)
    audit.record(session, actor=by, action="staff.signout", subject=username,
                 sessions_ended=ended)
    return ended


def unlock(session: Session, username: str | None = None, *, address: str | None = None,
           by: str = "council") -> int:
    """Forget the failed sign-ins of a username and/or an address: lifts their throttles.

    Returns how many failure records went. A username must belong to a staff user.
    """
    if username is None and address is None:
        raise StaffError("name a staff user or an address to unlock")
    query = delete(LoginFailure)
    if username is not None:
        _existing(session, username)
        query = query.where(LoginFailure.username == username)
    if address is not None:
        query = query.where(LoginFailure.address == address[:64])
    forgotten = int(session.execute(query).rowcount or 0)  # type: ignore[attr-defined]
    audit.record(session, actor=by, action="staff.unlock", subject=username or address or "",
                 address=address, failures_forgotten=forgotten)
    return forgotten


def list_staff(session: Session) -> list[StaffUser]:
    return list(session.scalars(select(StaffUser).order_by(StaffUser.username)))


def find_staff(session: Session, username: str) -> StaffUser | None:
    if not valid_username(username):
        return None
    return session.scalar(select(StaffUser).where(StaffUser.username == username))


def _existing(session: Session, username: str) -> StaffUser:
    user = find_staff(session, username)
    if user is None:
        raise StaffError(f"no staff user named {username[:64]!r}")
    return user


def session_counts(session: Session) -> dict[int, int]:
    """Open console sessions per staff user id."""
    return {user_id: int(count) for user_id, count in session.execute(
        select(ConsoleSession.staff_user_id, func.count())
        .group_by(ConsoleSession.staff_user_id))}


# -- signing in -----------------------------------------------------------------------------


def authenticate(session: Session, username: str, password: str, *, address: str,
                 now: dt.datetime) -> StaffUser | Refused:
    """The staff user if the password is right and no throttle applies, else ``Refused``.

    An unknown user, a malformed name and a wrong password all give ``Refused()`` and cost
    one hash verification, so a guesser cannot tell them apart. Throttles count failures
    for every name tried, known or not, for the same reason.
    """
    name = username if valid_username(username) else ""
    address = address[:64]
    wait = throttle_wait(session, address=address, username=name, now=now)
    if wait > 0:
        return Refused(retry_after=wait)
    user = find_staff(session, name) if name else None
    too_long = len(password) > MAX_PASSWORD_LENGTH
    password = password[:MAX_PASSWORD_LENGTH]
    if user is None:
        _verify_quietly(_dummy_hash(), password)
        _record_failure(session, address=address, username=name, user=None, now=now)
        return Refused()
    if not _verify_quietly(user.password_hash, password) or too_long:
        _record_failure(session, address=address, username=name, user=user, now=now)
        return Refused()
    session.execute(delete(LoginFailure).where(LoginFailure.address == address,
                                               LoginFailure.username == name))
    user.last_login_at = now
    hasher = _hasher()
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    audit.record(session, actor=actor(user.username), action="console.login",
                 subject=user.username, address=address)
    return user


def throttle_wait(session: Session, *, address: str, username: str, now: dt.datetime) -> int:
    """Seconds until a sign-in for ``username`` from ``address`` is allowed (0: now)."""
    since = now - WINDOW
    recent = select(LoginFailure.at).where(LoginFailure.at > since)
    limits = [(recent.where(LoginFailure.address == address), PER_ADDRESS)]
    if username:
        limits += [(recent.where(LoginFailure.address == address,
                                 LoginFailure.username == username), PER_ADDRESS_AND_USER),
                   (recent.where(LoginFailure.username == username), PER_USER)]
    wait = 0.0
    for query, limit in limits:
        # The limit-th newest failure: once it leaves the window, fewer than limit remain.
        at = session.scalar(query.order_by(LoginFailure.at.desc()).offset(limit - 1).limit(1))
        if at is not None:
            wait = max(wait, (at + WINDOW - now).total_seconds())
    return int(wait + 0.999) if wait > 0 else 0


def locked_for_everyone(session: Session, username: str, now: dt.datetime) -> bool:
    """Has a distributed attack throttled this username from every address?"""
    count = session.scalar(select(func.count()).select_from(LoginFailure).where(
        LoginFailure.username == username, LoginFailure.at > now - WINDOW))
    return bool(count and count >= PER_USER)


def _record_failure(session: Session, *, address: str, username: str,
                    user: StaffUser | None, now: dt.datetime) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.at < now - KEEP_FAILURES))
    session.add(LoginFailure(at=now, address=address, username=username))
    session.flush()
    since = now - WINDOW

    def count(*where: ColumnElement[bool]) -> int:
        found = session.scalar(select(func.count()).select_from(LoginFailure)
                               .where(LoginFailure.at > since, *where))
        return int(found or 0)

    # Audited once, when a throttle starts; the attempts it refuses write nothing.
    until = (now + WINDOW).isoformat(timespec="seconds")
    if count(LoginFailure.address == address) == PER_ADDRESS:
        audit.record(session, actor="console", action="console.lockout", subject=address,
                     scope="address", until=until)
    if user is None:
        return
    if count(LoginFailure.address == address, LoginFailure.username == username) \
            == PER_ADDRESS_AND_USER:
        audit.record(session, actor="console", action="console.lockout", subject=username,
                     scope="address+user", address=address, until=until)
    if count(LoginFailure.username == username) == PER_USER:
        audit.record(session, actor="console", action="console.lockout", subject=username,
                     scope="user", until=until)


def _verify_quietly(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
