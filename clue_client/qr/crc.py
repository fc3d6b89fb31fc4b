"""CRC-16/CCITT-FALSE, the checksum in ID 63 of every EMV merchant-presented QR payload.

Parameters (EMV QRCPS MPM §4.7.3, ISO/IEC 13239): width 16, polynomial 0x1021,
initial value 0xFFFF, no input or output reflection, no final XOR. Check value:
``crc16_ccitt_false(b"123456789") == 0x29B1``.

``binascii.crc_hqx`` is exactly this CRC when seeded with 0xFFFF (it is the
non-reflected 0x1021 CRC with a caller-chosen initial value), so we use the C
implementation from the standard library rather than a Python bit loop; the tests
check it against a bit-by-bit reference.
"""

from __future__ import annotations

import binascii

__all__ = ["crc16_ccitt_false"]

_INIT = 0xFFFF


def crc16_ccitt_false(data: bytes) -> int:
    """Return the CRC-16/CCITT-FALSE of ``data`` as an int in 0..0xFFFF.

    >>> hex(crc16_ccitt_false(b"123456789"))
    '0x29b1'
    """
    return binascii.crc_hqx(data, _INIT)
