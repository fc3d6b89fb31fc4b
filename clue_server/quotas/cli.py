"""``clue-server quota``: show and change the daily quotas (every change is audited).

    clue-server quota show [MEMBER]                 # a member by id or by name
    clue-server quota default --lookups 200000 --registrations 50000
    clue-server quota set "Example Pay" --lookups 10000
    clue-server quota clear m_0123abcd
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from clue_server import create_app, db
from clue_server.members import services as members
from clue_server.members.models import Member
from clue_server.quotas import services as quotas
from clue_server.quotas.models import MemberQuota
from clue_server.quotas.settings import quota_defaults

ACTOR = "council"


@click.group("quota")
def quota_group() -> None:
    """Per-member daily lookup and registration quotas (UTC days)."""


@quota_group.command("show")
@click.argument("member", required=False)
def show(member: str | None) -> None:
    """The defaults, and each member's limits and use today (or one member's, by id or name)."""
    with _session() as session:
        lookups, registrations = quota_defaults(session)
        click.echo(f"default: lookups {lookups}/day, registrations {registrations}/day")
        if member is not None:
            ids = [_member_id(session, member)]
        else:
            ids = list(session.scalars(select(Member.id).order_by(Member.name)))
        for mid in ids:
            click.echo(_describe(session, mid))


@quota_group.command("default")
@click.option("--lookups", type=int, help="Identifiers a member may look up per day.")
@click.option("--registrations", type=int, help="Reports a member may create per day.")
def default(lookups: int | None, registrations: int | None) -> None:
    """Set the council defaults that apply to members without an override."""
    if lookups is None and registrations is None:
        raise click.UsageError("give --lookups and/or --registrations")
    with _session() as session:
        new_lookups, new_registrations = quotas.set_defaults(session, lookups, registrations,
                                                             ACTOR)
    click.echo(f"default: lookups {new_lookups}/day, registrations {new_registrations}/day")


@quota_group.command("set")
@click.argument("member")
@click.option("--lookups", type=click.IntRange(0, quotas.MAX_QUOTA),
              help="This member's daily lookups.")
@click.option("--registrations", type=click.IntRange(0, quotas.MAX_QUOTA),
              help="This member's daily registrations.")
def set_quota(member: str, lookups: int | None, registrations: int | None) -> None:
    """Override one member's limits (by id or name; an option left out keeps its current
    override). Warns when today's use is already over a new limit."""
    if lookups is None and registrations is None:
        raise click.UsageError("give --lookups and/or --registrations")
    with _session() as session:
        member_id = _member_id(session, member)
        row = session.get(MemberQuota, member_id)
        if row is not None:
            lookups = row.daily_lookups if lookups is None else lookups
            registrations = row.daily_registrations if registrations is None else registrations
        quotas.set_member_quota(session, member_id, lookups, registrations, ACTOR)
        click.echo(_describe(session, member_id))
        used = quotas.usage_today(session, member_id)
        for name, count, limit in (("lookups", used.lookups, used.lookups_limit),
                                   ("registrations", used.registrations,
                                    used.registrations_limit)):
            if count > limit:
                click.echo(f"warning: {count} {name} were already made today, more than the "
                           f"new limit of {limit}: further {name} are refused (429) until "
                           "00:00 UTC", err=True)


@quota_group.command("clear")
@click.argument("member")
def clear(member: str) -> None:
    """Drop one member's overrides (by id or name): it follows the defaults again."""
    with _session() as session:
        member_id = _member_id(session, member)
        quotas.clear_member_quota(session, member_id, ACTOR)
        click.echo(_describe(session, member_id))


def _member_id(session: Session, ref: str) -> str:
    try:
        return members.find_member(session, ref).id
    except members.MemberError as exc:
        raise click.ClickException(str(exc)) from exc


def _describe(session: Session, member_id: str) -> str:
    used = quotas.usage_today(session, member_id)
    quota = quotas.effective_quota(session, member_id)
    member = session.get(Member, member_id)
    name = member.name if member is not None else "?"

    def one(what: str, n: int, limit: int, own: bool) -> str:
        return f"{what} {n}/{limit}" + (" (override)" if own else "")

    return (f"{name} ({member_id}): today "
            + one("lookups", used.lookups, used.lookups_limit, quota.lookups_overridden) + ", "
            + one("registrations", used.registrations, used.registrations_limit,
                  quota.registrations_overridden))


@contextmanager
def _session() -> Iterator[Session]:
    app = create_app(load_keys=False)
    try:
        with db.session_scope(app) as session:
            yield session
    except quotas.QuotaError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        app.extensions["clue_engine"].dispose()
