"""``clue-server``: the council's command line.

    clue-server init
    clue-server member add "Example Pay" --public-key member.pub
    clue-server member suspend m_0123abcd
    clue-server purge-expired
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from sqlalchemy import delete, func, select

import keys
from clue_client.protocol import b64url, server_key_id
from clue_server import create_app, db, idempotency
from clue_server.audit.cli import audit_group
from clue_server.auth.models import SeenNonce
from clue_server.cliutil import public_key_file
from clue_server.config import Settings
from clue_server.console.auth import KEEP_FAILURES
from clue_server.console.cli import staff as staff_group
from clue_server.console.models import ConsoleSession, LoginFailure
from clue_server.disputes.cli import dispute as dispute_group
from clue_server.errors import ClueError
from clue_server.keystore import (
    PEPPER_PURPOSE,
    ensure_server_keys,
    load_server_keys,
    promote_next_signing_key,
    retire_pepper_file,
    rotate_pepper,
    stage_next_signing_key,
)
from clue_server.members import services as members
from clue_server.migrate import upgrade
from clue_server.networkkeys import services as networkkeys
from clue_server.private.cli import oprf_key as oprf_key_group
from clue_server.private.cli import private as private_group
from clue_server.quotas.cli import quota_group
from clue_server.quotas.models import QuotaUsage
from clue_server.reports import services as reports
from clue_server.reports.models import Report
from clue_server.stats.models import UsageFlush


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
@click.option("--hpke-key", "hpke_key_path",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The member's X25519 (HPKE) public key, to receive network keys.")
def member_add(name: str, public_key_path: Path, hpke_key_path: Path | None) -> None:
    """Admit a member and print its id."""
    public_key = public_key_file(public_key_path, Ed25519PublicKey, "an Ed25519 signing key")
    hpke = (public_key_file(hpke_key_path, X25519PublicKey, "an X25519 (HPKE) key")
            if hpke_key_path else None)
    with _member_errors(), db.session_scope(_app()) as session:
        added = members.add_member(session, name, public_key, hpke_public_key=hpke)
        member_id, member_name = added.id, added.name
    click.echo(member_id)
    if hpke is None:
        click.echo(NO_HPKE_WARNING.format(name=member_name, id=member_id), err=True)


NO_HPKE_WARNING = """\
warning: {name} ({id}) has no HPKE key, so no member can send it the network key
  (a custodian's `clue keys network share` seals to 0 members for it). Without the network
  key it cannot register or look anything up. Either:
  - the member publishes the HPKE key that `clue keys init` made (member-hpke.pub):
      clue keys publish
  - or admit members with it from the start:
      clue-server member add NAME --public-key member-signing.pub --hpke-key member-hpke.pub
  Then a custodian runs `clue keys network share` and the member `clue keys network fetch`
  (docs/key-management.md). The console's overview lists members without an HPKE key."""


@member.command("add-key")
@click.argument("ref")
@click.option("--public-key", "public_key_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The member's new Ed25519 signing public key (PEM).")
def member_add_key(ref: str, public_key_path: Path) -> None:
    """Add a signing key to a member (the credential reset: a member that lost its only
    key, or whose key was stolen, gets a new one; then `member revoke-key` the old)."""
    public = public_key_file(public_key_path, Ed25519PublicKey, "an Ed25519 signing key")
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    with _member_errors(), db.session_scope(_app()) as session:
        member_id = members.find_member(session, ref).id
        try:
            networkkeys.add_signing_key(session, member_id, {"public_key": b64url(raw)},
                                        actor="council")
        except ClueError as exc:
            raise click.ClickException(exc.detail) from exc
    click.echo(f"{keys.key_id(public)} added to {member_id}; revoke the old key with "
               f"`clue-server member revoke-key {member_id} <key id>`")


@member.command("revoke-key")
@click.argument("ref")
@click.argument("key_id")
def member_revoke_key(ref: str, key_id: str) -> None:
    """Revoke one of a member's signing keys (requests signed with it then get 401)."""
    with _member_errors(), db.session_scope(_app()) as session:
        member_id = members.find_member(session, ref).id
        try:
            networkkeys.revoke_signing_key(session, member_id, key_id, actor="council")
        except ClueError as exc:
            raise click.ClickException(exc.detail) from exc
    click.echo(f"{key_id} revoked")


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
    """List members with their status, active signing key ids and HPKE key (yes/no)."""
    with db.session_scope(_app()) as session:
        rows = [{"id": m.id, "name": m.name, "status": m.status,
                 "created_at": m.created_at.isoformat(timespec="seconds"),
                 "keys": [k.id for k in m.keys if k.status == "active"],
                 "hpke_key": m.hpke_public_key is not None}
                for m in members.list_members(session)]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no members yet; admit one with `clue-server member add NAME --public-key F`")
        return
    click.echo(f"{'ID':<16} {'STATUS':<10} {'CREATED':<26} {'HPKE':<5} {'KEYS':<24} NAME")
    for row in rows:
        key_ids = ",".join(str(k) for k in row["keys"]) or "-"  # type: ignore[attr-defined]
        click.echo(f"{row['id']:<16} {row['status']:<10} {row['created_at']:<26} "
                   f"{'yes' if row['hpke_key'] else 'NO':<5} {key_ids:<24} {row['name']}")


@main.group("network-key")
def network_key() -> None:
    """Network-key versions as the server knows them (it never holds the keys)."""


@network_key.command("list")
def network_key_list() -> None:
    """Versions, how many envelopes were shared, how many reports use each."""
    with db.session_scope(_app()) as session:
        rows = networkkeys.list_versions(session)
    if not rows:
        click.echo("no network-key versions known yet")
    for row in rows:
        click.echo(f"v{row['version']:<4} {row['status']:<13} {row['envelopes']:>5} envelope(s) "
                   f"{row['reports']:>8} report(s)")


@network_key.command("retire")
@click.argument("version", type=click.IntRange(min=1))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def network_key_retire(version: int, yes: bool) -> None:
    """Retire VERSION: its tokens are refused and reports made with it deleted."""
    if not yes:
        click.confirm(f"retire network key v{version} and delete every report made with it?",
                      abort=True)
    with db.session_scope(_app()) as session:
        try:
            count = networkkeys.retire_version(session, version, now=db.utcnow())
        except networkkeys.NetworkKeyError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"network key v{version} retired; {count} report(s) made with it deleted")


@main.group()
def pepper() -> None:
    """The server's pepper versions (HMAC keys over stored tokens)."""


@pepper.command("list")
def pepper_list() -> None:
    """Pepper versions and how many reports use each."""
    settings = Settings.from_env()
    ring = keys.load_keyring(settings.server_keys_dir, PEPPER_PURPOSE)
    with db.session_scope(_app()) as session:
        counts = dict(session.execute(select(Report.pepper_version, func.count())
                                      .group_by(Report.pepper_version)).tuples().all())
    for version in ring.versions:
        mark = " (current)" if version == ring.current.version else ""
        click.echo(f"v{version}{mark}: {counts.get(version, 0)} report(s)")


@pepper.command("rotate")
def pepper_rotate() -> None:
    """Add a new pepper version; restart the app servers to use it for new rows."""
    version = rotate_pepper(Settings.from_env().server_keys_dir)
    click.echo(f"pepper v{version} created; restart the app servers")


@pepper.command("retire")
@click.argument("version", type=click.IntRange(min=1))
def pepper_retire(version: int) -> None:
    """Delete pepper VERSION; refused while any report still uses it."""
    settings = Settings.from_env()
    with db.session_scope(_app()) as session:
        used = session.scalar(select(func.count()).select_from(Report)
                              .where(Report.pepper_version == version))
    if used:
        raise click.ClickException(f"{used} report(s) still use pepper v{version}; it can be "
                                   "retired once they have expired or been re-registered")
    try:
        path = retire_pepper_file(settings.server_keys_dir, version)
    except (ValueError, keys.KeyFileError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"pepper v{version} retired ({path} deleted); restart the app servers")


@main.group("server-key")
def server_key() -> None:
    """The server's response-signing key: show, stage a successor, promote it."""


@server_key.command("show")
def server_key_show() -> None:
    """Fingerprints of the current and staged keys (members compare these)."""
    server = load_server_keys(Settings.from_env().server_keys_dir)
    click.echo(f"current: {server.signing_key_id} {keys.fingerprint(server.public_key)}")
    if server.next_signing_key is not None:
        nxt = server.next_signing_key.public_key()
        click.echo(f"next:    {server_key_id(nxt)} {keys.fingerprint(nxt)}")


@server_key.command("rotate")
def server_key_rotate() -> None:
    """Stage a successor key; it is published, endorsed by the current key, until promoted."""
    try:
        public = stage_next_signing_key(Settings.from_env().server_keys_dir)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"staged {server_key_id(public)} {keys.fingerprint(public)}; restart the app "
               "servers, let members run `clue keys server refresh`, then promote")


@server_key.command("promote")
def server_key_promote() -> None:
    """Make the staged key current (restart the app servers afterwards)."""
    try:
        public = promote_next_signing_key(Settings.from_env().server_keys_dir,
                                          stamp=db.utcnow().strftime("%Y%m%dT%H%M%SZ"))
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{server_key_id(public)} is now current; restart the app servers")


@main.command("purge-expired")
def purge_expired() -> None:
    """Delete reports past their expiry (recorded in the audit log), old idempotent
    answers and nonces, quota counters of past days, dead console sessions and old
    sign-in failures."""
    app = _app()
    now = db.utcnow()
    ttl = dt.timedelta(hours=app.extensions["clue_settings"].idempotency_ttl_hours)
    with db.session_scope(app) as session:
        count = reports.purge_expired(session, now=now)
        answers = idempotency.purge(session, older_than=now - ttl)
        session.execute(delete(SeenNonce).where(SeenNonce.expires_at < now))
        # Console sessions past their 12-hour limit and sign-in failures past throttling.
        session.execute(delete(ConsoleSession).where(
            ConsoleSession.created_at < now - dt.timedelta(hours=12)))
        session.execute(delete(LoginFailure).where(LoginFailure.at < now - KEEP_FAILURES))
        # Quota counters are read for today only (a request straddling midnight may still
        # add to yesterday's); the day's usage statistics stay in daily_usage.
        session.execute(delete(QuotaUsage).where(
            QuotaUsage.day < now.date() - dt.timedelta(days=1)))
        session.execute(delete(UsageFlush).where(
            UsageFlush.folded_at < now - dt.timedelta(days=1)))
    click.echo(f"purged {count} expired report(s) and {answers} stored idempotent answer(s)")


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


main.add_command(dispute_group)
main.add_command(audit_group)
main.add_command(quota_group)
main.add_command(staff_group)
main.add_command(oprf_key_group)
main.add_command(private_group)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
