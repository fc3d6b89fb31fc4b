"""Small helpers shared by the ``clue-server`` command groups."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import click

import keys

K = TypeVar("K")


def public_key_file(path: Path, kind: type[K], what: str) -> K:
    """The public key in ``path``, or a clear one-line error if it is not ``what``."""
    try:
        loaded = keys.load_public_key(path)
    except (keys.KeyFileError, ValueError) as exc:
        raise click.ClickException(f"{path}: not a public key file ({exc})") from exc
    if not isinstance(loaded, kind):
        raise click.ClickException(f"{path}: expected {what}")
    return loaded
