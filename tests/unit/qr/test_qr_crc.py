"""CRC-16/CCITT-FALSE: the check value, and agreement with a bit-by-bit reference."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clue_client.qr import crc16_ccitt_false


def reference_crc(data: bytes) -> int:
    """Straight from the definition: poly 0x1021, init 0xFFFF, MSB first, no xorout."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def test_catalogue_check_value() -> None:
    # The "check" value of CRC-16/CCITT-FALSE (a.k.a. CRC-16/IBM-3740) in the
    # Williams/Ewing CRC catalogue.
    assert crc16_ccitt_false(b"123456789") == 0x29B1


def test_empty_input_is_the_initial_value() -> None:
    assert crc16_ccitt_false(b"") == 0xFFFF


def test_not_the_reflected_or_zero_seeded_variants() -> None:
    # KERMIT (reflected) gives 0x2189 and XMODEM (init 0) 0x31C3 for the same input.
    assert crc16_ccitt_false(b"123456789") not in (0x2189, 0x31C3)


@settings(max_examples=200)
@given(st.binary(max_size=600))
def test_matches_bitwise_reference(data: bytes) -> None:
    assert crc16_ccitt_false(data) == reference_crc(data)
