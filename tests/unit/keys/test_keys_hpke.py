"""keys.wrap / keys.unwrap and the symmetric-key wrapping built on them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keys

INFO = b"clue/v1 test"
AAD = b"member=m-1;version=3"
RECIPIENT = keys.generate_hpke_key()


def test_round_trip() -> None:
    envelope = keys.wrap(RECIPIENT.public_key(), b"network key bytes", info=INFO, aad=AAD)
    assert keys.unwrap(RECIPIENT, envelope, info=INFO, aad=AAD) == b"network key bytes"


def test_layout_is_enc_then_ciphertext() -> None:
    plaintext = b"x" * 40
    envelope = keys.wrap(RECIPIENT.public_key(), plaintext, info=INFO)
    assert len(envelope) == 32 + len(plaintext) + 16
    assert plaintext not in envelope


def test_fresh_ephemeral_key_per_wrap() -> None:
    first = keys.wrap(RECIPIENT.public_key(), b"same", info=INFO)
    second = keys.wrap(RECIPIENT.public_key(), b"same", info=INFO)
    assert first[:32] != second[:32]
    assert first != second


@settings(max_examples=50, deadline=None)
@given(plaintext=st.binary(max_size=200), info=st.binary(max_size=64),
       aad=st.binary(max_size=64))
def test_round_trip_any_input(plaintext: bytes, info: bytes, aad: bytes) -> None:
    envelope = keys.wrap(RECIPIENT.public_key(), plaintext, info=info, aad=aad)
    assert keys.unwrap(RECIPIENT, envelope, info=info, aad=aad) == plaintext


def test_every_bit_flip_is_rejected() -> None:
    envelope = keys.wrap(RECIPIENT.public_key(), b"0123456789", info=INFO, aad=AAD)
    for index in range(len(envelope)):
        for bit in range(8):
            tampered = bytearray(envelope)
            tampered[index] ^= 1 << bit
            with pytest.raises(keys.UnwrapError):
                keys.unwrap(RECIPIENT, bytes(tampered), info=INFO, aad=AAD)


def test_truncated_or_extended_is_rejected() -> None:
    envelope = keys.wrap(RECIPIENT.public_key(), b"payload", info=INFO)
    for length in range(len(envelope)):
        with pytest.raises(keys.UnwrapError):
            keys.unwrap(RECIPIENT, envelope[:length], info=INFO)
    with pytest.raises(keys.UnwrapError):
        keys.unwrap(RECIPIENT, envelope + b"\x00", info=INFO)


@pytest.mark.parametrize(
    ("info", "aad"),
    [(b"clue/v1 other", AAD), (INFO, b"member=m-2;version=3"), (INFO, b""), (b"", AAD)],
)
def test_wrong_info_or_aad_is_rejected(info: bytes, aad: bytes) -> None:
    envelope = keys.wrap(RECIPIENT.public_key(), b"payload", info=INFO, aad=AAD)
    with pytest.raises(keys.UnwrapError):
        keys.unwrap(RECIPIENT, envelope, info=info, aad=aad)


def test_wrong_recipient_is_rejected() -> None:
    envelope = keys.wrap(RECIPIENT.public_key(), b"payload", info=INFO)
    with pytest.raises(keys.UnwrapError):
        keys.unwrap(keys.generate_hpke_key(), envelope, info=INFO)


def test_low_order_ephemeral_point_is_rejected() -> None:
    # An all-zero u-coordinate makes X25519 output all zeros, which must be refused.
    envelope = bytes(32) + bytes(40)
    with pytest.raises(keys.UnwrapError):
        keys.unwrap(RECIPIENT, envelope, info=INFO)


def test_failures_share_one_message() -> None:
    envelope = keys.wrap(RECIPIENT.public_key(), b"payload", info=INFO, aad=AAD)
    messages = set()
    attempts: tuple[Callable[[], object], ...] = (
        lambda: keys.unwrap(RECIPIENT, envelope, info=b"other", aad=AAD),
        lambda: keys.unwrap(RECIPIENT, envelope, info=INFO, aad=b"other"),
        lambda: keys.unwrap(RECIPIENT, envelope[:-1], info=INFO, aad=AAD),
        lambda: keys.unwrap(RECIPIENT, b"", info=INFO, aad=AAD),
        lambda: keys.unwrap(keys.generate_hpke_key(), envelope, info=INFO, aad=AAD),
    )
    for attempt in attempts:
        with pytest.raises(keys.UnwrapError) as caught:
            attempt()
        messages.add(str(caught.value))
        assert caught.value.__cause__ is None
    assert len(messages) == 1


def test_unwrap_error_is_a_key_file_error() -> None:
    assert issubclass(keys.UnwrapError, keys.KeyFileError)


def test_misuse_is_a_type_error() -> None:
    signing = keys.generate_signing_key()
    with pytest.raises(TypeError):
        keys.wrap(signing.public_key(), b"x", info=INFO)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        keys.wrap(RECIPIENT, b"x", info=INFO)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        keys.wrap(RECIPIENT.public_key(), "text", info=INFO)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        keys.unwrap(RECIPIENT.public_key(), b"x" * 64, info=INFO)  # type: ignore[arg-type]


# ------------------------------------------------------------- symmetric key wrapping


def test_wrap_symmetric_key_round_trip() -> None:
    network = keys.new_symmetric_key("network", 4, now=datetime(2025, 1, 2, tzinfo=UTC))
    envelope = keys.wrap_symmetric_key(RECIPIENT.public_key(), network, aad=b"m-1")
    assert network.secret not in envelope
    assert keys.unwrap_symmetric_key(RECIPIENT, envelope, purpose="network", aad=b"m-1") == network


def test_wrapped_symmetric_key_is_bound_to_purpose_and_aad() -> None:
    network = keys.new_symmetric_key("network", 1)
    envelope = keys.wrap_symmetric_key(RECIPIENT.public_key(), network, aad=b"m-1")
    with pytest.raises(keys.UnwrapError):
        keys.unwrap_symmetric_key(RECIPIENT, envelope, purpose="pepper", aad=b"m-1")
    with pytest.raises(keys.UnwrapError):
        keys.unwrap_symmetric_key(RECIPIENT, envelope, purpose="network", aad=b"m-2")


def test_unwrap_symmetric_key_rejects_wrong_payload() -> None:
    envelope = keys.wrap(RECIPIENT.public_key(), b"not json", info=b"clue/v1 wrap network")
    with pytest.raises(keys.UnwrapError):
        keys.unwrap_symmetric_key(RECIPIENT, envelope, purpose="network")
