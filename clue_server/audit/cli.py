"""``clue-server audit``: verify the hash chain, sign a checkpoint, show recent entries.

    clue-server audit verify            # exit 0 when intact, 1 naming the first broken entry
    clue-server audit verify --json
    clue-server audit checkpoint        # the server key signs the chain head now
    clue-server audit show --limit 20 --actor council --action member.add
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import keys
from clue_server import create_app, db
from clue_server.audit import chain, verifications
from clue_server.audit import services as audit
from clue_server.cliutil import public_key_file
from clue_server.config import Settings


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log (docs/audit.md)."""


@audit_group.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--public-key", "public_keys", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Check checkpoints against this server public key (PEM) instead of the "
                   "keys in CLUE_SERVER_KEYS_DIR; repeat for retired keys.")
def verify(as_json: bool, public_keys: tuple[Path, ...]) -> None:
    """Recompute every hash and check every checkpoint; exit 1 at the first broken entry.

    The result is stored (audit_verifications) and shown by the console's overview."""
    trusted = [public_key_file(p, Ed25519PublicKey, "the server's Ed25519 public key")
               for p in public_keys] if public_keys else _server_public_keys()
    with db.session_scope(create_app(load_keys=False)) as session:
        # Kept for the console's "last verified" (docs/audit.md).
        status, _row = verifications.verify_and_record(session, trusted, by="council",
                                                       now=db.utcnow())
    if as_json:
        click.echo(json.dumps(status.to_json(), indent=2))
    else:
        click.echo(status.summary())
    raise SystemExit(0 if status.ok else 1)


@audit_group.command("checkpoint")
def checkpoint() -> None:
    """Have the server key sign the chain head now."""
    app = create_app()
    server = app.extensions["clue_keys"]
    with db.session_scope(app) as session:
        made = audit.checkpoint(session, server)
        if made is None:
            click.echo("the audit log is empty; nothing to sign")
            return
        click.echo(f"checkpoint at entry #{made.event_id} ({made.entry_hash}) "
                   f"signed by {made.key_id}")


@audit_group.command("show")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--actor", help="Only this actor's entries (member id, council, staff:NAME).")
@click.option("--action", help="Only this action (e.g. member.add, report.register).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def show(limit: int, actor: str | None, action: str | None, as_json: bool) -> None:
    """The most recent entries, newest first."""
    with db.session_scope(create_app(load_keys=False)) as session:
        rows = [{"id": e.id, "at": chain.iso_micro(e.at), "actor": e.actor, "action": e.action,
                 "subject": e.subject, "details": e.details, "entry_hash": e.entry_hash}
                for e in audit.recent(session, limit=limit, actor=actor, action=action)]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no audit entries match")
        return
    for row in rows:
        details = json.dumps(row["details"], ensure_ascii=False, sort_keys=True)
        click.echo(f"#{row['id']:<6} {row['at']} {row['actor']:<16} {row['action']:<22} "
                   f"{row['subject']} {details}")


def _server_public_keys() -> list[Ed25519PublicKey]:
    directory = Settings.from_env().server_keys_dir
    try:
        found = chain.server_public_keys(directory)
    except keys.KeyFileError as exc:
        raise click.ClickException(f"cannot read the server keys in {directory}: {exc}") from exc
    if not found:
        raise click.ClickException(f"no server signing key in {directory}; give --public-key")
    return found
