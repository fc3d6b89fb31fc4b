"""Private look-ups (protocol version 2): the pure functions both sides share, and the
SDK's files.

Nothing here talks to the network or touches a database; the server and the SDK call
these (docs/private-lookups.md is the design; the SDK's requests are in
``clue_client._private``):

* :mod:`.entries` -- from a token to its OPRF input; from an OPRF output to the entry's
  id, bucket prefix and sealing key; sealing and opening an entry's answer.
* :mod:`.replica` -- the signed delta format of the local replica, and the replica
  itself (a compact sorted table plus the changes since).
* :mod:`.idtable` -- the sorted fixed-width table both the replica and the watch list
  use: 10 M entries in about 540 MB, a look-up in a few microseconds.
* :mod:`.watch` -- a member's own customers as evaluated entries, matched against
  every delta (`clue watch`).
* :mod:`.store` -- a replica, and a watch list with its replica, kept in a directory
  between runs.
"""

from clue_client.private_lookups.entries import (
    Answer,
    EntryRef,
    SealedAnswerError,
    bucket_prefix,
    derive_email_entries,
    derive_entry,
    merge_answers,
    open_answer,
    oprf_input,
    seal_answer,
)
from clue_client.private_lookups.replica import (
    Delta,
    DeltaError,
    Replica,
    encode_delta,
    parse_delta,
)
from clue_client.private_lookups.store import ReplicaStore, StoreError, WatchStore
from clue_client.private_lookups.watch import Alert, WatchList

__all__ = [
    "Alert",
    "Answer",
    "Delta",
    "DeltaError",
    "EntryRef",
    "Replica",
    "ReplicaStore",
    "SealedAnswerError",
    "StoreError",
    "WatchList",
    "WatchStore",
    "bucket_prefix",
    "derive_email_entries",
    "derive_entry",
    "encode_delta",
    "merge_answers",
    "open_answer",
    "oprf_input",
    "parse_delta",
    "seal_answer",
]
