"""Careful file I/O for key files: atomic, no-clobber writes and permission-checked reads."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

from ._errors import InsecureKeyFile, InvalidKeyFile, WrongKeyKind

StrPath = str | os.PathLike[str]

MAX_KEY_FILE_SIZE = 64 * 1024  # a key file is well under 1 KiB; refuse to read big junk
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
DIRECTORY_MODE = 0o700
_POSIX = os.name == "posix"


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parents with mode 0700 (existing ones untouched).

    ``os.makedirs(mode=...)`` only applies the mode to the last component, hence the loop.
    """
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # lost a race: fine, it exists now
            path.mkdir(mode=DIRECTORY_MODE)


def _fsync_directory(directory: Path) -> None:
    if not _POSIX:
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a directory; the rename still happened
        pass
    finally:
        os.close(fd)


def _refuse_existing(path: Path) -> FileExistsError:
    return FileExistsError(
        errno.EEXIST, "refusing to overwrite an existing key file (pass overwrite=True)", str(path)
    )


def check_writable(path: StrPath, *, overwrite: bool) -> Path:
    """Fail early (before any expensive sealing) if ``path`` exists and may not be replaced."""
    target = Path(path)
    if not overwrite and os.path.lexists(target):
        raise _refuse_existing(target)
    return target


def write_atomic(path: StrPath, data: bytes, *, mode: int, overwrite: bool) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The bytes go to a temporary file in the same directory created with ``mode`` by
    ``os.open`` (never wider), are fsynced, and then the temporary file is linked into
    place (no-clobber, atomically) or, with ``overwrite=True``, renamed over the target.
    """
    target = check_writable(path, overwrite=overwrite)
    directory = target.parent
    make_private_dirs(directory)
    tmp = directory / f".{target.name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, mode)
    try:
        try:
            if _POSIX:
                os.fchmod(fd, mode)  # the umask may have narrowed it; make it exact
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, target)
        else:
            _link_no_clobber(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_directory(directory)


def _link_no_clobber(tmp: Path, target: Path) -> None:
    try:
        os.link(tmp, target)  # fails with FileExistsError if target appeared meanwhile
    except FileExistsError:
        raise _refuse_existing(target) from None
    except OSError:
        # Filesystems without hard links: check, then rename (a narrow race remains).
        if os.path.lexists(target):
            raise _refuse_existing(target) from None
        os.replace(tmp, target)


def _read_bounded(fd: int, source: StrPath) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := os.read(fd, 16 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_KEY_FILE_SIZE:
            raise InvalidKeyFile(source)
    return b"".join(chunks)


def read_private_file(path: StrPath) -> bytes:
    """The bytes of a private key file, refusing one that group or others can access.

    The check is made on the opened file (``fstat``), so the file judged is the file read.
    Symbolic links are followed (Kubernetes mounts secrets through them).
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidKeyFile(path)
        data = _read_bounded(fd, path)
    finally:
        os.close(fd)
    # A .pub given for the private key is mode 0644: say what it is, not "chmod 600".
    if is_public_pem(data):
        raise WrongKeyKind(path, wanted="private")
    if _POSIX and info.st_mode & 0o077:
        raise InsecureKeyFile(path, info.st_mode)
    return data


def is_public_pem(data: bytes) -> bool:
    return data.lstrip().startswith(b"-----BEGIN PUBLIC KEY-----")


def is_private_key(data: bytes) -> bool:
    """A CLUE private/symmetric key file, or a private key in PEM or OpenSSH form."""
    head = data.lstrip()[:200]
    return (head.startswith(b"{") and b'"clue_key"' in head) or (
        head.startswith(b"-----BEGIN ") and b"PRIVATE KEY-----" in head.split(b"\n", 1)[0])


def read_public_file(path: StrPath) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidKeyFile(path)
        return _read_bounded(fd, path)
    finally:
        os.close(fd)
