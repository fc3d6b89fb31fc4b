"""Key files: private keys and symmetric keys as small JSON documents, public keys as PEM.

A plain private or symmetric key file (UTF-8 JSON, mode 0600)::

    {
      "clue_key": 1,
      "purpose": "member-signing",
      "version": 1,
      "created": "2025-01-31T09:00:00Z",
      "fingerprint": "SHA256:...",
      "key": "<standard base64 of the 32 raw private key / secret bytes>"
    }

A sealed one has ``"sealed"`` instead of ``"key"``::

      "sealed": {"kdf": "argon2id", "salt": "<b64, 16 bytes>", "t": 3, "m": 65536, "p": 1,
                 "nonce": "<b64, 12 bytes>", "ciphertext": "<b64, AES-256-GCM output>"}

The AES-256-GCM key is Argon2id(passphrase, salt, t, m KiB, p); the associated data is
the canonical JSON (sorted keys, no spaces) of the whole document without ``nonce`` and
``ciphertext``, so editing purpose, version, created, fingerprint or KDF parameters of a
sealed file is detected. On every load the fingerprint is recomputed from the key
material and compared. Any failure is ``InvalidKeyFile`` with one message.

A plain file is protected by its permissions only: whoever can write it can replace
the key and recompute everything in it. Seal files that leave a trusted machine.
"""

from __future__ import annotations

import errno
import hmac
import json
import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from argon2.exceptions import Argon2Error
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from . import _sealing
from ._asymmetric import PrivateKey, PublicKey, load_public_key_pem, public_key_pem
from ._common import (
    PRIVATE_PURPOSES,
    PURPOSES,
    SECRET_SIZE,
    SIGNING_PURPOSES,
    SYMMETRIC_PURPOSES,
    KeyInfo,
    b64decode,
    b64encode,
    check_purpose,
    check_version,
    creation_time,
    format_time,
    parse_time,
)
from ._errors import InvalidKeyFile, PassphraseRequired
from ._fileio import (
    PRIVATE_MODE,
    PUBLIC_MODE,
    StrPath,
    check_writable,
    read_private_file,
    read_public_file,
    write_atomic,
)
from ._fingerprints import fingerprint
from ._symmetric import Keyring, SymmetricKey

FORMAT_VERSION = 1
KEYS_DIR_ENV = "CLUE_KEYS_DIR"
_META_FIELDS = ("clue_key", "purpose", "version", "created", "fingerprint")
_SEALED_FIELDS = frozenset({"kdf", "salt", "t", "m", "p", "nonce", "ciphertext"})


# --------------------------------------------------------------------------- paths


def default_keys_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$CLUE_KEYS_DIR`` if set, else ``var/keys`` under the working directory (absolute)."""
    env = os.environ if environ is None else environ
    configured = env.get(KEYS_DIR_ENV)
    relative = Path(configured).expanduser() if configured else Path("var", "keys")
    return Path.cwd() / relative


def keyring_path(directory: StrPath, purpose: str, version: int) -> Path:
    """``directory / f"{purpose}-v{version}.key"``: where version ``version`` of a keyring lives."""
    check_purpose(purpose, SYMMETRIC_PURPOSES, "a keyring")
    return Path(directory) / f"{purpose}-v{check_version(version)}.key"


def private_key_path(directory: StrPath, purpose: str) -> Path:
    """``directory / f"{purpose}.key"``: the conventional name of a private key file."""
    return Path(directory) / f"{check_purpose(purpose, PRIVATE_PURPOSES, 'a private key')}.key"


def public_key_path(directory: StrPath, purpose: str) -> Path:
    """``directory / f"{purpose}.pub"``: the conventional name of a public key file."""
    return Path(directory) / f"{check_purpose(purpose, PRIVATE_PURPOSES, 'a public key')}.pub"


# --------------------------------------------------------------------------- encoding


def _check_passphrase(passphrase: bytes | None) -> None:
    if passphrase is not None and not isinstance(passphrase, bytes):
        raise TypeError("passphrase must be bytes (encode text as UTF-8) or None")


def _canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("ascii")


def _seal_aad(meta: Mapping[str, Any], sealed_header: Mapping[str, Any]) -> bytes:
    return _canonical({**meta, "sealed": dict(sealed_header)})


def _encode(
    meta: dict[str, Any],
    raw: bytes,
    passphrase: bytes | None,
    kdf_params: _sealing.Argon2Params | None,
) -> bytes:
    document: dict[str, Any] = dict(meta)
    if passphrase is None:
        document["key"] = b64encode(raw)
    else:
        if not passphrase:
            raise ValueError("an empty passphrase seals nothing; pass None for a plain file")
        params, salt = _sealing.new_seal_header(kdf_params)
        header = {"kdf": _sealing.KDF_NAME, "salt": b64encode(salt),
                  "t": params.t, "m": params.m, "p": params.p}
        sealed = _sealing.seal(raw, passphrase, params, salt, _seal_aad(meta, header))
        document["sealed"] = {**header, "nonce": b64encode(sealed.nonce),
                              "ciphertext": b64encode(sealed.ciphertext)}
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


class _Malformed(Exception):
    """Internal: anything wrong with a file; always turned into ``InvalidKeyFile``."""


def _bad() -> NoReturn:
    raise _Malformed


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            _bad()
        result[name] = value
    return result


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _bad()
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        _bad()
    return value


def _decode(data: bytes, path: StrPath, passphrase: bytes | None) -> tuple[KeyInfo, bytes]:
    """Parse, check and (if sealed) open a key file; the metadata and the raw key bytes.

    Raises ``_Malformed`` / ``ValueError`` for every defect and ``PassphraseRequired``.
    """
    document = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    if not isinstance(document, dict):
        _bad()
    body = {"key"} if "key" in document else {"sealed"}
    if set(document) != set(_META_FIELDS) | body:
        _bad()
    meta = {name: document[name] for name in _META_FIELDS}
    if _int(meta["clue_key"]) != FORMAT_VERSION or meta["purpose"] not in PURPOSES:
        _bad()
    info = KeyInfo(
        purpose=_str(meta["purpose"]),
        version=check_version(_int(meta["version"])),
        created=parse_time(_str(meta["created"])),
        fingerprint=_str(meta["fingerprint"]),
    )
    if "key" in document:
        # A passphrase was expected but the file is plain: a sealed file may have been
        # swapped for one holding another key. Treat it like any other tampering.
        if passphrase is not None:
            _bad()
        raw = b64decode(_str(document["key"]))
    else:
        sealed = document["sealed"]
        if not isinstance(sealed, dict) or set(sealed) != _SEALED_FIELDS:
            _bad()
        if sealed["kdf"] != _sealing.KDF_NAME:
            _bad()
        params = _sealing.Argon2Params(t=_int(sealed["t"]), m=_int(sealed["m"]),
                                       p=_int(sealed["p"]))
        header = {name: sealed[name] for name in ("kdf", "salt", "t", "m", "p")}
        parts = _sealing.Sealed(params, b64decode(_str(sealed["salt"])),
                                b64decode(_str(sealed["nonce"])),
                                b64decode(_str(sealed["ciphertext"])))
        if passphrase is None:
            raise PassphraseRequired(path)
        raw = _sealing.open_sealed(parts, passphrase, _seal_aad(meta, header))
    if len(raw) != SECRET_SIZE:
        _bad()
    return info, raw


def _read_key_file(path: StrPath, passphrase: bytes | None) -> tuple[KeyInfo, bytes]:
    _check_passphrase(passphrase)
    data = read_private_file(path)  # InsecureKeyFile / OSError pass through
    try:
        return _decode(data, path, passphrase)
    except (_Malformed, ValueError, TypeError, KeyError, RecursionError, Argon2Error):
        # UnicodeDecodeError and json.JSONDecodeError are ValueErrors too.
        raise InvalidKeyFile(path) from None


def _check_fingerprint(path: StrPath, info: KeyInfo, actual: str) -> None:
    if not hmac.compare_digest(info.fingerprint.encode(), actual.encode()):
        raise InvalidKeyFile(path)


def _meta(purpose: str, version: int, created: datetime, fp: str) -> dict[str, Any]:
    return {"clue_key": FORMAT_VERSION, "purpose": purpose, "version": version,
            "created": format_time(created), "fingerprint": fp}


# --------------------------------------------------------------------------- private keys


def _key_matches_purpose(key: object, purpose: str) -> bool:
    if purpose in SIGNING_PURPOSES:
        return isinstance(key, Ed25519PrivateKey)
    return isinstance(key, X25519PrivateKey)


def save_private_key(
    path: StrPath,
    key: PrivateKey,
    *,
    purpose: str,
    version: int = 1,
    passphrase: bytes | None = None,
    now: datetime | None = None,
    overwrite: bool = False,
    kdf_params: _sealing.Argon2Params | None = None,
) -> KeyInfo:
    """Write ``key`` to ``path`` (mode 0600), sealed if ``passphrase`` is given.

    ``purpose`` is "member-signing" or "server-signing" for an Ed25519 key and
    "member-hpke" for an X25519 key. Refuses to replace an existing file
    (``FileExistsError``) unless ``overwrite=True``.
    """
    check_purpose(purpose, PRIVATE_PURPOSES, "a private key")
    if not _key_matches_purpose(key, purpose):
        wanted = "Ed25519PrivateKey" if purpose in SIGNING_PURPOSES else "X25519PrivateKey"
        raise TypeError(f"a {purpose} key must be an {wanted}, not {type(key).__name__}")
    _check_passphrase(passphrase)
    info = KeyInfo(purpose, check_version(version), creation_time(now), fingerprint(key))
    check_writable(path, overwrite=overwrite)
    data = _encode(_meta(info.purpose, info.version, info.created, info.fingerprint),
                   key.private_bytes_raw(), passphrase, kdf_params)
    write_atomic(path, data, mode=PRIVATE_MODE, overwrite=overwrite)
    return info


def load_private_key(
    path: StrPath, *, purpose: str | None = None, passphrase: bytes | None = None
) -> tuple[PrivateKey, KeyInfo]:
    """The private key in ``path`` and what the file says about it.

    With ``purpose``, a file of any other purpose is ``InvalidKeyFile``. A file group or
    others can access is ``InsecureKeyFile``; a sealed file without ``passphrase`` is
    ``PassphraseRequired``; and a plain file given a passphrase is ``InvalidKeyFile``
    (it may be a sealed file swapped for another key).
    """
    if purpose is not None:
        check_purpose(purpose, PRIVATE_PURPOSES, "load_private_key")
    info, raw = _read_key_file(path, passphrase)
    if info.purpose not in PRIVATE_PURPOSES or (purpose is not None and info.purpose != purpose):
        raise InvalidKeyFile(path)
    key: PrivateKey
    if info.purpose in SIGNING_PURPOSES:
        key = Ed25519PrivateKey.from_private_bytes(raw)
    else:
        key = X25519PrivateKey.from_private_bytes(raw)
    _check_fingerprint(path, info, fingerprint(key))
    return key, info


# --------------------------------------------------------------------------- symmetric keys


def save_symmetric_key(
    path: StrPath,
    key: SymmetricKey,
    *,
    passphrase: bytes | None = None,
    overwrite: bool = False,
    kdf_params: _sealing.Argon2Params | None = None,
) -> KeyInfo:
    """Write ``key`` to ``path`` (mode 0600), sealed if ``passphrase`` is given."""
    if not isinstance(key, SymmetricKey):
        raise TypeError(f"expected a SymmetricKey, not {type(key).__name__}")
    _check_passphrase(passphrase)
    info = KeyInfo(key.purpose, key.version, creation_time(key.created), fingerprint(key))
    check_writable(path, overwrite=overwrite)
    data = _encode(_meta(info.purpose, info.version, info.created, info.fingerprint),
                   key.secret, passphrase, kdf_params)
    write_atomic(path, data, mode=PRIVATE_MODE, overwrite=overwrite)
    return info


def load_symmetric_key(
    path: StrPath, *, purpose: str | None = None, passphrase: bytes | None = None
) -> SymmetricKey:
    """The symmetric key in ``path`` (errors as for ``load_private_key``)."""
    if purpose is not None:
        check_purpose(purpose, SYMMETRIC_PURPOSES, "load_symmetric_key")
    info, raw = _read_key_file(path, passphrase)
    if info.purpose not in SYMMETRIC_PURPOSES or (purpose is not None and info.purpose != purpose):
        raise InvalidKeyFile(path)
    key = SymmetricKey(purpose=info.purpose, version=info.version, secret=raw,
                       created=info.created)
    _check_fingerprint(path, info, fingerprint(key))
    return key


def load_keyring(
    directory: StrPath, purpose: str, *, passphrase: bytes | None = None
) -> Keyring:
    """Every ``{purpose}-v{N}.key`` file in ``directory`` as a keyring, newest first.

    A file whose recorded version differs from the ``N`` in its name is
    ``InvalidKeyFile``; no matching file at all is ``FileNotFoundError``.
    """
    check_purpose(purpose, SYMMETRIC_PURPOSES, "a keyring")
    pattern = re.compile(re.escape(purpose) + r"-v([1-9][0-9]{0,8})\.key")
    found: list[SymmetricKey] = []
    for path in sorted(Path(directory).iterdir()):
        match = pattern.fullmatch(path.name)
        if match is None:
            continue
        key = load_symmetric_key(path, purpose=purpose, passphrase=passphrase)
        if key.version != int(match.group(1)):
            raise InvalidKeyFile(path)
        found.append(key)
    if not found:
        raise FileNotFoundError(
            errno.ENOENT, f"no {purpose} key files ({purpose}-v<N>.key)", os.fspath(directory)
        )
    return Keyring(found)


# --------------------------------------------------------------------------- public keys


def save_public_key(path: StrPath, public_key: PublicKey, *, overwrite: bool = False) -> None:
    """Write ``public_key`` to ``path`` as PEM SubjectPublicKeyInfo, mode 0644."""
    data = public_key_pem(public_key).encode("ascii")
    write_atomic(path, data, mode=PUBLIC_MODE, overwrite=overwrite)


def load_public_key(path: StrPath) -> PublicKey:
    """The Ed25519 or X25519 public key in the PEM file ``path``."""
    return load_public_key_pem(read_public_file(path), source=os.fspath(path))
