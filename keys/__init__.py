"""Key management shared by the CLUE server and SDK (never imports Flask).

Keys, key files, keyrings of versioned symmetric keys, and HPKE wrapping of the
network key for each member. See ``keys/README.md`` for who holds which key.

Example::

    >>> import keys, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> sk = keys.generate_signing_key()
    >>> info = keys.save_private_key(d / "member-signing.key", sk, purpose="member-signing")
    >>> loaded, same = keys.load_private_key(d / "member-signing.key", purpose="member-signing")
    >>> same == info
    True
    >>> ring = keys.Keyring([keys.new_symmetric_key("network", 1)])
    >>> hpke = keys.generate_hpke_key()
    >>> env = keys.wrap(hpke.public_key(), b"secret", info=b"clue/v1 example")
    >>> keys.unwrap(hpke, env, info=b"clue/v1 example")
    b'secret'

The OPRF of private look-ups (RFC 9497, ristretto255-SHA512): ``OprfKey`` on the server,
``oprf_blind`` / ``oprf_finalize`` on the member (see ``keys/_oprf.py``).

Every tampering case is ``InvalidKeyFile`` (files), ``UnwrapError`` (envelopes) or
``OprfError`` (OPRF elements), one opaque message each.
"""

from ._asymmetric import (
    PrivateKey,
    PublicKey,
    generate_hpke_key,
    generate_signing_key,
    load_public_key_pem,
    public_key_pem,
)
from ._common import PURPOSES, KeyInfo
from ._errors import (
    InsecureKeyFile,
    InvalidKeyFile,
    KeyFileError,
    PassphraseRequired,
    UnknownKeyVersion,
    UnwrapError,
    WrongKeyKind,
)
from ._files import (
    KEYS_DIR_ENV,
    default_keys_dir,
    keyring_path,
    load_keyring,
    load_private_key,
    load_public_key,
    load_symmetric_key,
    private_key_path,
    public_key_path,
    save_private_key,
    save_public_key,
    save_symmetric_key,
)
from ._fingerprints import fingerprint, key_id
from ._hpke import unwrap, unwrap_symmetric_key, wrap, wrap_symmetric_key
from ._oprf import (
    OPRF_OUTPUT_BYTES,
    OPRF_SUITE,
    OprfBlind,
    OprfError,
    OprfKey,
    oprf_blind,
    oprf_blind_batch,
    oprf_finalize,
    oprf_finalize_batch,
)
from ._sealing import Argon2Params
from ._symmetric import Keyring, SymmetricKey, new_symmetric_key

__all__ = [
    "KEYS_DIR_ENV",
    "OPRF_OUTPUT_BYTES",
    "OPRF_SUITE",
    "PURPOSES",
    "Argon2Params",
    "InsecureKeyFile",
    "InvalidKeyFile",
    "KeyFileError",
    "KeyInfo",
    "Keyring",
    "OprfBlind",
    "OprfError",
    "OprfKey",
    "PassphraseRequired",
    "PrivateKey",
    "PublicKey",
    "SymmetricKey",
    "UnknownKeyVersion",
    "UnwrapError",
    "WrongKeyKind",
    "default_keys_dir",
    "fingerprint",
    "generate_hpke_key",
    "generate_signing_key",
    "key_id",
    "keyring_path",
    "load_keyring",
    "load_private_key",
    "load_public_key",
    "load_public_key_pem",
    "load_symmetric_key",
    "new_symmetric_key",
    "oprf_blind",
    "oprf_blind_batch",
    "oprf_finalize",
    "oprf_finalize_batch",
    "private_key_path",
    "public_key_path",
    "public_key_pem",
    "save_private_key",
    "save_public_key",
    "save_symmetric_key",
    "unwrap",
    "unwrap_symmetric_key",
    "wrap",
    "wrap_symmetric_key",
]
