"""``clue-server quota``: show and change the daily quotas (every change is audited).

    clue-server quota show [MEMBER]
    clue-server quota default --lookups 200000 --registrations 50000
    clue-server quota set m_0123abcd --lookups 10000
    clue-server quota clear m_0123abcd
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from clue_server import create_app, db
from clue_server.members.models import Member
from clue_server.quotas import services as quotas
from clue_server.quotas.models import MemberQuota
from clue_server.quotas.settings import quota_defaults

ACTOR = "council"


@click.group("quota")
def quota_group() -> None:
    """Per-member daily lookup and registration quotas (UTC days)."""


@quota_group.command("show")
@click.argument("member_id", required=False)
def show(member_id: str | None) -> None:
    """The defaults, and each member's limits and use today (or one member's)."""
    with _session() as session:
        lookups, registrations = quota_defaults(session)
        click.echo(f"default: lookups {lookups}/day, registrations {registrations}/day")
        if member_id is not None:
            if session.get(Member, member_id) is None:
                raise click.ClickException(f"no member {member_id!r}")
            ids = [member_id]
        else:
            ids = list(session.scalars(select(Member.id).order_by(Member.id)))
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
@click.argument("member_id")
@click.option("--lookups", type=int, help="This member's daily lookups.")
@click.option("--registrations", type=int, help="This member's daily registrations.")
def set_quota(member_id: str, lookups: int | None, registrations: int | None) -> None:
    """Override one member's limits (an option left out keeps its current override)."""
    if lookups is None and registrations is None:
        raise click.UsageError("give --lookups and/or --registrations")
    with _session() as session:
        row = session.get(MemberQuota, member_id)
        if row is not None:
            lookups = row.daily_lookups if lookups is None else lookups
            registrations = row.daily_registrations if registrations is None else registrations
        quotas.set_member_quota(session, member_id, lookups, registrations, ACTOR)
        click.echo(_describe(session, member_id))


@quota_group.command("clear")
@click.argument("member_id")
def clear(member_id: str) -> None:
    """Drop one member's overrides: it follows the defaults again."""
    with _session() as session:
        quotas.clear_member_quota(session, member_id, ACTOR)
        click.echo(_describe(session, member_id))


def _describe(session: Session, member_id: str) -> str:
    used = quotas.usage_today(session, member_id)
    quota = quotas.effective_quota(session, member_id)

    def one(name: str, n: int, limit: int, own: bool) -> str:
        return f"{name} {n}/{limit}" + (" (override)" if own else "")

    return (f"{member_id}: today "
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
