"""Report notes only the reporting member can read.

A note is sealed here with AES-256-GCM under the member's own notes key
(``member-notes.key``, never shared, not even with other members) and stored by
the server as opaque bytes. The associated data binds it to the report's type
and category so a note cannot be moved to another report kind unnoticed.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import keys
from clue_client.protocol import b64url, unb64url

PURPOSE = "member-notes"
MAX_NOTE_BYTES = 1000  # UTF-8 text; the server takes at most 1,028 sealed bytes


def _aad(id_type: str, category: str) -> bytes:
    return b"clue/v1 note\x00" + id_type.encode() + b"\x00" + category.encode()


def seal(key: keys.SymmetricKey, text: str, *, id_type: str, category: str) -> str:
    data = text.encode("utf-8")
    if len(data) > MAX_NOTE_BYTES:
        raise ValueError(f"a note holds at most {MAX_NOTE_BYTES} bytes of UTF-8 text")
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(key.secret).encrypt(nonce, data, _aad(id_type, category))
    return b64url(sealed)


def open_note(key: keys.SymmetricKey, blob: str, *, id_type: str, category: str) -> str | None:
    """The note's text, or ``None`` if it does not open with this key (another key, tampered)."""
    try:
        sealed = unb64url(blob)
        return AESGCM(key.secret).decrypt(sealed[:12], sealed[12:],
                                          _aad(id_type, category)).decode("utf-8")
    except (InvalidTag, ValueError):
        return None
