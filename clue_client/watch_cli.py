"""``clue watch``: alerts when another member reports one of this member's own customers.

    clue watch add customers.csv          # type,value,ref: evaluated once (counted)
    clue watch run --alerts alerts.jsonl  # sync the replica every minute, print alerts
    clue watch status

The watch list and its replica live in one directory (``--dir``, default ``watch/``
next to the config file); see docs/sdk.md, "Private look-ups (protocol v2)".
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO

import click

from clue_client.errors import (
    DeadlineExceeded,
    GatewayError,
    RateLimitedError,
    TransportError,
    UnavailableError,
)
from clue_client.private_lookups.store import StoreError, WatchStore
from clue_client.private_lookups.watch import Alert
from clue_client.report_csv import CsvError
from clue_client.watch_csv import read_watch_csv

#: Failures worth waiting out in ``clue watch run``: the next poll may well succeed.
_PASSING = (TransportError, DeadlineExceeded, GatewayError, UnavailableError, RateLimitedError)


def _directory(ctx: click.Context, given: Path | None) -> Path:
    return given if given is not None else Path(ctx.obj).parent / "watch"


def _store(directory: Path) -> WatchStore:
    try:
        return WatchStore(directory)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


_DIR = click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
                    help="The watch directory (default: watch/ next to the config file).")


@click.group("watch")
def watch_group() -> None:
    """Watch your own customers: an alert when another member reports one."""


@watch_group.command("add")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_DIR
@click.option("--encoding", default="auto", show_default=True,
              help="auto, utf-8, utf-16 or cp932.")
@click.pass_context
def watch_add(ctx: click.Context, csv_file: Path, directory: Path | None,
              encoding: str) -> None:
    """Evaluate the customers in CSV_FILE (columns type, value, ref) into the watch list.

    Each identifier is one counted look-up (an e-mail too); only blinded values leave
    this machine, and the references never do.
    """
    from clue_client.cli import _client, _errors

    try:
        table = read_watch_csv(csv_file, encoding=encoding)
    except CsvError as exc:
        raise click.ClickException(str(exc)) from exc
    for line, reason in table.rejected:
        click.echo(f"line {line}: skipped: {reason}", err=True)
    if not table.customers:
        raise click.ClickException(f"{csv_file}: no customer to watch")
    store = _store(_directory(ctx, directory))

    def progress(done: int, total: int) -> None:
        click.echo(f"evaluated {done:,} of {total:,}", err=True)

    with _errors():
        watched = _client(ctx).watch_add(store, table.customers, progress=progress)
    click.echo(f"watching {watched:,} entries ({len(table.customers):,} customers added, "
               f"{len(table.rejected):,} rows skipped) in {store.directory}")


@watch_group.command("run")
@_DIR
@click.option("--once", is_flag=True, help="Sync once, print the alerts, and stop.")
@click.option("--interval", default=60, show_default=True, type=click.IntRange(5, 86_400),
              help="Seconds between syncs.")
@click.option("--alerts", "alerts_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Append each alert to this JSON-lines file.")
@click.pass_context
def watch_run(ctx: click.Context, directory: Path | None, once: bool, interval: int,
              alerts_file: Path | None) -> None:
    """Sync the replica and print an alert per watched customer reported, updated or
    cleared; every INTERVAL seconds until stopped (Ctrl-C), or once."""
    from clue_client.cli import _client, _errors

    store_dir = _directory(ctx, directory)
    client = _client(ctx)
    sink = alerts_file.open("a", encoding="utf-8") if alerts_file else None
    store: WatchStore | None = None
    try:
        while True:
            try:
                # Kept in memory between polls; read again from disk after a failure,
                # which may have left memory ahead of what was saved.
                store = store or _store(store_dir)
                with _errors():
                    client.watch_poll(store, on_alert=lambda a: _show(a, sink))
            except click.ClickException as exc:
                store = None
                if once or not isinstance(exc.__cause__, _PASSING):
                    raise
                click.echo(f"warning: {exc.message}; trying again in {interval} s", err=True)
            if once:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        if sink is not None:
            sink.close()


def _show(alert: Alert, sink: IO[str] | None) -> None:
    """One line on the terminal and, if asked, one JSON line in the file (flushed: a
    consumer tailing it sees each alert at once)."""
    click.echo(describe(alert))
    if sink is not None:
        sink.write(alert.to_json() + "\n")
        sink.flush()


def describe(alert: Alert) -> str:
    answer = alert.answer
    head = f"{alert.event.upper()} {alert.ref} ({alert.id_type}, {alert.kind})"
    if answer is None:
        return f"{head}: no active report any more"
    disputed = "; disputed" if answer.disputed else ""
    return (f"{head}: {', '.join(answer.categories)}; {answer.reporters} reporter(s); "
            f"{answer.first_reported} to {answer.last_reported}{disputed}")


@watch_group.command("status")
@_DIR
@click.pass_context
def watch_status(ctx: click.Context, directory: Path | None) -> None:
    """What is watched and how far the replica is (read locally; nothing is sent)."""
    store = _store(_directory(ctx, directory))
    watch, replica = store.watch, store.replica.replica
    if watch is None:
        raise click.ClickException(f"{store.directory}: no watch list yet (clue watch add)")
    click.echo(f"watch list: {len(watch):,} entries, OPRF key version {watch.oprf_version}, "
               f"{len(watch.seen):,} currently reported")
    if replica is None or replica.issued_at == 0:
        click.echo("replica: not synced yet (clue watch run)")
        return
    issued = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(replica.issued_at))
    click.echo(f"replica: {len(replica):,} entries, cursor {replica.cursor}, last page "
               f"issued {issued}")
    if not store.checked:
        click.echo("customers added since the last run: the next run matches them all")

