"""``clue-server demo``: a five-minute tour with two members on a throw-away server.

Everything runs for real: a fresh SQLite database and server keys in a
temporary directory, gunicorn with two workers, and the ``clue`` CLI of two
members. One member registers a phone number; the other looks it up.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from clue_server.devserver import Gunicorn
from clue_server.keystore import ensure_server_keys
from clue_server.migrate import upgrade


def run_demo(keep: bool = False) -> None:
    root = Path(tempfile.mkdtemp(prefix="clue-demo-"))
    bindir = Path(sys.executable).parent
    server_env = {"CLUE_DATABASE_URL": f"sqlite:///{root / 'server' / 'clue.db'}",
                  "CLUE_SERVER_KEYS_DIR": str(root / "server" / "keys")}
    ensure_server_keys(root / "server" / "keys")
    upgrade(server_env["CLUE_DATABASE_URL"])

    def sh(who: str, *args: str, env: dict[str, str] | None = None) -> str:
        click.secho(f"\n[{who}] $ {shlex.join(args)}", fg="cyan")
        result = subprocess.run([str(bindir / args[0]), *args[1:]], cwd=root,
                                env={**os.environ, **server_env, **(env or {})},
                                capture_output=True, text=True, check=False)
        output = (result.stdout + result.stderr).rstrip()
        if output:
            click.echo(output)
        if result.returncode != 0:
            raise click.ClickException(f"step failed ({result.returncode})")
        return result.stdout.strip()

    click.secho(f"CLUE demo in {root}", bold=True)
    with Gunicorn(server_env, workers=2, log=root / "server" / "gunicorn.log") as server:
        click.echo(f"server running at {server.url} (gunicorn, 2 workers, SQLite)")
        server_pub = str(root / "server" / "keys" / "server-signing.pub")
        members = {"alpha": "Alpha Pay", "beta": "Beta Bank"}
        for short, name in members.items():
            env = {"CLUE_CONFIG": f"{short}/clue.json"}
            sh(name, "clue", "keys", "init", "--server", server.url, "--server-key", server_pub,
               "--keys-dir", f"{short}/keys", env=env)
            sh("council", "clue-server", "member", "add", name, "--public-key",
               f"{short}/keys/member-signing.pub", "--hpke-key", f"{short}/keys/member-hpke.pub")
        alpha = {"CLUE_CONFIG": "alpha/clue.json"}
        beta = {"CLUE_CONFIG": "beta/clue.json"}
        sh("Alpha Pay", "clue", "keys", "network", "new", env=alpha)
        click.secho("\n# the network key is sealed (HPKE) to each member's key; the council "
                    "relays envelopes it cannot open", fg="yellow")
        sh("Alpha Pay", "clue", "keys", "network", "share", env=alpha)
        sh("Beta Bank", "clue", "keys", "network", "fetch", env=beta)
        sh("Alpha Pay", "clue", "register", "--type", "phone", "--category", "card_theft",
           "090-1234-5678", env=alpha)
        sh("Beta Bank", "clue", "lookup", "--phone", "+81 90 1234 5678", "--email",
           "someone@example.com", env=beta)
        click.secho("\nBeta Bank sees the match (phone written differently, same number) "
                    "without learning who reported it; the server saw only tokens.", bold=True)
    if keep:
        click.echo(f"\nleft everything in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
