"""Entries: what the register stores per identifier under protocol version 2.

From a member's token to a sealed answer, in four pure steps (docs/private-lookups.md
§3 to §5 specify the bytes; the worked example there is checked by the tests):

1. ``oprf_input(token)``: the OPRF input is the 32-byte v1 token itself,
   ``HMAC-SHA256(network_key, "clue/v1" 0x00 type 0x00 canonical)``.
2. The member blinds it, the server evaluates it, the member finalizes: a 64-byte
   OPRF output ``y`` (``keys.oprf_blind`` / ``OprfKey.blind_evaluate`` /
   ``keys.oprf_finalize``; at registration the server computes ``y`` directly with
   ``OprfKey.evaluate``).
3. ``derive_entry(y, kind)``: the entry's 16-byte id and 32-byte AES key, by
   HKDF-Expand-SHA256 with ``y`` as the pseudorandom key; ``kind`` is ``exact`` or
   ``folded``. An e-mail is evaluated once, on its folded token, and
   ``derive_email_entries`` gives both its entries. ``bucket_prefix(id, bits)`` is what
   an online look-up reveals.
4. ``seal_answer`` / ``open_answer``: the entry's answer (categories, reporter count,
   first and last day, disputed) as 10 bytes under AES-256-GCM with the entry's key:
   38 bytes that only someone who evaluated the identifier can open.

Example::

    >>> import keys
    >>> server_key = keys.OprfKey.derive(bytes(32), b"example")
    >>> y = server_key.evaluate(oprf_input(bytes(32)))
    >>> entry = derive_entry(y, "exact")
    >>> answer = Answer(("phishing",), 1, dt.date(2025, 1, 2), dt.date(2025, 1, 2), False)
    >>> open_answer(entry, 1, seal_answer(entry, 1, answer)) == answer
    True
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "ANSWER_BYTES",
    "CATEGORY_BITS",
    "ENTRY_ID_BYTES",
    "ENTRY_KEY_BYTES",
    "KINDS",
    "MAX_PREFIX_BITS",
    "SEALED_BYTES",
    "Answer",
    "EntryRef",
    "SealedAnswerError",
    "bucket_prefix",
    "derive_email_entries",
    "derive_entry",
    "merge_answers",
    "open_answer",
    "oprf_input",
    "seal_answer",
]

TOKEN_BYTES = 32
OPRF_OUTPUT_BYTES = 64
ENTRY_ID_BYTES = 16
ENTRY_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
ANSWER_BYTES = 10
SEALED_BYTES = NONCE_BYTES + ANSWER_BYTES + TAG_BYTES  # 38
ANSWER_FORMAT = 1
MAX_PREFIX_BITS = 32
MAX_OPRF_VERSION = 0xFFFFFFFF

#: An e-mail has two entries: its exact token and its folded token (docs/protocol.md §2).
KINDS = ("exact", "folded")

#: Bit i of an answer's category mask is ``CATEGORY_BITS[i]``. A wire constant: a new
#: category is appended, never inserted (tests check it covers protocol.CATEGORIES).
CATEGORY_BITS = (
    "card_theft", "bank_account_theft", "remittance_scam", "fictitious_transaction",
    "circular_transaction", "forged_identity", "account_takeover", "phishing",
    "sticker_swap", "other",
)
_CATEGORY_BIT = {name: 1 << i for i, name in enumerate(CATEGORY_BITS)}
_KNOWN_CATEGORY_MASK = (1 << len(CATEGORY_BITS)) - 1

_EPOCH = dt.date(1970, 1, 1)
_MAX_DAY = 0xFFFF  # days after 1970-01-01 that fit in u16: up to 2149-06-06
_DISPUTED = 0x01

_ID_LABEL = b"clue/v2 entry-id\x00"
_KEY_LABEL = b"clue/v2 entry-key\x00"
_AAD_LABEL = b"clue/v2 entry\x00"
_PLAINTEXT = struct.Struct(">BHHHHB")


class SealedAnswerError(Exception):
    """A sealed answer does not open: wrong key or entry, tampered with, or malformed.

    One opaque message for every case, like ``cryptography``'s ``InvalidTag``.
    """

    def __init__(self) -> None:
        super().__init__("sealed answer does not open under this entry's key")


@dataclass(frozen=True)
class EntryRef:
    """An entry as someone who evaluated its identifier knows it: its id and key."""

    entry_id: bytes
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.entry_id, bytes) or len(self.entry_id) != ENTRY_ID_BYTES:
            raise ValueError(f"an entry id is {ENTRY_ID_BYTES} bytes")
        if not isinstance(self.key, bytes) or len(self.key) != ENTRY_KEY_BYTES:
            raise ValueError(f"an entry key is {ENTRY_KEY_BYTES} bytes")


@dataclass(frozen=True)
class Answer:
    """What an entry says: least disclosure, as a v1 look-up result (never who).

    ``reported_by_me`` and ``match`` are not part of it: they depend on who asks and
    how, so the SDK adds them (docs/private-lookups.md §5).
    """

    categories: tuple[str, ...]
    reporters: int
    first_reported: dt.date
    last_reported: dt.date
    disputed: bool

    def __post_init__(self) -> None:
        if not self.categories or any(c not in _CATEGORY_BIT for c in self.categories):
            raise ValueError(f"categories must be a non-empty subset of {CATEGORY_BITS}")
        ordered = tuple(c for c in CATEGORY_BITS if c in self.categories)
        if ordered != tuple(self.categories):
            raise ValueError("categories must be distinct and in CATEGORY_BITS order")
        if isinstance(self.reporters, bool) or not isinstance(self.reporters, int) \
                or not 1 <= self.reporters <= 0xFFFF:
            raise ValueError("reporters must be an integer from 1 to 65535")
        for day in (self.first_reported, self.last_reported):
            if type(day) is not dt.date or not 0 <= (day - _EPOCH).days <= _MAX_DAY:
                raise ValueError("report days are dates from 1970-01-01 to 2149-06-06")
        if self.first_reported > self.last_reported:
            raise ValueError("first_reported is after last_reported")
        if not isinstance(self.disputed, bool):
            raise ValueError("disputed must be a bool")

    @classmethod
    def of(cls, categories: Iterable[str], reporters: int, first_reported: dt.date,
           last_reported: dt.date, disputed: bool = False) -> Answer:
        """An answer from categories in any order (duplicates folded); reporters above
        65,535 are capped, as the wire format does."""
        wanted = set(categories)
        unknown = wanted - set(CATEGORY_BITS)
        if unknown:
            raise ValueError(f"unknown categories {sorted(unknown)}")
        return cls(tuple(c for c in CATEGORY_BITS if c in wanted),
                   min(reporters, 0xFFFF), first_reported, last_reported, disputed)

    def to_bytes(self) -> bytes:
        mask = 0
        for name in self.categories:
            mask |= _CATEGORY_BIT[name]
        return _PLAINTEXT.pack(ANSWER_FORMAT, mask, self.reporters,
                               (self.first_reported - _EPOCH).days,
                               (self.last_reported - _EPOCH).days,
                               _DISPUTED if self.disputed else 0)

    @classmethod
    def from_bytes(cls, data: bytes) -> Answer:
        """Strict inverse of :meth:`to_bytes`; ``ValueError`` on anything else."""
        if len(data) != ANSWER_BYTES:
            raise ValueError("an answer is 10 bytes")
        version, mask, reporters, first, last, flags = _PLAINTEXT.unpack(data)
        if version != ANSWER_FORMAT or mask & ~_KNOWN_CATEGORY_MASK or flags & ~_DISPUTED:
            raise ValueError("unknown answer format, category or flag")
        categories = tuple(name for name, bit in _CATEGORY_BIT.items() if mask & bit)
        return cls(categories, reporters, _EPOCH + dt.timedelta(days=first),
                   _EPOCH + dt.timedelta(days=last), bool(flags & _DISPUTED))


def oprf_input(token: bytes) -> bytes:
    """The OPRF input of an identifier: its 32-byte v1 token, unchanged."""
    if not isinstance(token, bytes) or len(token) != TOKEN_BYTES:
        raise ValueError(f"a token is {TOKEN_BYTES} bytes")
    return token


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    # HKDF-Expand (RFC 5869) for L <= 32 is its first block, HMAC(PRK, info || 0x01);
    # hmac.digest does it in one call (tests check it against cryptography's HKDFExpand).
    return hmac.digest(prk, info + b"\x01", hashlib.sha256)[:length]


def derive_entry(oprf_output: bytes, kind: str) -> EntryRef:
    """The id and sealing key of the entry whose OPRF output is ``oprf_output``."""
    if not isinstance(oprf_output, bytes) or len(oprf_output) != OPRF_OUTPUT_BYTES:
        raise ValueError(f"an OPRF output is {OPRF_OUTPUT_BYTES} bytes")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    label = kind.encode("ascii")
    return EntryRef(entry_id=_expand(oprf_output, _ID_LABEL + label, ENTRY_ID_BYTES),
                    key=_expand(oprf_output, _KEY_LABEL + label, ENTRY_KEY_BYTES))


def derive_email_entries(folded_output: bytes, exact_token: bytes) -> tuple[EntryRef, EntryRef]:
    """An e-mail's exact and folded entries from ONE evaluation, of its folded token.

    The folded entry is ``derive_entry(folded_output, "folded")``; the exact entry binds
    the exact token into the derivation instead of evaluating it separately:
    ``HKDF-Expand(y_folded, "clue/v2 entry-id" 0x00 "exact" 0x00 exact_token, 16)`` (and
    the same with "entry-key", 32). It halves an e-mail's cost and quota; the price is
    that whoever evaluated a folded form can tell offline which of its exact variants
    were reported (docs/private-lookups.md §3, §15).
    """
    exact_token = oprf_input(exact_token)
    if not isinstance(folded_output, bytes) or len(folded_output) != OPRF_OUTPUT_BYTES:
        raise ValueError(f"an OPRF output is {OPRF_OUTPUT_BYTES} bytes")
    suffix = b"exact\x00" + exact_token
    exact = EntryRef(entry_id=_expand(folded_output, _ID_LABEL + suffix, ENTRY_ID_BYTES),
                     key=_expand(folded_output, _KEY_LABEL + suffix, ENTRY_KEY_BYTES))
    return exact, derive_entry(folded_output, "folded")


def bucket_prefix(entry_id: bytes, bits: int) -> int:
    """The first ``bits`` bits of ``entry_id`` as an integer (0 for 0 bits).

    An online look-up sends only this; the council sets ``bits``.
    """
    if not isinstance(entry_id, bytes) or len(entry_id) != ENTRY_ID_BYTES:
        raise ValueError(f"an entry id is {ENTRY_ID_BYTES} bytes")
    if isinstance(bits, bool) or not isinstance(bits, int) or not 0 <= bits <= MAX_PREFIX_BITS:
        raise ValueError(f"prefix bits must be from 0 to {MAX_PREFIX_BITS}")
    return int.from_bytes(entry_id[:4], "big") >> (32 - bits)


def _aad(oprf_version: int, entry_id: bytes) -> bytes:
    if isinstance(oprf_version, bool) or not isinstance(oprf_version, int) \
            or not 1 <= oprf_version <= MAX_OPRF_VERSION:
        raise ValueError("oprf_version must be an integer from 1 to 2^32-1")
    return _AAD_LABEL + oprf_version.to_bytes(4, "big") + entry_id


def seal_answer(entry: EntryRef, oprf_version: int, answer: Answer, *,
                nonce: bytes | None = None) -> bytes:
    """``nonce || AES-256-GCM(entry.key, nonce, answer, aad)``: 38 bytes.

    The server seals (it keeps each entry's key to reseal on every change); ``nonce``
    is random unless a test fixes it.
    """
    if nonce is None:
        nonce = os.urandom(NONCE_BYTES)
    elif not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
        raise ValueError(f"a nonce is {NONCE_BYTES} bytes")
    aad = _aad(oprf_version, entry.entry_id)
    return nonce + AESGCM(entry.key).encrypt(nonce, answer.to_bytes(), aad)


def open_answer(entry: EntryRef, oprf_version: int, sealed: bytes) -> Answer:
    """The answer sealed for ``entry``; :class:`SealedAnswerError` for anything else."""
    aad = _aad(oprf_version, entry.entry_id)
    if not isinstance(sealed, bytes | bytearray | memoryview) or len(sealed) != SEALED_BYTES:
        raise SealedAnswerError
    sealed = bytes(sealed)
    try:
        plaintext = AESGCM(entry.key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        return Answer.from_bytes(plaintext)
    except (InvalidTag, ValueError):
        raise SealedAnswerError from None


def merge_answers(answers: Iterable[Answer]) -> Answer:
    """One answer for one identifier seen through several entries (an e-mail's exact
    and folded entries, or the entries of several network-key versions), merged like
    v1 merges versions: union of categories, the largest reporter count (a lower
    bound), the earliest first day, the latest last day, disputed if any is."""
    found = list(answers)
    if not found:
        raise ValueError("nothing to merge")
    return Answer.of(
        categories={c for a in found for c in a.categories},
        reporters=max(a.reporters for a in found),
        first_reported=min(a.first_reported for a in found),
        last_reported=max(a.last_reported for a in found),
        disputed=any(a.disputed for a in found),
    )
