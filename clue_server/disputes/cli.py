"""``clue-server dispute``: the council's view of disputes and its one lever on them.

    clue-server dispute list [--all] [--json]
    clue-server dispute suspend-overdue [--yes] [--dispute d_...]
    clue-server dispute deadline [DAYS]     # show, or set, the days reporters have to answer
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from clue_server import create_app, db
from clue_server.disputes import services
from clue_server.errors import ClueError
from clue_server.quotas import settings as council


@click.group("dispute")
def dispute() -> None:
    """See every dispute, its age and deadline; suspend reports past the deadline."""


@dispute.command("list")
@click.option("--all", "include_closed", is_flag=True, help="Also resolved and expired ones.")
@click.option("--json", "as_json", is_flag=True)
def dispute_list(include_closed: bool, as_json: bool) -> None:
    """List open disputes (oldest first) with each reporter's answer."""
    app = create_app(load_keys=False)
    now = db.utcnow()
    with db.session_scope(app) as session:
        rows = services.list_disputes(session, now, include_closed=include_closed)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=_json_default, ensure_ascii=False))
        return
    for row in rows:
        flag = "  OVERDUE" if row["overdue"] else ""
        click.echo(f"{row['id']}  {row['type']:<12} {row['status']:<8} by {row['opened_by']} "
                   f"({row['opened_by_name']})  age {row['age_days']}d  deadline "
                   f"{row['deadline']:%Y-%m-%d %H:%M}Z{flag}")
        click.echo(f"    reason: {row['reason']}")
        for entry in row["answers"]:
            state = entry["answer"] or "pending"
            said = f": {entry['answer_reason']}" if entry["answer_reason"] else ""
            gone = f" ({entry['suspended']} suspended)" if entry["suspended"] else ""
            click.echo(f"    {entry['reporter_id']} ({entry['reporter_name']}) "
                       f"{len(entry['report_ids'])} report(s): {state}{said}{gone}")
    click.echo(f"{len(rows)} dispute(s)")


@dispute.command("suspend-overdue")
@click.option("--dispute", "dispute_id", help="Only this dispute.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def dispute_suspend_overdue(dispute_id: str | None, yes: bool) -> None:
    """Suspend the reports of reporters that missed a dispute's deadline (audited)."""
    app = create_app(load_keys=False)
    now = db.utcnow()
    if not yes:
        with db.session_scope(app) as session:
            due = [r for r in services.list_disputes(session, now)
                   if r["overdue"] and dispute_id in (None, r["id"])]
        if not due:
            click.echo("no overdue dispute")
            return
        silent = sum(len(e["report_ids"]) for r in due for e in r["answers"]
                     if e["answer"] is None)
        click.confirm(f"suspend up to {silent} report(s) of silent reporters in "
                      f"{len(due)} overdue dispute(s)?", abort=True)
    try:
        with db.session_scope(app) as session:
            count = services.suspend_overdue(session, now, "council", dispute_id=dispute_id)
    except ClueError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"suspended {count} report(s)")


@dispute.command("deadline")
@click.argument("days", required=False,
                type=click.IntRange(1, council.MAX_DISPUTE_DEADLINE_DAYS))
def dispute_deadline(days: int | None) -> None:
    """Show the council setting dispute.deadline_days, or set it to DAYS (audited).

    A change applies to disputes filed after it; open disputes keep their deadline.
    """
    app = create_app(load_keys=False)
    with db.session_scope(app) as session:
        if days is None:
            click.echo(f"reporters have {council.dispute_deadline_days(session)} day(s) to "
                       "answer a dispute")
            return
        try:
            previous = council.set_dispute_deadline_days(session, days, actor="council")
        except council.SettingError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"reporters now have {days} day(s) to answer disputes filed from now on "
               f"(was {previous})")


def _json_default(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return db.iso_utc(value)
    raise TypeError(f"not JSON: {type(value).__name__}")
