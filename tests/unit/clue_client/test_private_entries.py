"""Entries of protocol v2: id and key derivation, bucket prefixes, sealed answers."""

from __future__ import annotations

import datetime as dt
import doctest

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from hypothesis import given, settings
from hypothesis import strategies as st

import keys
from clue_client import protocol, tokens
from clue_client.private_lookups import entries, idtable, replica, watch
from clue_client.private_lookups.entries import (
    CATEGORY_BITS,
    Answer,
    EntryRef,
    SealedAnswerError,
    bucket_prefix,
    derive_entry,
    merge_answers,
    open_answer,
    oprf_input,
    seal_answer,
)

DAY = dt.date(2025, 4, 1)
ANSWER = Answer(("card_theft", "phishing"), 2, dt.date(2025, 3, 30), DAY, False)
OUTPUT = bytes(range(64))


@pytest.mark.parametrize("module", [entries, idtable, replica, watch])
def test_module_examples_run(module: object) -> None:
    failed, attempted = doctest.testmod(module, raise_on_error=False)  # type: ignore[arg-type]
    assert attempted > 0 and failed == 0


def test_category_bits_are_frozen_and_cover_the_shared_categories() -> None:
    # A wire constant: reordering would make old sealed answers lie. Append only.
    assert CATEGORY_BITS == (
        "card_theft", "bank_account_theft", "remittance_scam", "fictitious_transaction",
        "circular_transaction", "forged_identity", "account_takeover", "phishing",
        "sticker_swap", "other",
    )
    assert set(protocol.CATEGORIES) <= set(CATEGORY_BITS)


@pytest.mark.parametrize("kind", ["exact", "folded"])
def test_entry_id_and_key_are_hkdf_expand_of_the_oprf_output(kind: str) -> None:
    entry = derive_entry(OUTPUT, kind)
    label = kind.encode()
    assert entry.entry_id == HKDFExpand(hashes.SHA256(), 16,
                                        b"clue/v2 entry-id\x00" + label).derive(OUTPUT)
    assert entry.key == HKDFExpand(hashes.SHA256(), 32,
                                   b"clue/v2 entry-key\x00" + label).derive(OUTPUT)


def test_kinds_give_unrelated_entries() -> None:
    exact, folded = derive_entry(OUTPUT, "exact"), derive_entry(OUTPUT, "folded")
    assert exact.entry_id != folded.entry_id and exact.key != folded.key
    assert exact.key[:16] != exact.entry_id


@pytest.mark.parametrize("bad", [b"", OUTPUT[:63], OUTPUT + b"\x00", "x" * 64])
def test_derive_entry_refuses_anything_but_an_oprf_output(bad: object) -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        derive_entry(bad, "exact")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        derive_entry(OUTPUT, "fuzzy")


@pytest.mark.parametrize(("hex_id", "bits", "prefix"), [
    ("ffffffff" + "00" * 12, 0, 0),
    ("ffffffff" + "00" * 12, 1, 1),
    ("80000000" + "00" * 12, 8, 0x80),
    ("abcdef12" + "34" * 12, 18, 0xABCDEF12 >> 14),
    ("abcdef12" + "34" * 12, 32, 0xABCDEF12),
])
def test_bucket_prefix_is_the_leading_bits(hex_id: str, bits: int, prefix: int) -> None:
    assert bucket_prefix(bytes.fromhex(hex_id), bits) == prefix


@pytest.mark.parametrize("bits", [-1, 33, True, 1.5])
def test_bucket_prefix_refuses_bits_out_of_range(bits: object) -> None:
    with pytest.raises(ValueError, match="prefix bits"):
        bucket_prefix(bytes(16), bits)  # type: ignore[arg-type]


def test_oprf_input_is_the_token_itself() -> None:
    token = tokens.derive_token(bytes(range(32)), "phone", "+819012345678")
    assert oprf_input(token) == token
    with pytest.raises(ValueError, match="32 bytes"):
        oprf_input(token[:31])


def test_answer_layout() -> None:
    # format 1 | mask 0x0081 (card_theft, phishing) | 2 reporters | days 20177, 20179 | 0
    assert ANSWER.to_bytes().hex() == "01" "0081" "0002" "4ed1" "4ed3" "00"
    assert Answer.from_bytes(ANSWER.to_bytes()) == ANSWER


answers = st.builds(
    lambda cats, reporters, first, span, disputed: Answer.of(
        cats, reporters, first, first + dt.timedelta(days=span), disputed),
    st.sets(st.sampled_from(CATEGORY_BITS), min_size=1),
    st.integers(1, 0xFFFF),
    st.dates(dt.date(1970, 1, 1), dt.date(2100, 1, 1)),
    st.integers(0, 1000),
    st.booleans(),
)


@settings(max_examples=100, deadline=None)
@given(answer=answers, nonce=st.binary(min_size=12, max_size=12), version=st.integers(1, 9))
def test_seal_then_open_round_trips(answer: Answer, nonce: bytes, version: int) -> None:
    entry = derive_entry(OUTPUT, "exact")
    sealed = seal_answer(entry, version, answer, nonce=nonce)
    assert len(sealed) == entries.SEALED_BYTES == 38
    assert open_answer(entry, version, sealed) == answer


@pytest.mark.parametrize("raw", [
    "02" "0001" "0001" "4ed1" "4ed1" "00",   # unknown format
    "01" "0400" "0001" "4ed1" "4ed1" "00",   # unknown category bit
    "01" "0001" "0001" "4ed1" "4ed1" "02",   # unknown flag
    "01" "0000" "0001" "4ed1" "4ed1" "00",   # no category
    "01" "0001" "0000" "4ed1" "4ed1" "00",   # no reporter
    "01" "0001" "0001" "4ed3" "4ed1" "00",   # first after last
    "01" "0001" "0001" "4ed1" "4ed1",        # short
])
def test_answer_parsing_is_strict(raw: str) -> None:
    with pytest.raises(ValueError):
        Answer.from_bytes(bytes.fromhex(raw))


def test_answer_refuses_what_it_cannot_say() -> None:
    with pytest.raises(ValueError, match="unknown categories"):
        Answer.of(["card_theft", "gossip"], 1, DAY, DAY)
    with pytest.raises(ValueError, match="order"):
        Answer(("phishing", "card_theft"), 1, DAY, DAY, False)
    with pytest.raises(ValueError, match="reporters"):
        Answer(("phishing",), 0, DAY, DAY, False)
    with pytest.raises(ValueError, match="dates"):
        Answer(("phishing",), 1, dt.date(2150, 1, 1), dt.date(2150, 1, 1), False)
    assert Answer.of(["phishing"], 100_000, DAY, DAY).reporters == 0xFFFF


def test_a_sealed_answer_opens_only_for_its_entry_version_and_bytes() -> None:
    entry = derive_entry(OUTPUT, "exact")
    sealed = seal_answer(entry, 1, ANSWER)
    others = [
        (derive_entry(OUTPUT, "folded"), 1, sealed),                 # other key and id
        (EntryRef(entry.entry_id, bytes(32)), 1, sealed),             # right id, wrong key
        (EntryRef(bytes(16), entry.key), 1, sealed),                  # right key, wrong id
        (entry, 2, sealed),                                           # other OPRF version
        (entry, 1, sealed[:-1]),
        (entry, 1, sealed + b"\x00"),
    ]
    others += [(entry, 1, sealed[:i] + bytes([sealed[i] ^ 1]) + sealed[i + 1:])
               for i in range(len(sealed))]
    messages = set()
    for candidate, version, data in others:
        with pytest.raises(SealedAnswerError) as caught:
            open_answer(candidate, version, data)
        messages.add(str(caught.value))
    assert len(messages) == 1


def test_entry_refs_keep_their_key_out_of_repr() -> None:
    entry = derive_entry(OUTPUT, "exact")
    assert entry.key.hex() not in repr(entry) and repr(entry.key) not in repr(entry)
    with pytest.raises(ValueError):
        EntryRef(bytes(15), bytes(32))


def test_merge_answers_like_v1_merges_versions() -> None:
    other = Answer(("other",), 1, dt.date(2025, 1, 1), dt.date(2025, 2, 1), True)
    merged = merge_answers([ANSWER, other])
    assert merged == Answer(("card_theft", "phishing", "other"), 2, dt.date(2025, 1, 1),
                            DAY, True)
    assert merge_answers([ANSWER]) == ANSWER
    with pytest.raises(ValueError):
        merge_answers([])


def test_member_and_server_reach_the_same_entry_and_only_they_can_open_it() -> None:
    server = keys.OprfKey.generate()
    token = tokens.derive_token(bytes(range(32)), "phone", "+819012345678")
    # Registration: the server evaluates the token directly and seals the answer.
    stored = derive_entry(server.evaluate(oprf_input(token)), "exact")
    sealed = seal_answer(stored, 1, ANSWER)
    # Look-up: the member blinds, the server evaluates blind, the member finalizes.
    state = keys.oprf_blind(oprf_input(token))
    mine = derive_entry(keys.oprf_finalize(state, server.blind_evaluate(state.blinded_element)),
                        "exact")
    assert mine == stored
    assert open_answer(mine, 1, sealed) == ANSWER
    # Another identifier (or the same one under another server key) gets nowhere.
    other = tokens.derive_token(bytes(range(32)), "phone", "+819012345679")
    for entry in (derive_entry(server.evaluate(other), "exact"),
                  derive_entry(keys.OprfKey.generate().evaluate(token), "exact")):
        assert entry.entry_id != stored.entry_id
        with pytest.raises(SealedAnswerError):
            open_answer(EntryRef(stored.entry_id, entry.key), 1, sealed)


def test_an_email_needs_one_evaluation_of_its_folded_token() -> None:
    server = keys.OprfKey.generate()
    net = bytes(range(32))
    folded = tokens.derive_token(net, "email", "jdoe@gmail.com")
    exact = tokens.derive_token(net, "email", "j.doe+shop@googlemail.com")
    other_exact = tokens.derive_token(net, "email", "j.d.o.e@gmail.com")
    y_folded = server.evaluate(folded)
    exact_entry, folded_entry = entries.derive_email_entries(y_folded, exact)
    assert folded_entry == derive_entry(y_folded, "folded")
    assert exact_entry.entry_id == HKDFExpand(
        hashes.SHA256(), 16, b"clue/v2 entry-id\x00exact\x00" + exact).derive(y_folded)
    assert exact_entry.key == HKDFExpand(
        hashes.SHA256(), 32, b"clue/v2 entry-key\x00exact\x00" + exact).derive(y_folded)
    # Another address with the same folded form: same folded entry, another exact one.
    other, same_folded = entries.derive_email_entries(y_folded, other_exact)
    assert same_folded == folded_entry and other.entry_id != exact_entry.entry_id
    # An already-folded address: its exact entry still differs from the folded one.
    self_exact, _ = entries.derive_email_entries(y_folded, folded)
    assert self_exact.entry_id not in (folded_entry.entry_id, derive_entry(y_folded,
                                                                           "exact").entry_id)
    # Without the evaluation (another server key) nothing matches.
    assert entries.derive_email_entries(keys.OprfKey.generate().evaluate(folded), exact)[0] \
        != exact_entry
    with pytest.raises(ValueError):
        entries.derive_email_entries(y_folded, exact[:31])
