"""``clue-server staff``: council staff accounts for the web console.

    clue-server staff add alice --role admin      # asks for the password (checked), then again
    CLUE_STAFF_PASSWORD=... clue-server staff add bot --role auditor   # for scripts
    clue-server staff list                        # role, last sign-in, sessions, throttled?
    clue-server staff unlock alice                # forget failed sign-ins: lifts throttles
    clue-server staff unlock --address 203.0.113.7
    clue-server staff signout alice               # end every console session of alice
    clue-server staff remove alice                # also ends its sessions
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
    if not auth.valid_username(username):
        raise click.ClickException("a username is 1 to 50 of a-z, 0-9, '.', '_' and '-', "
                                   "starting with a letter or digit")
    password = os.environ.get("CLUE_STAFF_PASSWORD")
    if password is None:
        password = _new_password()
    try:
        auth.check_password(password)
        with db.session_scope(create_app(load_keys=False)) as session:
            auth.add_staff(session, username, password, role)
    except auth.StaffError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"staff user {username} ({role}) created")


def _new_password() -> str:
    """Ask until a password is long enough, then once more to confirm it."""
    while True:
        password: str = click.prompt("Password", hide_input=True)
        try:
            auth.check_password(password)
        except auth.StaffError as exc:
            click.echo(f"Error: {exc}", err=True)
            continue
        again: str = click.prompt("Repeat for confirmation", hide_input=True)
        if again == password:
            return password
        click.echo("Error: the two entered values do not match", err=True)


@staff.command("list")
def staff_list() -> None:
    """Staff users: role, last sign-in, open sessions, and a throttle on the account."""
    now = db.utcnow()
    with db.session_scope(create_app(load_keys=False)) as session:
        counts = auth.session_counts(session)
        rows = [(u.username, u.role,
                 u.last_login_at.isoformat(timespec="seconds") if u.last_login_at else "never",
                 counts.get(u.id, 0),
                 "THROTTLED (run staff unlock)" if auth.locked_for_everyone(
                     session, u.username, now) else "")
                for u in auth.list_staff(session)]
    if not rows:
        click.echo("no staff users yet; add one with `clue-server staff add NAME --role admin`")
    for username, role, last, sessions, locked in rows:
        click.echo(f"{username:<24} {role:<8} last sign-in {last:<25} {sessions} session(s) "
                   f"{locked}".rstrip())


@staff.command("unlock")
@click.argument("username", required=False)
@click.option("--address", help="Also (or only) forget the failures from this client address "
                                "(an IPv6 address counts by its /64, e.g. 2001:db8::/64).")
def staff_unlock(username: str | None, address: str | None) -> None:
    """Forget failed sign-ins of USERNAME (and/or --address): lifts every throttle on them.

    The trusted way back in when a guessing attack has throttled an account: run it on the
    server, then sign in.
    """
    try:
        with db.session_scope(create_app(load_keys=False)) as session:
            forgotten = auth.unlock(session, username, address=address)
    except auth.StaffError as exc:
        raise click.ClickException(str(exc)) from exc
    who = " and ".join(x for x in (username, address) if x)
    click.echo(f"{who} unlocked ({forgotten} failed sign-in(s) forgotten)")


@staff.command("signout")
@click.argument("username")
def staff_signout(username: str) -> None:
    """End every console session of USERNAME now (a copied cookie stops working too)."""
    try:
        with db.session_scope(create_app(load_keys=False)) as session:
            ended = auth.sign_out_everywhere(session, username)
    except auth.StaffError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{ended} session(s) of {username} ended")


@staff.command("remove")
@click.argument("username")
def staff_remove(username: str) -> None:
    """Delete a staff user; its console sessions end at once."""
    try:
        with db.session_scope(create_app(load_keys=False)) as session:
            ended = auth.remove_staff(session, username)
    except auth.StaffError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"staff user {username} removed ({ended} session(s) ended)")
