"""Symmetric keys (network key and pepper versions) and keyrings of them.

A keyring works like ``cryptography``'s ``MultiFernet``: the newest key (highest
version) is the one to use for new work, any key listed is accepted for old work, and
rotating means adding a newer version and, once nothing needs it, dropping the oldest.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from ._common import SECRET_SIZE, SYMMETRIC_PURPOSES, check_purpose, check_version, creation_time
from ._errors import UnknownKeyVersion


@dataclass(frozen=True, eq=False)
class SymmetricKey:
    """A 32-byte secret with its purpose, version and creation time.

    Its ``repr`` never shows the secret, and equality compares secrets in constant time.
    """

    purpose: str
    version: int
    secret: bytes = field(repr=False)
    created: datetime

    def __post_init__(self) -> None:
        check_purpose(self.purpose, SYMMETRIC_PURPOSES, "a symmetric key")
        check_version(self.version)
        if not isinstance(self.secret, bytes) or len(self.secret) != SECRET_SIZE:
            raise ValueError(f"a symmetric key secret must be {SECRET_SIZE} bytes")
        if self.created.tzinfo is None or self.created.utcoffset() is None:
            raise ValueError("created must be timezone-aware")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SymmetricKey):
            return NotImplemented
        return (
            self.purpose == other.purpose
            and self.version == other.version
            and self.created == other.created
            and hmac.compare_digest(self.secret, other.secret)
        )

    def __hash__(self) -> int:
        return hash((self.purpose, self.version))


def new_symmetric_key(purpose: str, version: int, *, now: datetime | None = None) -> SymmetricKey:
    """A fresh random key for ``purpose`` ("network" or "pepper") at ``version``."""
    return SymmetricKey(
        purpose=check_purpose(purpose, SYMMETRIC_PURPOSES, "a symmetric key"),
        version=check_version(version),
        secret=secrets.token_bytes(SECRET_SIZE),
        created=creation_time(now),
    )


class Keyring:
    """The versions of one symmetric key, newest first.

    >>> ring = Keyring([new_symmetric_key("pepper", 1), new_symmetric_key("pepper", 2)])
    >>> ring.versions
    (2, 1)
    >>> ring.current.version
    2
    """

    __slots__ = ("_by_version", "_keys")

    def __init__(self, keys: Iterable[SymmetricKey]) -> None:
        ordered = sorted(keys, key=lambda k: k.version, reverse=True)
        if not ordered:
            raise ValueError("a keyring needs at least one key")
        for key in ordered:
            if not isinstance(key, SymmetricKey):
                raise TypeError(f"a keyring holds SymmetricKey objects, not {type(key).__name__}")
        purposes = {k.purpose for k in ordered}
        if len(purposes) != 1:
            raise ValueError(f"a keyring holds keys of one purpose, got {sorted(purposes)}")
        by_version = {k.version: k for k in ordered}
        if len(by_version) != len(ordered):
            raise ValueError("a keyring cannot hold two keys of the same version")
        self._keys: tuple[SymmetricKey, ...] = tuple(ordered)
        self._by_version = by_version

    @property
    def purpose(self) -> str:
        return self._keys[0].purpose

    @property
    def current(self) -> SymmetricKey:
        """The newest key (highest version): use it for everything new."""
        return self._keys[0]

    @property
    def versions(self) -> tuple[int, ...]:
        """Every version held, newest first."""
        return tuple(k.version for k in self._keys)

    def get(self, version: int) -> SymmetricKey:
        """The key of ``version``; raises ``UnknownKeyVersion`` if it is not held."""
        try:
            return self._by_version[version]
        except (KeyError, TypeError):
            raise UnknownKeyVersion(version, self.purpose) from None

    def __iter__(self) -> Iterator[SymmetricKey]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"Keyring(purpose={self.purpose!r}, versions={self.versions!r})"
