"""``clue``: a member's command line.

    clue keys init --server http://127.0.0.1:8080 --server-key server-signing.pub
    clue keys network new
    clue register --type phone --category card_theft 090-1234-5678
    clue import reports.csv
    clue lookup --phone 090-1234-5678
    clue reports
    clue withdraw r_...
    clue watch add customers.csv && clue watch run --alerts alerts.jsonl
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    check_server_url,
    config_path,
    keys_dir_default,
)
from clue_client.errors import (
    AuthenticationError,
    ClueError,
    ConfigError,
    InvalidIdentifier,
    NotFoundError,
    ServerError,
)
from clue_client.models import Report
from clue_client.protocol import CATEGORIES
from clue_client.watch_cli import watch_group

ID_TYPE = click.Choice(canonical.ID_TYPES)
CATEGORY = click.Choice(CATEGORIES)


@click.group()
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Config file (default $CLUE_CONFIG or var/clue.json).")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None) -> None:
    """Report and check fraud identifiers through CLUE without revealing them."""
    ctx.obj = config_path(config_file)


main.add_command(watch_group)


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


def _config(ctx: click.Context, *, check_url: bool = True) -> tuple[ClientConfig, Path]:
    try:
        config = ClientConfig.load(ctx.obj, check_url=check_url)
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
    except AuthenticationError as exc:
        if "unknown or revoked key" in exc.detail:
            raise click.ClickException(_not_admitted(exc)) from exc
        raise click.ClickException(f"{exc.status} {exc.title}: {exc.detail}") from exc
    except ServerError as exc:
        raise click.ClickException(f"{exc.status} {exc.title}: {exc.detail}") from exc
    except ClueError as exc:
        raise click.ClickException(str(exc)) from exc


def _not_admitted(exc: AuthenticationError) -> str:
    """What to do when the server does not know this member's signing key."""
    lines = [f"the server does not know this member's signing key ({exc.detail})."]
    ctx = click.get_current_context(silent=True)
    keys_dir = None
    if ctx is not None and ctx.obj is not None:
        try:
            keys_dir = ClientConfig.load(Path(ctx.obj)).resolve(Path(ctx.obj).parent, ".")
        except ConfigError:
            keys_dir = None
    shown = []
    for label, name in (("signing key", SIGNING_PUBLIC_FILE), ("HPKE key", HPKE_PUBLIC_FILE)):
        path = (keys_dir / name) if keys_dir is not None else Path(name)
        try:
            print_ = keys.fingerprint(keys.load_public_key(path))
        except (OSError, keys.KeyFileError):
            print_ = "fingerprint unknown"
        shown.append(f"  {label + ':':<13}{path}  ({print_})")
    lines += ["If the council has not admitted you yet, send it your public keys:", *shown,
              "and it runs: clue-server member add \"<your name>\" --public-key "
              f"{SIGNING_PUBLIC_FILE} --hpke-key {HPKE_PUBLIC_FILE}",
              "If you were admitted before, the key may have been revoked or rotated: ask "
              "the council."]
    return "\n".join(lines)


# -- keys ---------------------------------------------------------------------------


@main.group("keys")
def keys_group() -> None:
    """Create the member's keys and network keys."""


@keys_group.command("init")
@click.option("--server", "server_url", required=True,
              help="The CLUE server's base URL (http:// or https://, without /v1).")
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
    """Create this member's signing and HPKE keys and the local config.

    The server URL and key are checked first: the URL must be http(s) (a trailing /v1 is
    dropped), and the key must be the server's public signing key (compared with what
    the server publishes when it answers). To change them later: `clue config set`.
    """
    path: Path = ctx.obj
    keys_dir = (keys_dir or keys_dir_default()).absolute()
    signing_path = keys_dir / SIGNING_KEY_FILE
    if signing_path.exists():
        raise click.ClickException(
            f"{signing_path} already exists; refusing to replace a key. To change the server "
            "URL or key of this member use `clue config set server-url|server-key ...`; for "
            "another member use another --keys-dir and CLUE_CONFIG")
    server_url = _server_url(server_url)
    if server_key is not None:
        server_public = _checked_server_key(server_url, server_key, keys_dir)
    else:
        server_public = _fetch_server_key(server_url)
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
    click.echo("next: the council admits you with both public keys:\n"
               f"  clue-server member add \"<name>\" --public-key {keys_dir / SIGNING_PUBLIC_FILE}"
               f" --hpke-key {keys_dir / HPKE_PUBLIC_FILE}")


def _server_url(url: str, param_hint: str = "--server") -> str:
    """Check the server URL; drop a trailing /v1 (the client adds it) with a notice."""
    text = url.strip().rstrip("/")
    dropped = text.endswith("/v1")
    try:
        fixed = check_server_url(text[:-3] if dropped else text)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from None
    if dropped:
        click.echo(f"note: using {fixed}, the server's base URL (the client adds /v1 itself)",
                   err=True)
    return fixed


def _checked_server_key(server_url: str, path: Path, keys_dir: Path) -> Ed25519PublicKey:
    """The server's public signing key from ``path``, refused unless it is one.

    Refuses a private key, an HPKE key, garbage, and this member's own public keys; when
    the server answers, the key must be the one it signs with (or its announced next).
    """
    try:
        public = keys.load_public_key(path)
    except keys.WrongKeyKind as exc:
        raise click.BadParameter(f"{exc}. The council gives you the server's public key "
                                 "(server-signing.pub).", param_hint="--server-key") from exc
    except (OSError, keys.KeyFileError) as exc:
        raise click.BadParameter(f"{path} is not a public key file (PEM): ask the council "
                                 "for the server's public key, server-signing.pub",
                                 param_hint="--server-key") from exc
    if not isinstance(public, Ed25519PublicKey):
        raise click.BadParameter(f"{path} is an HPKE (X25519) key, not the server's Ed25519 "
                                 "signing key; ask the council for server-signing.pub",
                                 param_hint="--server-key")
    for own in (SIGNING_PUBLIC_FILE, HPKE_PUBLIC_FILE):
        mine = keys_dir / own
        if mine.exists() and _same_key(mine, public):
            raise click.BadParameter(f"{path} is this member's own public key ({mine}), not "
                                     "the server's; use the server-signing.pub the council "
                                     "gave you", param_hint="--server-key")
    published = _published_server_key(server_url)
    if published is None:
        return public
    current, following = published
    wanted = protocol.server_key_id(public)
    if wanted == protocol.server_key_id(current):
        return public
    if following is not None and wanted == protocol.server_key_id(following):
        raise click.BadParameter(
            f"{path} is the server's announced NEXT key, not the one it signs with now "
            f"({keys.fingerprint(current)}); ask the council for the current "
            "server-signing.pub", param_hint="--server-key")
    raise click.BadParameter(
        f"{path} ({keys.fingerprint(public)}) is not the key the server at {server_url} "
        f"signs with ({keys.fingerprint(current)}). Check the URL, and ask the council for "
        "that server's server-signing.pub", param_hint="--server-key")


def _same_key(path: Path, public: Ed25519PublicKey) -> bool:
    try:
        return keys.fingerprint(keys.load_public_key(path)) == keys.fingerprint(public)
    except (OSError, keys.KeyFileError):
        return False


def _published_server_key(server_url: str
                          ) -> tuple[Ed25519PublicKey, Ed25519PublicKey | None] | None:
    """The keys the server publishes (current, next), or None if it cannot be reached.

    A server that answers with something other than a CLUE server key (a wrong URL) is
    an error; one that does not answer at all only gets a warning (it may not run yet).
    """
    try:
        answer = requests.get(server_url + "/v1/server-key", timeout=5)
    except requests.RequestException as exc:
        click.echo(f"warning: cannot reach {server_url} to confirm the server key "
                   f"({type(exc).__name__}); only checked that it is an Ed25519 public key. "
                   "Run `clue ping` once the server is up.", err=True)
        return None
    try:
        answer.raise_for_status()
        data = answer.json()
        current = keys.load_public_key_pem(data["public_key_pem"])
        nxt = data.get("next")
        following = keys.load_public_key_pem(nxt["public_key_pem"]) if nxt else None
    except (requests.RequestException, ValueError, KeyError, TypeError,
            keys.KeyFileError) as exc:
        raise click.BadParameter(
            f"{server_url} does not look like a CLUE server: GET /v1/server-key answered "
            f"{answer.status_code} without a server key ({type(exc).__name__}). Check the URL "
            "(the server's base URL, e.g. http://127.0.0.1:8080)",
            param_hint="--server") from exc
    if not isinstance(current, Ed25519PublicKey) or not (
            following is None or isinstance(following, Ed25519PublicKey)):
        raise click.BadParameter(f"{server_url} publishes a server key that is not Ed25519",
                                 param_hint="--server")
    return current, following


def _fetch_server_key(server_url: str) -> Ed25519PublicKey:
    try:
        answer = requests.get(server_url + "/v1/server-key", timeout=5)
        answer.raise_for_status()
        public = keys.load_public_key_pem(answer.json()["public_key_pem"])
    except (requests.RequestException, ValueError, KeyError, TypeError,
            keys.KeyFileError) as exc:
        raise click.ClickException(f"cannot fetch the server key from {server_url}: {exc}"
                                   ) from exc
    if not isinstance(public, Ed25519PublicKey):
        raise click.ClickException("the server key is not an Ed25519 public key")
    click.echo(f"fetched the server key; fingerprint {keys.fingerprint(public)}\n"
               "compare it with the one the council gave you before relying on it", err=True)
    return public


# -- config ------------------------------------------------------------------------------


@main.group("config")
def config_group() -> None:
    """Show or change this member's local configuration (server URL, server key)."""


@config_group.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the config file's settings and the keys they point at."""
    config, keys_dir = _config(ctx, check_url=False)
    click.echo(f"config:        {Path(ctx.obj).absolute()}")
    click.echo(f"server-url:    {config.server_url}")
    click.echo(f"keys-dir:      {keys_dir}")
    click.echo(f"server-key:    {config.server_key_id}  "
               f"({_fingerprint_of(keys_dir / config.server_public_key)})")
    try:
        signing = keys.load_public_key(keys_dir / SIGNING_PUBLIC_FILE)
        assert isinstance(signing, Ed25519PublicKey)
        click.echo(f"signing key:   {keys.key_id(signing)}  ({keys.fingerprint(signing)})")
    except (OSError, keys.KeyFileError, AssertionError):
        click.echo(f"signing key:   {keys_dir / SIGNING_PUBLIC_FILE} missing")
    click.echo(f"hpke key:      {_fingerprint_of(keys_dir / HPKE_PUBLIC_FILE)}")
    click.echo(f"timeout:       {config.timeout:g} s")


def _fingerprint_of(path: Path) -> str:
    try:
        return keys.fingerprint(keys.load_public_key(path))
    except (OSError, keys.KeyFileError) as exc:
        return f"unreadable: {exc}"


@config_group.command("set")
@click.argument("name", type=click.Choice(["server-url", "server-key", "timeout"]))
@click.argument("value")
@click.pass_context
def config_set(ctx: click.Context, name: str, value: str) -> None:
    """Change one setting: server-url URL, server-key FILE (checked as in `keys init`, then
    pinned), or timeout SECONDS."""
    config, keys_dir = _config(ctx, check_url=False)
    if name == "server-url":
        config = dataclasses.replace(config, server_url=_server_url(value, "VALUE"))
    elif name == "server-key":
        key_path = Path(value)
        if not key_path.is_file():
            raise click.BadParameter(f"no such file: {value}", param_hint="VALUE")
        public = _checked_server_key(config.server_url, key_path, keys_dir)
        keys.save_public_key(keys_dir / config.server_public_key, public, overwrite=True)
        (keys_dir / NEXT_SERVER_KEY_FILE).unlink(missing_ok=True)
        config = dataclasses.replace(config, server_key_id=protocol.server_key_id(public))
    else:
        try:
            timeout = float(value)
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= 300:
            raise click.BadParameter("the timeout is a number of seconds from 0 to 300",
                                     param_hint="VALUE")
        config = dataclasses.replace(config, timeout=timeout)
    config.save(Path(ctx.obj))
    click.echo(f"{name} set; `clue config show` to review, `clue ping` to test")


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


def _identifier_options(help_verb: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--phone``, ``--email``, ... ``--qr-payee``, each repeatable."""
    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for id_type in reversed(canonical.ID_TYPES):
            command = click.option(f"--{id_type.replace('_', '-')}", id_type, multiple=True,
                                   metavar="VALUE",
                                   help=f"{help_verb} by {id_type} (repeatable).")(command)
        return command
    return decorate


def _given(given: dict[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    return [(id_type, value) for id_type in canonical.ID_TYPES
            for value in given.get(id_type, ())]


@main.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--encoding", default="auto", show_default=True,
              help="auto: UTF-8 (with or without BOM) or UTF-16 with BOM, else CP932 "
                   "(Shift_JIS, as Excel in Japan saves). Or force utf-8, cp932 (shift_jis), "
                   "utf-16.")
@click.option("--delimiter", default="auto", show_default=True,
              help="auto (from the header line), comma, tab or semicolon.")
@click.option("--result", "result_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Per-row results: line, type, category, outcome, report_id, reason "
                   "(default NAME.result.csv next to the input).")
@click.option("--rejected", "rejected_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Rejected rows as they were, plus a reason column, to fix and import "
                   "again (default NAME.rejected.csv next to the input).")
@click.option("--ignore-unknown-columns", is_flag=True,
              help="Import even if the header has columns CLUE does not know (they are "
                   "ignored).")
@click.option("--check", "check_only", is_flag=True,
              help="Check every row (also against the server's limits) and write the result "
                   "files, but register nothing.")
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH), default=MAX_BATCH,
              show_default=True, help="At most this many rows per request.")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar (default: when stderr is a terminal).")
@click.pass_context
def import_csv(ctx: click.Context, csv_file: Path, encoding: str, delimiter: str,
               result_path: Path | None, rejected_path: Path | None,
               ignore_unknown_columns: bool, check_only: bool, batch_size: int,
               progress: bool | None) -> None:
    """Register the identifiers in a CSV file (columns type, value, category and optionally
    expires_in_days and note; English or Japanese names, see docs/csv-import.md).

    Every row is checked here first, against the server's limits too, so bad rows never
    cost a round trip. Writes NAME.result.csv (which report each row became) and, for
    rejected rows, NAME.rejected.csv to fix and import again. Re-running the same file
    registers nothing twice.
    """
    from clue_client.report_csv import CsvError, default_paths, read_report_csv

    try:
        table = read_report_csv(csv_file, encoding=encoding, delimiter=delimiter,
                                ignore_unknown_columns=ignore_unknown_columns)
    except CsvError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"reading {table.describe()}", err=True)
    if not table.rows:
        click.echo(f"{csv_file}: no rows to import (only a header)")
        return
    default_result, default_rejected = default_paths(csv_file)
    result_path = result_path or default_result
    rejected_path = rejected_path or default_rejected
    for out in (result_path, rejected_path):
        if out.absolute() == csv_file.absolute():
            raise click.BadParameter(f"{out} is the input file", param_hint="--result/--rejected")
        if not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
            raise click.ClickException(f"cannot write {out}: no such directory or not "
                                       "writable; choose another path with --result/--rejected")
    client = _client(ctx)
    _run_import(ctx, client, table, result_path, rejected_path, batch_size=batch_size,
                progress=progress, check_only=check_only)


def _run_import(ctx: click.Context, client: ClueClient, table: Any, result_path: Path,
                rejected_path: Path, *, batch_size: int, progress: bool | None,
                check_only: bool) -> None:
    from tqdm import tqdm

    from clue_client.report_csv import Outcome, write_rejected, write_results
    from clue_client.report_import import Importer, Limits, over_retention

    with _errors():
        try:
            limits = Limits.from_json(client.limits())
        except NotFoundError:
            click.echo("note: the server does not publish its limits (GET /v1/limits); rows "
                       "are checked against them as it answers", err=True)
            limits = Limits()
    rows = table.rows
    if any(r.item is not None and r.item.note for r in rows) and client.notes_key is None:
        raise click.ClickException("the file has notes, but this member has no notes key "
                                   "(member-notes.key, made by `clue keys init`); nothing was "
                                   "sent")
    to_send = sum(1 for r in rows if r.item is not None and over_retention(r.item, limits) is None)
    remaining = limits.registrations_remaining
    if not check_only and remaining is not None and to_send > remaining:
        click.echo(f"warning: {to_send:,} row(s) to send, and your daily registration quota "
                   f"has {remaining:,} left (it resets at {limits.resets_at}); rows already "
                   "registered do not count, the rest may be refused", err=True)
    if check_only:
        outcomes = []
        for row in rows:
            why = row.error if row.item is None else over_retention(row.item, limits)
            outcomes.append(Outcome("rejected", reason=why) if why else Outcome("valid"))
        stopped = None
    else:
        show = sys.stderr.isatty() if progress is None else progress
        with tqdm(total=len(rows), unit="row", disable=not show, file=sys.stderr) as bar:
            importer = Importer(client, limits, batch_size=batch_size, progress=bar.update)
            outcomes, stopped = importer.run(rows)
    rejected = [(row, o.reason or "") for row, o in zip(rows, outcomes, strict=True)
                if o.outcome == "rejected"]
    try:
        write_results(result_path, table, outcomes)
        if rejected:
            write_rejected(rejected_path, table, rejected)
        elif rejected_path.exists():
            rejected_path.unlink()  # from an earlier run of this import: no longer true
    except OSError as exc:
        landed = sum(1 for o in outcomes if o.outcome in ("created", "existing"))
        raise click.ClickException(
            f"cannot write the result files ({exc.strerror or exc}: {exc.filename}); "
            f"{landed:,} row(s) landed. Run the same import again with --result/--rejected "
            "elsewhere: nothing is registered twice") from exc
    counts = {name: sum(1 for o in outcomes if o.outcome == name)
              for name in ("created", "existing", "rejected", "not_sent", "valid")}
    if check_only:
        click.echo(f"{counts['valid']:,} row(s) would be sent, {counts['rejected']:,} rejected"
                   " (nothing was registered)")
    else:
        click.echo(f"{counts['created']:,} registered, {counts['existing']:,} already "
                   f"registered, {counts['rejected']:,} rejected"
                   + (f", {counts['not_sent']:,} not sent" if counts["not_sent"] else ""))
    for row, reason in rejected[:_EXAMPLES]:
        click.echo(f"  line {row.line}: {reason}", err=True)
    if len(rejected) > _EXAMPLES:
        click.echo(f"  ... and {len(rejected) - _EXAMPLES:,} more", err=True)
    click.echo(f"results:  {result_path}")
    if rejected:
        click.echo(f"rejected: {rejected_path}  (the rows as they were, with a reason column: "
                   "fix them there and import that file)")
    if stopped:
        click.echo(f"stopped: {stopped}", err=True)
    if rejected or stopped:
        ctx.exit(1)


_EXAMPLES = 5


@main.command()
@click.option("--from", "csv_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The CSV of this member's active reports (as for `clue import`).")
@click.option("--encoding", default="auto", show_default=True)
@click.option("--delimiter", default="auto", show_default=True)
@click.option("--progress/--no-progress", default=None)
@click.pass_context
def reregister(ctx: click.Context, csv_file: Path, encoding: str, delimiter: str,
               progress: bool | None) -> None:
    """Register reports again under the newest network-key version (after a rotation).

    The server cannot re-key tokens it cannot read, so the member re-sends its own
    identifiers; once every member has, the council retires the old version. Writes the
    same result files as `clue import`.
    """
    version = _client(ctx).network_keys.current.version
    click.echo(f"re-registering under network key v{version}", err=True)
    ctx.invoke(import_csv, csv_file=csv_file, encoding=encoding, delimiter=delimiter,
               result_path=None, rejected_path=None, ignore_unknown_columns=False,
               check_only=False, batch_size=MAX_BATCH, progress=progress)


@main.command()
@click.argument("report_ids", nargs=-1)
@_identifier_options("Withdraw your reports of an identifier,")
@click.option("--category", type=CATEGORY, help="With an identifier: only this category.")
@click.pass_context
def withdraw(ctx: click.Context, /, report_ids: tuple[str, ...], category: str | None,
             **given: tuple[str, ...]) -> None:
    """Withdraw this member's own reports: by id (r_...) or by identifier.

    \b
        clue withdraw r_018bcfe5680000a3f1c29e5b7d4e18
        clue withdraw --phone 090-1234-5678 [--category card_theft]

    By identifier, every report of yours with exactly that identifier (under any
    network-key version) is withdrawn; it is tokenised here and only the token is sent.
    """
    pairs = _given(given)
    if not report_ids and not pairs:
        raise click.UsageError("give report ids (r_...) or an identifier, e.g. "
                               "--phone 090-1234-5678")
    if category is not None and not pairs:
        raise click.UsageError("--category narrows a withdrawal by identifier")
    client = _client(ctx)
    missing = []
    with _errors():
        for report_id in report_ids:
            client.withdraw(report_id)
            click.echo(f"{report_id} withdrawn")
        for (id_type, value), (exact, folded) in zip(pairs, _find(client, pairs), strict=True):
            chosen = [r for r in exact if category is None or r.category == category]
            if not chosen:
                missing.append(_not_found(id_type, value, category, exact, folded))
                continue
            for report in chosen:
                client.withdraw(report.id)
                click.echo(f"{report.id} withdrawn ({id_type} {value}, {report.category})")
    for message in missing:
        click.echo(message, err=True)
    if missing:
        ctx.exit(1)


def _find(client: ClueClient, pairs: list[tuple[str, str]]) -> list[tuple[list[Report],
                                                                          list[Report]]]:
    if not pairs:
        return []
    try:
        return client.find_reports(pairs)
    except InvalidIdentifier as exc:
        raise click.ClickException(str(exc)) from exc


def _not_found(id_type: str, value: str, category: str | None, exact: list[Report],
               folded: list[Report]) -> str:
    where = f" in category {category}" if category else ""
    message = f"no report of yours for {id_type} {value}{where}"
    if exact:
        message += f" (yours are in {', '.join(sorted({r.category for r in exact}))})"
    if folded:
        message += (f"; {len(folded)} of yours match only its folded form (+tag or gmail "
                    f"dots): {', '.join(r.id for r in folded)}; withdraw those by id if meant")
    return message


@main.command()
@_identifier_options("Find your reports")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def reports(ctx: click.Context, /, as_json: bool, **given: tuple[str, ...]) -> None:
    """List this member's own reports, or find those of identifiers (--phone ... ).

    The identifiers are tokenised here; only tokens are sent.
    """
    pairs = _given(given)
    client = _client(ctx)
    found: list[tuple[tuple[str, str] | None, Report, str | None]]
    with _errors():
        if pairs:
            found = [(pair, r, match) for pair, (exact, folded) in zip(pairs, _find(client, pairs),
                                                                      strict=True)
                     for r, match in [*((r, "exact") for r in exact),
                                      *((r, "folded") for r in folded)]]
        else:
            found = [(None, r, None) for r in client.reports()]
    if as_json:
        click.echo(json.dumps([_report_json(r, pair, match) for pair, r, match in found],
                              indent=2, ensure_ascii=False))
        return
    click.echo(f"{'ID':<42} {'TYPE':<13} {'CATEGORY':<23} {'CREATED':<11} EXPIRES")
    for pair, r, match in found:
        found_by = ""
        if pair is not None:
            found_by = f"  for {pair[1]}" + (" (folded form only)" if match == "folded" else "")
        click.echo(f"{r.id:<42} {r.id_type:<13} {r.category:<23} {r.created_at:%Y-%m-%d}  "
                   f"{r.expires_at:%Y-%m-%d}{' (expired)' if r.expired else ''}"
                   f"{f'  SUSPENDED {r.suspended_at:%Y-%m-%d}' if r.suspended_at else ''}"
                   f"{found_by}{'  note: ' + r.note if r.note else ''}")
    suspended = sum(1 for _, r, _ in found if r.suspended)
    click.echo(f"{len(found)} report(s)" + (
        f", {suspended} suspended by the council after a missed dispute deadline (they no "
        "longer match; see `clue disputes`)" if suspended else ""))
    if pairs and not found:
        ctx.exit(1)


def _report_json(r: Report, pair: tuple[str, str] | None, match: str | None
                 ) -> dict[str, Any]:
    data = {"id": r.id, "type": r.id_type, "category": r.category,
            "key_version": r.key_version, "created_at": r.created_at.isoformat(),
            "expires_at": r.expires_at.isoformat(), "expired": r.expired,
            "suspended": r.suspended,
            "suspended_at": r.suspended_at.isoformat() if r.suspended_at else None,
            "note": r.note}
    if pair is not None:
        data.update({"value": pair[1], "match": match})
    return data


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
    """List open disputes on your reports, and expired ones that got a report of yours
    suspended (or, with --outgoing, the ones you filed)."""
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
        if row.get("status") == "expired":
            click.echo(f"{row['id']}  {row['type']:<12} EXPIRED: the deadline "
                       f"{row['deadline']} passed without your answer  reason: {row['reason']}")
        else:
            click.echo(f"{row['id']}  {row['type']:<12} deadline {row['deadline']}  "
                       f"reason: {row['reason']}")
        for report in row["reports"]:
            state = report["answer"] or "not answered"
            if report.get("suspended_at"):
                state += (f"; SUSPENDED by the council {report['suspended_at']} (no longer "
                          f"matches): withdraw it (`clue withdraw {report['id']}`) or ask the "
                          "council to review")
            click.echo(f"    {report['id']}  {state}")
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


_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif",
                             ".tiff", ".heic", ".pdf"})


def _payload(argument: str) -> str:
    """A QR payload given as text, or read from an image file with zxing-cpp.

    An argument that names no file but looks like a path (an image suffix, a directory
    separator) is a mistyped path, not a payload: "no such file", never "invalid payload".
    An EMV payload starts with its format indicator ``000201``.
    """
    path = Path(argument)
    if not path.is_file():
        looks_like_path = (Path(argument.strip()).suffix.lower() in _IMAGE_SUFFIXES
                           or os.sep in argument or "/" in argument
                           or (os.altsep is not None and os.altsep in argument))
        if path.is_dir():
            raise click.ClickException(f"{argument}: a directory, not an image or a payload")
        if looks_like_path and not argument.lstrip().startswith("000201"):
            raise click.ClickException(f"{argument}: no such file (give an image of the QR "
                                       "code, or its payload text)")
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
