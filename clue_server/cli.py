"""``clue-server``: the council's command line.

    clue-server init
    clue-server member add "Example Pay" --public-key member.pub
    clue-server member suspend m_0123abcd
    clue-server purge-expired
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import Flask

import keys
from clue_server import create_app, db
from clue_server.config import Settings
from clue_server.keystore import ensure_server_keys
from clue_server.members import services as members
from clue_server.migrate import upgrade
from clue_server.reports import services as reports


def _app() -> Flask:
    return create_app(load_keys=False)


@click.group()
def main() -> None:
    """Operate a CLUE server (database, members, retention).

    Settings come from the environment: CLUE_DATABASE_URL (default
    sqlite:///var/clue.db), CLUE_SERVER_KEYS_DIR (default var/server-keys).
    """


@main.command()
def init() -> None:
    """Create or upgrade the database and create the server's keys if absent."""
    settings = Settings.from_env()
    for path in ensure_server_keys(settings.server_keys_dir):
        click.echo(f"created {path}")
    upgrade(settings.database_url)
    click.echo(f"database ready: {_redacted(settings.database_url)}")
    click.echo(f"server public key: {settings.server_keys_dir / 'server-signing.pub'} "
               "(give it to members)")


@main.group()
def member() -> None:
    """Admit, suspend, resume and list members."""


@member.command("add")
@click.argument("name")
@click.option("--public-key", "public_key_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The member's Ed25519 signing public key (PEM), from `clue keys init`.")
def member_add(name: str, public_key_path: Path) -> None:
    """Admit a member and print its id."""
    try:
        public_key = keys.load_public_key(public_key_path)
    except (keys.KeyFileError, ValueError) as exc:
        raise click.ClickException(f"{public_key_path}: not a public key file ({exc})") from exc
    if not isinstance(public_key, Ed25519PublicKey):
        raise click.ClickException(f"{public_key_path}: expected an Ed25519 signing key")
    with _member_errors(), db.session_scope(_app()) as session:
        added = members.add_member(session, name, public_key)
        click.echo(added.id)


@member.command("suspend")
@click.argument("ref")
def member_suspend(ref: str) -> None:
    """Suspend a member (by id or name): its requests get 403."""
    with _member_errors(), db.session_scope(_app()) as session:
        changed = members.set_status(session, ref, "suspended")
        click.echo(f"{changed.id} suspended")


@member.command("resume")
@click.argument("ref")
def member_resume(ref: str) -> None:
    """Resume a suspended member."""
    with _member_errors(), db.session_scope(_app()) as session:
        changed = members.set_status(session, ref, "active")
        click.echo(f"{changed.id} active")


@member.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def member_list(as_json: bool) -> None:
    """List members with their status and key ids."""
    with db.session_scope(_app()) as session:
        rows = [{"id": m.id, "name": m.name, "status": m.status,
                 "created_at": m.created_at.isoformat(timespec="seconds"),
                 "keys": [k.id for k in m.keys if k.status == "active"]}
                for m in members.list_members(session)]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no members yet; admit one with `clue-server member add NAME --public-key F`")
        return
    click.echo(f"{'ID':<16} {'STATUS':<10} {'CREATED':<26} NAME")
    for row in rows:
        click.echo(f"{row['id']:<16} {row['status']:<10} {row['created_at']:<26} {row['name']}")


@main.command("purge-expired")
def purge_expired() -> None:
    """Delete reports past their expiry (recorded in the audit log)."""
    with db.session_scope(_app()) as session:
        count = reports.purge_expired(session, now=db.utcnow())
    click.echo(f"purged {count} expired report(s)")


@main.command()
@click.option("--keep", is_flag=True, help="Keep the temporary directory afterwards.")
def demo(keep: bool) -> None:
    """A five-minute tour: two members, one reports, the other looks up."""
    from clue_server.demo import run_demo

    run_demo(keep=keep)


@contextmanager
def _member_errors() -> Iterator[None]:
    try:
        yield
    except members.MemberError as exc:
        raise click.ClickException(str(exc)) from exc


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
