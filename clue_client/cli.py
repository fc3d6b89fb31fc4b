"""``clue``: a member's command line.

    clue keys init --server http://127.0.0.1:8080 --server-key server-signing.pub
    clue keys network new
    clue register --type phone --category card_theft 090-1234-5678
    clue import reports.csv
    clue lookup --phone 090-1234-5678
    clue reports
    clue withdraw r_...
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import click
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import keys
from clue_client import canonical, protocol
from clue_client.client import CATEGORIES, MAX_BATCH, ClueClient
from clue_client.config import (
    NETWORK_PURPOSE,
    SERVER_KEY_FILE,
    SIGNING_KEY_FILE,
    SIGNING_PUBLIC_FILE,
    ClientConfig,
    config_path,
    keys_dir_default,
)
from clue_client.errors import ClueError, InvalidIdentifier, ServerError, ValidationError
from clue_client.models import ReportInput

ID_TYPE = click.Choice(canonical.ID_TYPES)
CATEGORY = click.Choice(CATEGORIES)


@click.group()
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Config file (default $CLUE_CONFIG or var/clue.json).")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None) -> None:
    """Report and check fraud identifiers through CLUE without revealing them."""
    ctx.obj = config_path(config_file)


def _client(ctx: click.Context) -> ClueClient:
    passphrase = os.environ.get("CLUE_KEY_PASSPHRASE")
    try:
        return ClueClient.from_config(ctx.obj, passphrase=passphrase.encode() if passphrase
                                      else None)
    except ClueError as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def _errors() -> Iterator[None]:
    """Turn SDK errors into one clear line and a non-zero exit."""
    try:
        yield
    except ServerError as exc:
        raise click.ClickException(f"{exc.status} {exc.title}: {exc.detail}") from exc
    except ClueError as exc:
        raise click.ClickException(str(exc)) from exc


# -- keys ---------------------------------------------------------------------------


@main.group("keys")
def keys_group() -> None:
    """Create the member's keys and network keys."""


@keys_group.command("init")
@click.option("--server", "server_url", required=True, help="CLUE server URL.")
@click.option("--server-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The server's public key file from the council (recommended). Without it "
                   "the key is fetched from the server and its fingerprint shown to compare.")
@click.option("--keys-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Key directory (default $CLUE_KEYS_DIR or var/keys).")
@click.pass_context
def keys_init(ctx: click.Context, server_url: str, server_key: Path | None,
              keys_dir: Path | None) -> None:
    """Create this member's signing key and the local config."""
    path: Path = ctx.obj
    keys_dir = (keys_dir or keys_dir_default()).absolute()
    signing_path = keys_dir / SIGNING_KEY_FILE
    if signing_path.exists():
        raise click.ClickException(f"{signing_path} already exists; refusing to replace a key")
    if server_key is not None:
        server_public = keys.load_public_key(server_key)
    else:
        server_public = _fetch_server_key(server_url)
    if not isinstance(server_public, Ed25519PublicKey):
        raise click.ClickException("the server key is not an Ed25519 public key")
    signing = keys.generate_signing_key()
    keys.save_private_key(signing_path, signing, purpose="member-signing")
    keys.save_public_key(keys_dir / SIGNING_PUBLIC_FILE, signing.public_key())
    keys.save_public_key(keys_dir / SERVER_KEY_FILE, server_public, overwrite=True)
    ClientConfig(server_url=server_url, keys_dir=str(keys_dir),
                 server_key_id=protocol.server_key_id(server_public)).save(path)
    click.echo(f"signing key:   {signing_path}")
    click.echo(f"public key:    {keys_dir / SIGNING_PUBLIC_FILE}  (send this to the council)")
    click.echo(f"key id:        {keys.key_id(signing.public_key())}")
    click.echo(f"server key:    {keys.fingerprint(server_public)}")
    click.echo(f"config:        {path}")


def _fetch_server_key(server_url: str) -> Any:
    try:
        answer = requests.get(server_url.rstrip("/") + "/v1/server-key", timeout=5)
        answer.raise_for_status()
        public = keys.load_public_key_pem(answer.json()["public_key_pem"])
    except (requests.RequestException, ValueError, KeyError, keys.KeyFileError) as exc:
        raise click.ClickException(f"cannot fetch the server key from {server_url}: {exc}"
                                   ) from exc
    click.echo(f"fetched the server key; fingerprint {keys.fingerprint(public)}\n"
               "compare it with the one the council gave you before relying on it", err=True)
    return public


@keys_group.group("network")
def network_group() -> None:
    """Network keys (the HMAC keys tokens are made with; the server never holds them)."""


@network_group.command("new")
@click.pass_context
def network_new(ctx: click.Context) -> None:
    """Create the next network-key version in the key directory."""
    config = ClientConfig.load(ctx.obj) if Path(ctx.obj).exists() else None
    keys_dir = Path(config.keys_dir) if config else keys_dir_default()
    try:
        version = keys.load_keyring(keys_dir, NETWORK_PURPOSE).current.version + 1
    except FileNotFoundError:
        version = 1
    path = keys.keyring_path(keys_dir, NETWORK_PURPOSE, version)
    keys.save_symmetric_key(path, keys.new_symmetric_key(NETWORK_PURPOSE, version))
    click.echo(f"network key v{version}: {path}")
    click.echo("give this file to the other members over a secure channel; never to the council")


# -- reporting ------------------------------------------------------------------------


@main.command()
@click.pass_context
def ping(ctx: click.Context) -> None:
    """Check the connection and both signatures."""
    with _errors():
        answer = _client(ctx).ping()
    click.echo(f"ok: signed in as member {answer['member_id']}")


@main.command()
@click.option("--type", "id_type", type=ID_TYPE, required=True)
@click.option("--category", type=CATEGORY, required=True)
@click.option("--expires-in-days", type=click.IntRange(min=1))
@click.argument("value")
@click.pass_context
def register(ctx: click.Context, id_type: str, category: str, expires_in_days: int | None,
             value: str) -> None:
    """Register one identifier used in confirmed fraud."""
    with _errors():
        report = _client(ctx).register(id_type, value, category, expires_in_days=expires_in_days)
    state = "registered" if report.created else "already registered"
    click.echo(f"{report.id} {state} ({report.id_type}, {report.category}, "
               f"expires {report.expires_at:%Y-%m-%d})")


@dataclass
class _Row:
    line: int
    item: ReportInput


@main.command("import")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH), default=MAX_BATCH,
              show_default=True)
@click.option("--errors", "errors_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the rejected rows (line, reason) to this CSV file.")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar (default: when stderr is a terminal).")
@click.pass_context
def import_csv(ctx: click.Context, csv_file: TextIO, batch_size: int, errors_file: Path | None,
               progress: bool | None) -> None:
    """Register identifiers from a CSV file with columns type,value,category[,expires_in_days].

    Rows are checked here first; bad rows are reported by line number and skipped.
    Re-running the same file registers nothing twice.
    """
    rows, errors = _read_rows(csv_file)
    client = _client(ctx)
    created = existing = 0
    show = sys.stderr.isatty() if progress is None else progress
    from tqdm import tqdm

    with tqdm(total=len(rows), unit="row", disable=not show, file=sys.stderr) as bar:
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            while batch:
                try:
                    reports = client.register_many([r.item for r in batch])
                except ValidationError as exc:
                    index = exc.problem.get("index")
                    if not isinstance(index, int) or not 0 <= index < len(batch):
                        raise click.ClickException(f"the server refused a batch: {exc}") from exc
                    errors.append((batch[index].line, exc.detail))
                    batch = batch[:index] + batch[index + 1:]
                    bar.update(1)
                    continue
                except ClueError as exc:
                    done = f"{created + existing} row(s) landed before this; " if start else ""
                    raise click.ClickException(
                        f"{exc} ({done}re-run the same command to continue: nothing is "
                        "registered twice)") from exc
                created += sum(1 for r in reports if r.created)
                existing += sum(1 for r in reports if not r.created)
                bar.update(len(batch))
                break
    errors.sort()
    for line, reason in errors:
        click.echo(f"line {line}: {reason}", err=True)
    if errors_file is not None:
        with errors_file.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "reason"])
            writer.writerows(errors)
    click.echo(f"{created} registered, {existing} already registered, {len(errors)} rejected")
    if errors:
        ctx.exit(1)


def _read_rows(csv_file: TextIO) -> tuple[list[_Row], list[tuple[int, str]]]:
    reader = csv.DictReader(csv_file)
    header = [h.strip() for h in reader.fieldnames or []]
    required = {"type", "value", "category"}
    if not required <= set(header):
        raise click.ClickException(
            f"the CSV header must have columns type,value,category[,expires_in_days]; "
            f"found {','.join(header) or 'nothing'}")
    unknown = set(header) - required - {"expires_in_days"}
    if unknown:
        raise click.ClickException(f"unknown CSV column(s): {', '.join(sorted(unknown))}")
    rows: list[_Row] = []
    errors: list[tuple[int, str]] = []
    try:
        for record in reader:
            line = reader.line_num
            try:
                rows.append(_Row(line, _row_item(record)))
            except (InvalidIdentifier, ValueError) as exc:
                errors.append((line, str(exc)))
    except csv.Error as exc:
        raise click.ClickException(f"line {reader.line_num}: unreadable CSV ({exc})") from exc
    return rows, errors


def _row_item(record: dict[str, Any]) -> ReportInput:
    record = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else v
              for k, v in record.items()}
    if None in record or any(isinstance(v, list) for v in record.values()):
        raise ValueError("too many fields")
    id_type, value, category = record["type"], record["value"], record["category"]
    if id_type not in canonical.ID_TYPES:
        raise ValueError(f"unknown type {id_type!r}; one of {', '.join(canonical.ID_TYPES)}")
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; one of {', '.join(CATEGORIES)}")
    canonical.canonicalize(id_type, value)  # raises InvalidIdentifier with the reason
    days_text = record.get("expires_in_days") or ""
    days = None
    if days_text:
        if not days_text.isdigit() or int(days_text) < 1:
            raise ValueError(f"expires_in_days must be a positive whole number, not {days_text!r}")
        days = int(days_text)
    return ReportInput(id_type, value, category, days)


@main.command()
@click.argument("report_ids", nargs=-1, required=True)
@click.pass_context
def withdraw(ctx: click.Context, report_ids: tuple[str, ...]) -> None:
    """Withdraw one or more of this member's own reports."""
    client = _client(ctx)
    with _errors():
        for report_id in report_ids:
            client.withdraw(report_id)
            click.echo(f"{report_id} withdrawn")


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def reports(ctx: click.Context, as_json: bool) -> None:
    """List this member's own reports."""
    with _errors():
        rows = list(_client(ctx).reports())
    if as_json:
        click.echo(json.dumps([{"id": r.id, "type": r.id_type, "category": r.category,
                                "key_version": r.key_version,
                                "created_at": r.created_at.isoformat(),
                                "expires_at": r.expires_at.isoformat(), "expired": r.expired}
                               for r in rows], indent=2))
        return
    click.echo(f"{'ID':<42} {'TYPE':<13} {'CATEGORY':<23} {'CREATED':<11} EXPIRES")
    for r in rows:
        click.echo(f"{r.id:<42} {r.id_type:<13} {r.category:<23} {r.created_at:%Y-%m-%d}  "
                   f"{r.expires_at:%Y-%m-%d}{' (expired)' if r.expired else ''}")
    click.echo(f"{len(rows)} report(s)")


@main.command()
@click.option("--phone")
@click.option("--email")
@click.option("--ip")
@click.option("--device-id")
@click.option("--bank-account")
@click.option("--jpqr-store")
@click.option("--qr-payee")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def lookup(ctx: click.Context, /, as_json: bool, **given: str | None) -> None:
    """Check identifiers against CLUE."""
    if not any(given.values()):
        raise click.UsageError("give at least one identifier, e.g. --phone 090-1234-5678")
    with _errors():
        results = _client(ctx).lookup(**given)
    if as_json:
        click.echo(json.dumps({t: {"matched": r.matched, "match": r.match,
                                   "categories": list(r.categories), "reporters": r.reporters,
                                   "first_reported": _d(r.first_reported),
                                   "last_reported": _d(r.last_reported),
                                   "reported_by_me": r.reported_by_me}
                               for t, r in results.items()}, indent=2))
        return
    for id_type, r in results.items():
        if not r.matched:
            click.echo(f"{id_type:<13} no match")
            continue
        click.echo(f"{id_type:<13} MATCH ({r.match}) {', '.join(r.categories)}; "
                   f"{r.reporters} member(s); first {r.first_reported}, last {r.last_reported}"
                   f"{'; you reported it' if r.reported_by_me else ''}")


def _d(value: Any) -> str | None:
    return value.isoformat() if value else None
