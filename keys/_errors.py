"""The exceptions of the ``keys`` package.

Every way a key file or an envelope can be wrong on purpose or by accident (wrong
passphrase, edited metadata, flipped bit, truncated file, garbage, wrong purpose) ends
in one opaque exception whose message never says which: an attacker probing a file or
an envelope learns nothing from the answer. Only conditions the operator must fix and
that reveal nothing about the key (loose file permissions, a missing passphrase, an
unknown key version) get their own exception.
"""

from __future__ import annotations

import os


class KeyFileError(Exception):
    """Base class of every error raised by ``keys``."""


class InvalidKeyFile(KeyFileError):
    """The key file (or public key data) cannot be used, for a reason we do not say.

    Raised alike for a wrong passphrase, a tampered, truncated, corrupt or garbage file,
    a file of another purpose, and a sealed file replaced by a plain one.
    """

    def __init__(self, source: str | os.PathLike[str] | None = None) -> None:
        where = f"{os.fspath(source)}: " if source is not None else ""
        super().__init__(
            f"{where}invalid key file: corrupt, tampered with, of another purpose, "
            "or the passphrase is wrong"
        )


class WrongKeyKind(InvalidKeyFile):
    """A public key where a private key file belongs, or a private key where a public one
    does: a set-up mistake, named as such (it reveals nothing about any secret)."""

    def __init__(self, source: str | os.PathLike[str] | None, *, wanted: str) -> None:
        where = f"{os.fspath(source)}: " if source is not None else ""
        if wanted == "private":
            message = (f"{where}this is a public key, not a private key file; point at the "
                       "private key made with it (the .key file, e.g. member-signing.key, "
                       "mode 0600), not the .pub you hand out")
        else:
            message = (f"{where}this is a private key, not a public key; use the public key "
                       "file (.pub, e.g. server-signing.pub for the server's key) and keep "
                       "this one to its owner")
        KeyFileError.__init__(self, message)
        self.wanted = wanted


class InsecureKeyFile(KeyFileError):
    """A private key file is readable or writable by group or others (like ssh refuses)."""

    def __init__(self, path: str | os.PathLike[str], mode: int) -> None:
        self.path = os.fspath(path)
        self.mode = mode
        super().__init__(
            f"{self.path}: private key file is accessible by group or others "
            f"(mode {mode & 0o777:04o}); run `chmod 600 {self.path}`"
        )


class PassphraseRequired(KeyFileError):
    """A sealed key file was loaded without a passphrase."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        super().__init__(f"{self.path}: key file is sealed; a passphrase is required")


class UnknownKeyVersion(KeyFileError):
    """A keyring has no key of the requested version."""

    def __init__(self, version: int, purpose: str | None = None) -> None:
        self.version = version
        self.purpose = purpose
        what = f"{purpose} key" if purpose else "key"
        super().__init__(f"no {what} with version {version}")


class UnwrapError(KeyFileError):
    """An HPKE envelope could not be opened, for a reason we do not say."""

    def __init__(self) -> None:
        super().__init__(
            "cannot unwrap envelope: corrupt, tampered with, bound to other info or "
            "associated data, or not addressed to this key"
        )
