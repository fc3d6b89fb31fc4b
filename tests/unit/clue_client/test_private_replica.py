"""The local replica: the sorted id table, the signed delta format, applying deltas,
and `clue watch` matching."""

from __future__ import annotations

import datetime as dt
import json
import os
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from clue_client.private_lookups import replica as replica_module
from clue_client.private_lookups.entries import Answer, EntryRef, derive_entry, seal_answer
from clue_client.private_lookups.idtable import IdTable
from clue_client.private_lookups.replica import (
    MAX_RECORDS,
    SIGNATURE_LABEL,
    Delta,
    DeltaError,
    Replica,
    encode_delta,
    parse_delta,
)
from clue_client.private_lookups.watch import WatchList

SERVER = Ed25519PrivateKey.from_private_bytes(bytes(range(33, 65)))
KEY_ID = "server-k-test"
PINNED = {KEY_ID: SERVER.public_key()}
DAY = dt.date(2025, 4, 1)
ANSWER = Answer(("phishing",), 1, DAY, DAY, False)
ids16 = st.binary(min_size=16, max_size=16)


# -- the id table ----------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(records=st.dictionaries(ids16, st.binary(min_size=3, max_size=3), max_size=300),
       probes=st.lists(ids16, max_size=20),
       changes=st.dictionaries(ids16, st.none() | st.binary(min_size=3, max_size=3),
                               max_size=40))
def test_id_table_behaves_like_a_dict(records: dict[bytes, bytes], probes: list[bytes],
                                      changes: dict[bytes, bytes | None]) -> None:
    table = IdTable.build(records.items(), 3)
    assert len(table) == len(records)
    assert list(table.items()) == sorted(records.items())
    for probe in [*records, *probes]:
        assert table.get(probe) == records.get(probe)
        assert (probe in table) == (probe in records)
    model = {k: v for k, v in {**records, **changes}.items() if v is not None}
    merged = table.merged(changes)
    assert list(merged.items()) == sorted(model.items())


def test_a_match_straddling_two_records_is_not_a_match() -> None:
    first, second = b"\x00" * 8 + b"\x11" * 8, b"\x22" * 8 + b"\x33" * 8
    table = IdTable.build([(first, b""), (second, b"")], 0)
    assert table.find(b"\x11" * 8 + b"\x22" * 8) == -1
    assert table.find(second) == 1


def test_id_table_refuses_duplicates_disorder_and_bad_sizes() -> None:
    with pytest.raises(ValueError, match="distinct"):
        IdTable.build([(bytes(16), b"a"), (bytes(16), b"b")], 1)
    with pytest.raises(ValueError, match="sorted"):
        IdTable(b"\x01" * 16 + b"\x00" * 16, b"ab", 1)
    with pytest.raises(ValueError, match="value_size"):
        IdTable.build([(bytes(16), b"ab")], 1)
    with pytest.raises(ValueError, match="16 bytes"):
        IdTable.empty(1).find(b"short")


def test_a_large_table_indexes_by_leading_bits() -> None:
    records = {os.urandom(16): os.urandom(4) for _ in range(20_000)}
    table = IdTable.build(records.items(), 4)
    assert all(table.get(k) == v for k, v in list(records.items())[:2000])
    assert table.get(os.urandom(16)) is None
    assert table.nbytes < 20_000 * 20 + 4 * (1 << 13) + 64


# -- the delta format ------------------------------------------------------------------------

def _sealed(seed: int, answer: Answer = ANSWER) -> tuple[EntryRef, bytes]:
    entry = derive_entry(bytes([seed]) * 64, "exact")
    return entry, seal_answer(entry, 1, answer)


def _delta(after: int = 0, to: int = 3, puts: int = 2, deletes: tuple[bytes, ...] = (),
           issued_at: int = 1_700_000_000, more: bool = False) -> Delta:
    records = tuple((entry.entry_id, sealed) for entry, sealed in map(_sealed, range(puts)))
    return Delta(1, after, to, issued_at, more, records, deletes)


def test_delta_round_trip_and_layout() -> None:
    delta = _delta(after=5, to=9, deletes=(b"\x07" * 16,), more=True)
    data = encode_delta(delta, SERVER, KEY_ID)
    assert data[:8] == b"CLUERD\x01\x01"                       # magic, format 1, more
    assert struct.unpack(">IQQQI", data[8:40]) == (1, 5, 9, 1_700_000_000, 3)
    assert data[40] == len(KEY_ID) and data[41:41 + len(KEY_ID)] == KEY_ID.encode()
    assert len(data) == 40 + 1 + len(KEY_ID) + 2 * 55 + 17 + 64
    SERVER.public_key().verify(data[-64:], SIGNATURE_LABEL + data[:-64])
    assert parse_delta(data, PINNED) == delta


def test_only_a_pinned_key_signs_a_delta() -> None:
    data = encode_delta(_delta(), SERVER, KEY_ID)
    impostor = Ed25519PrivateKey.generate()
    with pytest.raises(DeltaError, match="not a pinned server key"):
        parse_delta(encode_delta(_delta(), impostor, "server-k-other"), PINNED)
    with pytest.raises(DeltaError, match="signature"):
        parse_delta(encode_delta(_delta(), impostor, KEY_ID), PINNED)
    with pytest.raises(DeltaError, match="signature"):
        parse_delta(data, {KEY_ID: impostor.public_key()})


def test_every_flipped_byte_truncation_or_addition_is_refused() -> None:
    data = encode_delta(_delta(deletes=(b"\x09" * 16,), after=1), SERVER, KEY_ID)
    broken = [data[:i] + bytes([data[i] ^ 0x40]) + data[i + 1:] for i in range(len(data))]
    broken += [data[:n] for n in (0, 10, 41, len(data) - 1)] + [data + b"\x00", b"garbage"]
    for candidate in broken:
        with pytest.raises(DeltaError):
            parse_delta(candidate, PINNED)


def _signed(body: bytes) -> bytes:
    return body + SERVER.sign(SIGNATURE_LABEL + body)


def _header(count: int, *, flags: int = 0, fmt: int = 1, after: int = 1, to: int = 2) -> bytes:
    return (struct.pack(">6sBBIQQQI", b"CLUERD", fmt, flags, 1, after, to, 0, count)
            + bytes([len(KEY_ID)]) + KEY_ID.encode())


@pytest.mark.parametrize(("body", "reason"), [
    (_header(1), "truncated"),                                    # promised record missing
    (_header(0) + b"\x01" + bytes(54), "after the last record"),  # record not counted
    (_header(1) + b"\x03" + bytes(16), "unknown record"),
    (_header(0, flags=2), "flag"),
    (_header(0, fmt=2), "format"),
    (_header(MAX_RECORDS + 1), f"more than {MAX_RECORDS}"),
    (_header(0, after=3, to=2), "cursors"),
    (_header(2) + (b"\x02" + bytes(16)) * 2, "twice"),
    (_header(1, after=0) + b"\x02" + bytes(16), "no deletes"),
    (_header(1, after=2) + b"\x02" + bytes(16), "empty cursor range"),
])
def test_signed_but_malformed_deltas_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(DeltaError, match=reason):
        parse_delta(_signed(body), PINNED)


def test_encoding_refuses_what_parsing_would() -> None:
    with pytest.raises(DeltaError):
        encode_delta(_delta(after=0, deletes=(bytes(16),)), SERVER, KEY_ID)
    with pytest.raises(ValueError, match="key id"):
        encode_delta(_delta(), SERVER, "bad key id\n")


# -- applying deltas -------------------------------------------------------------------------

def test_replica_follows_a_snapshot_and_its_deltas() -> None:
    (e0, s0), (e1, s1), (e2, s2) = _sealed(0), _sealed(1), _sealed(2)
    replica = Replica(oprf_version=1)
    replica.apply(Delta(1, 0, 10, 100, True, ((e0.entry_id, s0), (e1.entry_id, s1)), ()))
    assert (replica.cursor, len(replica)) == (10, 2)
    assert replica.lookup(e0) == ANSWER and replica.lookup(e2) is None
    changed = Answer(("phishing", "other"), 2, DAY, DAY, True)
    resealed = seal_answer(e0, 1, changed)
    replica.apply(Delta(1, 10, 12, 101, False, ((e0.entry_id, resealed), (e2.entry_id, s2)),
                        (e1.entry_id,)))
    assert replica.lookup(e0) == changed and replica.lookup(e1) is None
    assert replica.lookup(e2) == ANSWER and len(replica) == 2
    replica.compact()
    assert replica.lookup(e0) == changed and replica.lookup(e1) is None and len(replica) == 2


def test_a_delta_that_does_not_follow_on_changes_nothing() -> None:
    (e0, s0), (e1, s1) = _sealed(0), _sealed(1)
    replica = Replica(oprf_version=1)
    replica.apply(Delta(1, 0, 10, 100, False, ((e0.entry_id, s0),), ()))
    refused = [
        (Delta(1, 9, 12, 101, False, ((e1.entry_id, s1),), ()), "starts after 9"),
        (Delta(1, 10, 12, 99, False, ((e1.entry_id, s1),), ()), "older"),
        (Delta(2, 10, 12, 101, False, ((e1.entry_id, s1),), ()), "another OPRF key version"),
    ]
    for delta, reason in refused:
        with pytest.raises(DeltaError, match=reason):
            replica.apply(delta)
        assert (replica.cursor, len(replica), replica.lookup(e1)) == (10, 1, None)


def test_many_small_deltas_compact_by_themselves() -> None:
    replica = Replica(oprf_version=1)
    replica.apply(Delta(1, 0, 1, 1, False, (), ()))
    cursor = 1
    for seed in range(120):
        entry, sealed = _sealed(seed)
        replica.apply(Delta(1, cursor, cursor + 1, 1, False, ((entry.entry_id, sealed),), ()))
        cursor += 1
    assert len(replica) == 120 and replica.lookup(_sealed(77)[0]) == ANSWER
    assert len(replica._changes) < 60  # compacted at least once


def test_an_entry_that_does_not_open_is_an_error_not_a_miss() -> None:
    entry, sealed = _sealed(0)
    replica = Replica(oprf_version=1)
    replica.apply(Delta(1, 0, 1, 1, False, ((entry.entry_id, sealed[:-1] + b"\x00"),), ()))
    with pytest.raises(DeltaError, match="does not open"):
        replica.lookup(entry)


def test_replica_module_keeps_its_names() -> None:
    assert set(replica_module.__all__) >= {"Delta", "Replica", "encode_delta", "parse_delta"}


# -- clue watch ------------------------------------------------------------------------------

def test_watch_raises_reported_updated_and_cleared() -> None:
    (e0, s0), (e1, _s1), (e2, s2) = _sealed(0), _sealed(1), _sealed(2)
    watch = WatchList.build([(e0, "acct-0", "phone", "exact"), (e1, "acct-1", "email", "folded")],
                            oprf_version=1)
    first = watch.match(Delta(1, 0, 5, 10, False, ((e0.entry_id, s0), (e2.entry_id, s2)), ()))
    assert [(a.event, a.ref, a.answer) for a in first] == [("reported", "acct-0", ANSWER)]
    changed = Answer(("phishing",), 3, DAY, DAY, True)
    second = watch.match(Delta(1, 5, 6, 11, False, ((e0.entry_id, seal_answer(e0, 1, changed)),),
                               (e1.entry_id,)))
    # e1 was never reported while watched: its delete raises nothing.
    assert [(a.event, a.answer) for a in second] == [("updated", changed)]
    third = watch.match(Delta(1, 6, 7, 12, False, (), (e0.entry_id,)))
    assert [(a.event, a.ref, a.answer, a.cursor) for a in third] == [("cleared", "acct-0", None, 7)]
    line = json.loads(first[0].to_json())
    assert line == {"event": "reported", "ref": "acct-0", "type": "phone", "match": "exact",
                    "categories": ["phishing"], "reporters": 1, "first_reported": "2025-04-01",
                    "last_reported": "2025-04-01", "disputed": False, "cursor": 5,
                    "issued_at": 10}


def test_watch_matches_an_existing_replica_once_after_onboarding() -> None:
    (e0, s0), (e1, s1) = _sealed(0), _sealed(1)
    replica = Replica(oprf_version=1)
    replica.apply(Delta(1, 0, 3, 10, False, ((e0.entry_id, s0), (e1.entry_id, s1)), ()))
    watch = WatchList.build([(e1, "acct-1", "phone", "exact"),
                             (derive_entry(bytes([9]) * 64, "exact"), "acct-9", "phone", "exact")],
                            oprf_version=1)
    assert [(a.event, a.ref) for a in watch.match_replica(replica)] == [("reported", "acct-1")]
    with pytest.raises(DeltaError, match="another OPRF key version"):
        watch.match(Delta(2, 3, 4, 11, False, (), ()))
