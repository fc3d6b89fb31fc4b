"""``clue-server staff``: council staff accounts for the web console.

    clue-server staff add alice --role admin      # asks for the password twice
    CLUE_STAFF_PASSWORD=... clue-server staff add bot --role auditor   # for scripts
    clue-server staff list
    clue-server staff unlock alice
    clue-server staff remove alice
"""

from __future__ import annotations

import os

import click

from clue_server import create_app, db
from clue_server.console import auth
from clue_server.console.models import ROLES


@click.group()
def staff() -> None:
    """Council staff who sign in to the web console (/console)."""


@staff.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="admin: every action; auditor: read-only.")
def staff_add(username: str, role: str) -> None:
    """Create a staff user (password from a hidden prompt, or CLUE_STAFF_PASSWORD)."""
    password = os.environ.get("CLUE_STAFF_PASSWORD")
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        auth.check_password(password)
        with db.session_scope(create_app(load_keys=False)) as session:
            auth.add_staff(session, username, password, role)
    except auth.StaffError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"staff user {username} ({role}) created")


@staff.command("list")
def staff_list() -> None:
    """Staff users, their role, last sign-in and lock state."""
    now = db.utcnow()
    with db.session_scope(create_app(load_keys=False)) as session:
        rows = [(u.username, u.role,
                 u.last_login_at.isoformat(timespec="seconds") if u.last_login_at else "never",
                 "locked" if u.locked_until and u.locked_until > now else "")
                for u in auth.list_staff(session)]
    if not rows:
        click.echo("no staff users yet; add one with `clue-server staff add NAME --role admin`")
    for username, role, last, locked in rows:
        click.echo(f"{username:<24} {role:<8} last sign-in {last} {locked}".rstrip())


@staff.command("unlock")
@click.argument("username")
def staff_unlock(username: str) -> None:
    """Lift a lockout (5 failed sign-ins lock an account for 15 minutes)."""
    try:
        with db.session_scope(create_app(load_keys=False)) as session:
            auth.unlock_staff(session, username)
    except auth.StaffError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"staff user {username} unlocked")


@staff.command("remove")
@click.argument("username")
def staff_remove(username: str) -> None:
    """Delete a staff user (their open console sessions end at their next request)."""
    try:
        with db.session_scope(create_app(load_keys=False)) as session:
            auth.remove_staff(session, username)
    except auth.StaffError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"staff user {username} removed")
