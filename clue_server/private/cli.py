"""``clue-server oprf-key`` and ``clue-server private``: the council's side of protocol v2
(docs/private-lookups.md, runbook "Moving to private look-ups")."""

from __future__ import annotations

from contextlib import AbstractContextManager

import click
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clue_server import create_app, db
from clue_server.config import Settings
from clue_server.keystore import load_oprf_keys, new_oprf_key
from clue_server.private.models import Entry
from clue_server.quotas import settings as council
from clue_server.reports.models import Report


def _session() -> AbstractContextManager[Session]:
    return db.session_scope(create_app(load_keys=False))


@click.group("oprf-key")
def oprf_key() -> None:
    """The OPRF keys private look-ups are evaluated under (protocol v2)."""


@oprf_key.command("list")
def oprf_key_list() -> None:
    """OPRF key versions, their live entries, and reports with and without an entry."""
    versions = load_oprf_keys(Settings.from_env().server_keys_dir)
    with _session() as session:
        live = dict(session.execute(select(Entry.oprf_version, func.count())
                                    .where(Entry.deleted_at.is_(None))
                                    .group_by(Entry.oprf_version)).all())
        reports = dict(session.execute(select(Report.oprf_version, func.count())
                                       .group_by(Report.oprf_version)).all())
    newest = max(versions, default=None)
    for version in sorted(versions):
        mark = " (current)" if version == newest else ""
        click.echo(f"v{version}{mark}: {live.get(version, 0)} live entr(ies), "
                   f"{reports.get(version, 0)} report(s)")
    if not versions:
        click.echo("no OPRF key: private look-ups are off (`clue-server oprf-key create`)")
    click.echo(f"reports without an entry under the current key: "
               f"{sum(n for v, n in reports.items() if v != newest)} (their reporters "
               "register them again to move them; runbook, \"Moving to private look-ups\")")


@oprf_key.command("create")
def oprf_key_create() -> None:
    """Add the next OPRF key version (the first turns protocol v2 on); restart the app
    servers. A new version needs every report registered again under it."""
    version, path = new_oprf_key(Settings.from_env().server_keys_dir)
    click.echo(f"OPRF key v{version} created ({path}); copy it to every app server's key "
               "directory, keep it in the backups, and restart the app servers")


@click.group("private")
def private() -> None:
    """Council settings of private look-ups: bucket size, which protocol look-ups use."""


@private.command("show")
def private_show() -> None:
    """The bucket prefix length, the look-up protocol the SDK follows, and whether
    protocol-1 look-ups are still answered."""
    with _session() as session:
        bits, protocol = council.private_lookups(session)
        retired = council.v1_lookups_retired(session)
    click.echo(f"prefix_bits: {bits} (about {300_000_000 >> bits:,} mobile numbers per "
               f"bucket)\nlookup_protocol: {protocol}\nv1_lookups: {_v1(retired)}")


@private.command("set")
@click.option("--prefix-bits", type=click.IntRange(*council.PREFIX_BITS_RANGE),
              help="Bits of an entry id a bucket request reveals.")
@click.option("--lookup-protocol", type=click.IntRange(1, 2),
              help="2 once every report has its entry: SDKs then look up privately.")
@click.option("--v1-lookups", type=click.Choice(["open", "retired"]),
              help="retired: protocol-1 look-ups answer 410 (needs --lookup-protocol 2).")
def private_set(prefix_bits: int | None, lookup_protocol: int | None,
                v1_lookups: str | None) -> None:
    """Change these settings (audited); app servers follow within a second."""
    if prefix_bits is None and lookup_protocol is None and v1_lookups is None:
        raise click.UsageError("give --prefix-bits, --lookup-protocol and/or --v1-lookups")
    with _session() as session:
        before = council.private_lookups(session)
        if lookup_protocol == 2 and before[1] != 2:
            missing = session.scalar(select(func.count()).select_from(Report).where(
                Report.oprf_version.is_(None)))
            if missing:
                click.echo(f"warning: {missing} report(s) have no entry yet; private "
                           "look-ups will not find them until they are registered again",
                           err=True)
        was_retired = council.v1_lookups_retired(session)
        try:
            if v1_lookups == "open":  # first, so that --lookup-protocol 1 may follow
                council.retire_v1_lookups(session, actor="council", retired=False)
            if prefix_bits is not None or lookup_protocol is not None:
                council.set_private_lookups(session, actor="council", prefix_bits=prefix_bits,
                                            lookup_protocol=lookup_protocol)
            if v1_lookups == "retired":
                council.retire_v1_lookups(session, actor="council")
        except council.SettingError as exc:
            session.rollback()
            raise click.ClickException(str(exc)) from None
        after = council.private_lookups(session)
        retired = council.v1_lookups_retired(session)
    click.echo(f"prefix_bits: {before[0]} -> {after[0]}\n"
               f"lookup_protocol: {before[1]} -> {after[1]}\n"
               f"v1_lookups: {_v1(was_retired)} -> {_v1(retired)}")


def _v1(retired: bool) -> str:
    return "retired" if retired else "open"
