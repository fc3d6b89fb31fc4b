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

import base64
import csv
import dataclasses
import json
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import click
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import keys
from clue_client import canonical, keyshare, protocol
from clue_client.client import MAX_BATCH, ClueClient
from clue_client.config import (
    HPKE_KEY_FILE,
    HPKE_PUBLIC_FILE,
    NETWORK_PURPOSE,
    NEXT_SERVER_KEY_FILE,
    NOTES_KEY_FILE,
    SERVER_KEY_FILE,
    SIGNING_KEY_FILE,
    SIGNING_PUBLIC_FILE,
    ClientConfig,
    config_path,
    keys_dir_default,
)
from clue_client.errors import (
    ClueError,
    ConfigError,
    InvalidIdentifier,
    ServerError,
    ValidationError,
)
from clue_client.models import ReportInput
from clue_client.protocol import CATEGORIES

ID_TYPE = click.Choice(canonical.ID_TYPES)
CATEGORY = click.Choice(CATEGORIES)


@click.group()
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Config file (default $CLUE_CONFIG or var/clue.json).")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None) -> None:
    """Report and check fraud identifiers through CLUE without revealing them."""
    ctx.obj = config_path(config_file)


def _passphrase(*, new: bool = False, ask: bool = False) -> bytes | None:
    """``CLUE_KEY_PASSPHRASE``, else a prompt when asked (and a terminal is there)."""
    if env := os.environ.get("CLUE_KEY_PASSPHRASE"):
        return env.encode()
    if not ask:
        return None
    text = click.prompt("passphrase for the key files", hide_input=True,
                        confirmation_prompt=new)
    return str(text).encode()


def _client(ctx: click.Context) -> ClueClient:
    passphrase = _passphrase()
    try:
        try:
            return ClueClient.from_config(ctx.obj, passphrase=passphrase)
        except ConfigError as exc:
            if not isinstance(exc.__cause__, keys.PassphraseRequired) or not sys.stdin.isatty():
                raise
            return ClueClient.from_config(ctx.obj, passphrase=_passphrase(ask=True))
    except ClueError as exc:
        raise click.ClickException(str(exc)) from exc


def _config(ctx: click.Context) -> tuple[ClientConfig, Path]:
    try:
        config = ClientConfig.load(ctx.obj)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    keys_dir = config.resolve(Path(ctx.obj).parent, ".")
    return config, keys_dir


def _private(path: Path, purpose: str) -> Any:
    passphrase = _passphrase()
    try:
        try:
            return keys.load_private_key(path, purpose=purpose, passphrase=passphrase)[0]
        except keys.PassphraseRequired:
            if not sys.stdin.isatty():
                raise
            return keys.load_private_key(path, purpose=purpose,
                                         passphrase=_passphrase(ask=True))[0]
    except (OSError, keys.KeyFileError) as exc:
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
@click.option("--passphrase", "seal", is_flag=True,
              help="Seal the private key files with a passphrase ($CLUE_KEY_PASSPHRASE or a "
                   "prompt).")
@click.pass_context
def keys_init(ctx: click.Context, server_url: str, server_key: Path | None,
              keys_dir: Path | None, seal: bool) -> None:
    """Create this member's signing and HPKE keys and the local config."""
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
    passphrase = _passphrase(new=True, ask=True) if seal else None
    signing = keys.generate_signing_key()
    keys.save_private_key(signing_path, signing, purpose="member-signing", passphrase=passphrase)
    keys.save_public_key(keys_dir / SIGNING_PUBLIC_FILE, signing.public_key())
    hpke = keys.generate_hpke_key()
    keys.save_private_key(keys_dir / HPKE_KEY_FILE, hpke, purpose="member-hpke",
                          passphrase=passphrase)
    keys.save_public_key(keys_dir / HPKE_PUBLIC_FILE, hpke.public_key())
    keys.save_symmetric_key(keys_dir / NOTES_KEY_FILE,
                            keys.new_symmetric_key("member-notes", 1), passphrase=passphrase)
    keys.save_public_key(keys_dir / SERVER_KEY_FILE, server_public, overwrite=True)
    ClientConfig(server_url=server_url, keys_dir=str(keys_dir),
                 server_key_id=protocol.server_key_id(server_public)).save(path)
    click.echo(f"signing key:   {signing_path}")
    click.echo(f"public key:    {keys_dir / SIGNING_PUBLIC_FILE}  (send this to the council)")
    click.echo(f"HPKE key:      {keys_dir / HPKE_PUBLIC_FILE}  (send this too, for network keys)")
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


def _new_network_key(ctx: click.Context) -> keys.SymmetricKey:
    keys_dir = _config(ctx)[1] if Path(ctx.obj).exists() else keys_dir_default()
    passphrase = _passphrase()
    try:
        version = keys.load_keyring(keys_dir, NETWORK_PURPOSE,
                                    passphrase=passphrase).current.version + 1
    except FileNotFoundError:
        version = 1
    except keys.KeyFileError as exc:
        raise click.ClickException(str(exc)) from exc
    key = keys.new_symmetric_key(NETWORK_PURPOSE, version)
    path = keys.keyring_path(keys_dir, NETWORK_PURPOSE, version)
    # Sealed like the member's other key files when a passphrase is in use.
    keys.save_symmetric_key(path, key, passphrase=passphrase)
    click.echo(f"network key v{version}: {path} ({keys.fingerprint(key)})")
    return key


@network_group.command("new")
@click.pass_context
def network_new(ctx: click.Context) -> None:
    """Create the next network-key version in the key directory."""
    _new_network_key(ctx)
    click.echo("share it with `clue keys network share` (sealed to each member; the council "
               "relays it but cannot read it)")


def _share(ctx: click.Context, key: keys.SymmetricKey) -> None:
    config = _config(ctx)[0]
    client = _client(ctx)
    signing = _private(config.resolve(Path(ctx.obj).parent, config.signing_key),
                       "member-signing")
    with _errors():
        me = client.me()["member_id"]
        result = keyshare.share(client, key, signing, own_member_id=me)
    click.echo(f"network key v{key.version} sealed to {len(result.shared_with)} member(s): "
               f"{', '.join(result.shared_with) or 'none yet'}")
    click.echo(f"fingerprint {keys.fingerprint(key)}: members compare it after fetching")


@network_group.command("share")
@click.option("--version", type=click.IntRange(min=1), help="Version to share (default newest).")
@click.pass_context
def network_share(ctx: click.Context, version: int | None) -> None:
    """Seal a network-key version to every admitted member and upload the envelopes."""
    keys_dir = _config(ctx)[1]
    try:
        ring = keys.load_keyring(keys_dir, NETWORK_PURPOSE, passphrase=_passphrase())
        key = ring.get(version) if version else ring.current
    except (OSError, keys.KeyFileError) as exc:
        raise click.ClickException(f"no network key to share: {exc}") from exc
    _share(ctx, key)


@network_group.command("rotate")
@click.pass_context
def network_rotate(ctx: click.Context) -> None:
    """Create version N+1 and share it. Then re-register (`clue reregister`) under it."""
    _share(ctx, _new_network_key(ctx))


@network_group.command("fetch")
@click.option("--trust", "trusted", multiple=True,
              help="Accept envelopes only from these custodian signing-key ids.")
@click.pass_context
def network_fetch(ctx: click.Context, trusted: tuple[str, ...]) -> None:
    """Fetch the network-key versions shared with this member and open them locally."""
    keys_dir = _config(ctx)[1]
    hpke = _private(keys_dir / HPKE_KEY_FILE, "member-hpke")
    client = _client(ctx)
    with _errors():
        me = client.me()["member_id"]
        try:
            result = keyshare.fetch(client, hpke, keys_dir, own_member_id=me,
                                    trusted_custodians=frozenset(trusted) or None,
                                    passphrase=_passphrase())
        except keyshare.ShareError as exc:
            raise click.ClickException(str(exc)) from exc
    for version in result.saved:
        click.echo(f"saved network key v{version} ({result.fingerprints[version]})")
    for version in result.already_had:
        click.echo(f"network key v{version}: already here, identical")
    for version in result.removed:
        click.echo(f"network key v{version} was retired by the council: removed")
    if not result.saved and not result.already_had and not result.removed:
        click.echo("nothing shared with this member yet")


@keys_group.command("publish")
@click.pass_context
def keys_publish(ctx: click.Context) -> None:
    """Register this member's HPKE public key with the server (if the council did not)."""
    keys_dir = _config(ctx)[1]
    public = keys.load_public_key(keys_dir / HPKE_PUBLIC_FILE)
    if not isinstance(public, X25519PublicKey):
        raise click.ClickException(f"{keys_dir / HPKE_PUBLIC_FILE} is not an X25519 key")
    with _errors():
        _client(ctx).publish_hpke_key(public)
    click.echo(f"HPKE key published ({keys.fingerprint(public)})")


@keys_group.group("hpke")
def hpke_group() -> None:
    """This member's HPKE key (what network keys are sealed to)."""


@hpke_group.command("rotate")
@click.pass_context
def hpke_rotate(ctx: click.Context) -> None:
    """Replace the HPKE key pair and publish the new public key.

    Network keys already fetched stay usable; envelopes not yet fetched were sealed to
    the old key, so fetch first, and ask a custodian to share again afterwards.
    """
    keys_dir = _config(ctx)[1]
    client = _client(ctx)
    new = keys.generate_hpke_key()
    with _errors():
        client.publish_hpke_key(new.public_key())
    keys.save_private_key(keys_dir / HPKE_KEY_FILE, new, purpose="member-hpke",
                          passphrase=_passphrase(), overwrite=True)
    keys.save_public_key(keys_dir / HPKE_PUBLIC_FILE, new.public_key(), overwrite=True)
    click.echo(f"HPKE key rotated and published ({keys.fingerprint(new.public_key())}); "
               "ask a custodian to run `clue keys network share` for you")


@keys_group.group("server")
def server_group() -> None:
    """The pinned server key."""


@server_group.command("refresh")
@click.pass_context
def server_refresh(ctx: click.Context) -> None:
    """Pin the server's next key when the current one endorses it; follow a promotion."""
    config, keys_dir = _config(ctx)
    current = keys.load_public_key(keys_dir / config.server_public_key)
    assert isinstance(current, Ed25519PublicKey)
    with _errors():
        info = _client(ctx).server_key_info()
    next_path = keys_dir / NEXT_SERVER_KEY_FILE
    if info["key_id"] != config.server_key_id:
        # The server now signs with a key we accepted earlier as "next": promote locally.
        if not next_path.exists() or protocol.server_key_id(
                keys.load_public_key(next_path)) != info["key_id"]:  # type: ignore[arg-type]
            raise click.ClickException("the server's key changed to one you never pinned; "
                                       "ask the council")
        next_path.replace(keys_dir / config.server_public_key)
        dataclasses.replace(config, server_key_id=info["key_id"]).save(ctx.obj)
        click.echo(f"now pinned: {info['key_id']} ({info['fingerprint']})")
        return
    nxt = info.get("next")
    if not nxt:
        click.echo(f"pinned {config.server_key_id}; no successor announced")
        return
    candidate = keys.load_public_key_pem(nxt["public_key_pem"])
    assert isinstance(candidate, Ed25519PublicKey)
    raw = candidate.public_bytes(Encoding.Raw, PublicFormat.Raw)
    try:
        current.verify(base64.urlsafe_b64decode(nxt["endorsement"]),
                       protocol.endorsement_statement(raw))
    except (InvalidSignature, ValueError) as exc:
        raise click.ClickException("the announced next server key is not endorsed by the "
                                   "pinned key; refusing it") from exc
    keys.save_public_key(next_path, candidate, overwrite=True)
    click.echo(f"pinned next server key {nxt['key_id']} ({keys.fingerprint(candidate)})")


@keys_group.group("signing")
def signing_group() -> None:
    """This member's request-signing key."""


@signing_group.command("rotate")
@click.pass_context
def signing_rotate(ctx: click.Context) -> None:
    """Replace the signing key: register a new one, switch to it, revoke the old one."""
    config, keys_dir = _config(ctx)
    path = config.resolve(Path(ctx.obj).parent, config.signing_key)
    old_client = _client(ctx)
    old = _private(path, "member-signing")
    new = keys.generate_signing_key()
    with _errors():
        old_client.add_signing_key(new.public_key())
    passphrase = _passphrase()
    keys.save_private_key(path, new, purpose="member-signing", passphrase=passphrase,
                          overwrite=True)
    keys.save_public_key(keys_dir / SIGNING_PUBLIC_FILE, new.public_key(), overwrite=True)
    with _errors():
        _client(ctx).revoke_signing_key(keys.key_id(old.public_key()))
    click.echo(f"signing key rotated: {keys.key_id(old.public_key())} revoked, "
               f"{keys.key_id(new.public_key())} in use")


# -- reporting ------------------------------------------------------------------------


@main.command()
@click.pass_context
def ping(ctx: click.Context) -> None:
    """Check the connection and both signatures."""
    with _errors():
        client = _client(ctx)
        answer = client.ping()
    click.echo(f"ok: signed in as member {answer['member_id']}")
    click.echo(_clock_line(client.clock_offset))


def _clock_line(offset: float | None) -> str:
    """The local clock against the server's (its Date header), and whether that is fine."""
    if offset is None:
        return "clock: the server sent no Date header; cannot compare clocks"
    tolerance = protocol.MAX_CLOCK_SKEW
    verdict = "ok" if abs(offset) <= tolerance / 2 else (
        "synchronise this machine's clock (NTP) soon" if abs(offset) <= tolerance
        else "requests will be refused: synchronise this machine's clock (NTP)")
    if abs(offset) < 1.5:
        return f"clock: in step with the server (within 1 s); {verdict}"
    way = "behind" if offset > 0 else "ahead of"
    return (f"clock: about {abs(offset):.0f} s {way} the server's (CLUE allows "
            f"{tolerance} s); {verdict}")


@main.command()
@click.option("--type", "id_type", type=ID_TYPE, required=True)
@click.option("--category", type=CATEGORY, required=True)
@click.option("--expires-in-days", type=click.IntRange(min=1))
@click.option("--note", help="Free text only your organisation can read back (sealed here).")
@click.argument("value")
@click.pass_context
def register(ctx: click.Context, id_type: str, category: str, expires_in_days: int | None,
             note: str | None, value: str) -> None:
    """Register one identifier used in confirmed fraud."""
    with _errors():
        report = _client(ctx).register(id_type, value, category, expires_in_days=expires_in_days,
                                       note=note, idempotency_key=_run_key())
    state = "registered" if report.created else "already registered"
    click.echo(f"{report.id} {state} ({report.id_type}, {report.category}, "
               f"expires {report.expires_at:%Y-%m-%d})")


def _run_key() -> str:
    # One key per request of this run: the SDK's retries of that request reuse it and get
    # the first answer, while a later re-run gets fresh answers ("already registered").
    return "clue-cli-" + secrets.token_hex(16)


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
                    reports = client.register_many([r.item for r in batch],
                                                   idempotency_key=_run_key())
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


@main.command()
@click.option("--from", "csv_file", required=True, type=click.File("r", encoding="utf-8-sig"),
              help="The CSV of this member's active reports (type,value,category[,...]).")
@click.option("--errors", "errors_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--progress/--no-progress", default=None)
@click.pass_context
def reregister(ctx: click.Context, csv_file: TextIO, errors_file: Path | None,
               progress: bool | None) -> None:
    """Register reports again under the newest network-key version (after a rotation).

    The server cannot re-key tokens it cannot read, so the member re-sends its own
    identifiers; once every member has, the council retires the old version.
    """
    version = _client(ctx).network_keys.current.version
    click.echo(f"re-registering under network key v{version}", err=True)
    ctx.invoke(import_csv, csv_file=csv_file, batch_size=MAX_BATCH, errors_file=errors_file,
               progress=progress)


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
                                "expires_at": r.expires_at.isoformat(), "expired": r.expired,
                                "note": r.note}
                               for r in rows], indent=2))
        return
    click.echo(f"{'ID':<42} {'TYPE':<13} {'CATEGORY':<23} {'CREATED':<11} EXPIRES")
    for r in rows:
        click.echo(f"{r.id:<42} {r.id_type:<13} {r.category:<23} {r.created_at:%Y-%m-%d}  "
                   f"{r.expires_at:%Y-%m-%d}{' (expired)' if r.expired else ''}"
                   f"{'  note: ' + r.note if r.note else ''}")
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
        asked = [(t, v) for t, v in given.items() if v is not None]
        results = {r.id_type: r for r in _client(ctx).lookup_many(asked)}
    if as_json:
        click.echo(json.dumps({t: {"matched": r.matched, "match": r.match,
                                   "categories": list(r.categories), "reporters": r.reporters,
                                   "first_reported": _d(r.first_reported),
                                   "last_reported": _d(r.last_reported),
                                   "reported_by_me": r.reported_by_me,
                                   "disputed": r.disputed}
                               for t, r in results.items()}, indent=2))
        return
    for id_type, r in results.items():
        if not r.matched:
            click.echo(f"{id_type:<13} no match")
            continue
        click.echo(f"{id_type:<13} MATCH ({r.match}) {', '.join(r.categories)}; "
                   f"{r.reporters} member(s); first {r.first_reported}, last {r.last_reported}"
                   f"{'; you reported it' if r.reported_by_me else ''}"
                   f"{'; DISPUTED' if r.disputed else ''}")


def _d(value: Any) -> str | None:
    return value.isoformat() if value else None


# -- disputes ------------------------------------------------------------------------------


@main.group("dispute")
def dispute_group() -> None:
    """File a data subject's dispute, or answer one routed to you."""


@dispute_group.command("open")
@click.option("--phone")
@click.option("--email")
@click.option("--type", "id_type", type=ID_TYPE, help="With VALUE: any identifier type.")
@click.option("--reason", required=True,
              help="The data subject's statement (no identifiers or personal data in it).")
@click.argument("value", required=False)
@click.pass_context
def dispute_open(ctx: click.Context, phone: str | None, email: str | None, id_type: str | None,
                 reason: str, value: str | None) -> None:
    """File a dispute on one identifier (tokenised here; only its token is sent)."""
    given = [(t, v) for t, v in (("phone", phone), ("email", email)) if v is not None]
    if id_type is not None or value is not None:
        if id_type is None or value is None:
            raise click.UsageError("--type needs a VALUE argument (and VALUE needs --type)")
        given.append((id_type, value))
    if len(given) != 1:
        raise click.UsageError("give exactly one identifier: --phone, --email or --type T VALUE")
    with _errors():
        try:
            filed = _client(ctx).open_dispute(given[0][0], given[0][1], reason).to_json()
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"dispute {filed['id']} {filed['status']}: routed to {filed['reports']} "
               f"report(s); reporters must answer by {filed['deadline']}")


@dispute_group.command("answer")
@click.argument("dispute_id")
@click.argument("answer", type=click.Choice(["withdraw", "uphold"]))
@click.option("--reason", required=True, help="Why (the filer sees only the counts).")
@click.pass_context
def dispute_answer(ctx: click.Context, dispute_id: str, answer: str, reason: str) -> None:
    """Answer a dispute for all your reports in it; withdraw withdraws them."""
    with _errors():
        result = _client(ctx).answer_dispute(dispute_id, answer, reason).to_json()
    click.echo(f"dispute {result['id']}: {answer} for {len(result['reports'])} report(s); "
               f"dispute now {result['status']}")


@main.command("disputes")
@click.option("--outgoing", is_flag=True, help="The disputes you filed, not those routed to you.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def disputes(ctx: click.Context, outgoing: bool, as_json: bool) -> None:
    """List open disputes on your reports (or, with --outgoing, the ones you filed)."""
    with _errors():
        client = _client(ctx)
        rows = [row.to_json() for row in (client.outgoing_disputes() if outgoing
                                          else client.incoming_disputes())]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for row in rows:
        if outgoing:
            counts = row["answers"]
            click.echo(f"{row['id']}  {row['type']:<12} {row['status']:<8} opened "
                       f"{row['opened_at']}  withdrawn {counts['withdraw']}, upheld "
                       f"{counts['uphold']}, pending {counts['pending']}")
            continue
        click.echo(f"{row['id']}  {row['type']:<12} deadline {row['deadline']}  "
                   f"reason: {row['reason']}")
        for report in row["reports"]:
            click.echo(f"    {report['id']}  {report['answer'] or 'not answered'}")
    click.echo(f"{len(rows)} dispute(s)")


# -- risk decisions ----------------------------------------------------------------------


@main.command()
@click.option("--phone")
@click.option("--email")
@click.option("--ip")
@click.option("--device-id")
@click.option("--bank-account")
@click.option("--qr-payload", help="A scanned QR payload (parsed here, never sent).")
@click.option("--amount-jpy", type=click.IntRange(min=0), help="Check a payment of this amount.")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Policy TOML (default: the SDK's). Alone, just validates and summarises it.")
@click.option("--timeout-ms", type=click.IntRange(1, 60_000),
              help="Budget for CLUE's answer (default: the policy's, 300 ms).")
@click.option("--strict", is_flag=True, help="Fail instead of falling back when CLUE is down.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def explain(ctx: click.Context, /, qr_payload: str | None, amount_jpy: int | None,
            policy_file: Path | None, timeout_ms: int | None, strict: bool, as_json: bool,
            **given: str | None) -> None:
    """Show the risk decision for identifiers, with the rules that fired and why."""
    from clue_client.decisions import Fallback, PolicyError, load_policy
    from clue_client.decisions.explain import decision_json, policy_table, render_decision
    from clue_client.decisions.service import DecisionService

    try:
        policy = load_policy(policy_file)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from exc
    if not any(given.values()) and qr_payload is None:
        if policy_file is None:
            raise click.UsageError("give identifiers to check, e.g. --phone 090-1234-5678, "
                                   "or --policy FILE to validate a policy")
        click.echo(policy_table(policy))
        return
    client = _client(ctx)
    fallback = Fallback(policy.fallback.tier, timeout_ms or policy.fallback.timeout_ms)
    client.decisions = DecisionService.create(client, policy=policy, fallback=fallback,
                                              cache=None, strict=strict)
    with _errors():  # what check_signup / check_payment do, with this command's options
        decision = client.decisions.check(given, qr_payload=qr_payload, amount_jpy=amount_jpy)
    if as_json:
        click.echo(json.dumps(decision_json(decision), indent=2, ensure_ascii=False))
    else:
        click.echo(render_decision(decision))


def _payload(argument: str) -> str:
    """A QR payload given as text, or read from an image file with zxing-cpp."""
    path = Path(argument)
    if not path.is_file():
        return argument
    import zxingcpp  # imported here: only image arguments need it
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            found = [b for b in zxingcpp.read_barcodes(image)
                     if b.format == zxingcpp.BarcodeFormat.QRCode and b.valid]
    except (OSError, UnidentifiedImageError) as exc:
        raise click.ClickException(f"{path}: not a readable image ({exc})") from exc
    if not found:
        raise click.ClickException(f"{path}: no QR code found in the image")
    if len(found) > 1:
        raise click.ClickException(f"{path}: {len(found)} QR codes in the image; crop to one")
    return str(found[0].text)


@main.command("report-sticker")
@click.argument("payload")
@click.option("--genuine-store-id", help="The 29-digit unified store ID of the real shop.")
@click.option("--note", help="Free text only your organisation can read back.")
@click.pass_context
def report_sticker(ctx: click.Context, payload: str, genuine_store_id: str | None,
                   note: str | None) -> None:
    """Report a forged or swapped static QR sticker (PAYLOAD text or an image file).

    The payload is parsed here; only the tokens of its payee and of the genuine store
    are sent.
    """
    with _errors():
        reports = _client(ctx).report_sticker_swap(_payload(payload),
                                                   genuine_store_id=genuine_store_id, note=note)
    for report in reports:
        state = "registered" if report.created else "already registered"
        click.echo(f"{report.id} {state} ({report.id_type}, {report.category})")


@main.command("check-qr")
@click.argument("payload")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def check_qr(ctx: click.Context, payload: str, as_json: bool) -> None:
    """Check a scanned static QR code (PAYLOAD text or an image file)."""
    with _errors():
        check = _client(ctx).check_static_qr(_payload(payload))
    if as_json:
        click.echo(json.dumps({"flags": sorted(check.flags), "reasons": list(check.reasons),
                               "error_code": check.error_code, "store_id": check.store_id,
                               "block": check.block,
                               "confirm_merchant": check.confirm_merchant}, indent=2))
        return
    verdict = ("BLOCK" if check.block else "CONFIRM MERCHANT" if check.confirm_merchant
               else "ok")
    click.echo(f"{verdict}: {', '.join(sorted(check.flags)) or 'no flags'}")
    for reason in check.reasons:
        click.echo(f"  - {reason}")
