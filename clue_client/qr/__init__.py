"""Static QR codes: parse, validate and build EMV merchant-presented payloads (JPQR).

Pure Python, no network. The public surface is this module::

    >>> from clue_client.qr import jpqr_view, parse_mpm, payee_key
    >>> code = parse_mpm(
    ...     "00020101021126680019jp.or.paymentsjapan011300000000000010204000103060000"
    ...     "0104060000015204581253033925802JP5904CAFE6005TOKYO6107106614364130002JA"
    ...     "0103カフェ630430CA"
    ... )
    >>> info = jpqr_view(code)
    >>> info.store_id, info.merchant_name_ja, code.is_static
    ('00000000000010001000001000001', 'カフェ', True)
    >>> payee_key(code)
    'jp.or.paymentsjapan|00000000000010001000001000001'

* ``parse_mpm(payload) -> MpmCode`` validates a scanned payload and raises
  ``MpmError`` (with ``code``, ``tag``, ``position``) for anything invalid;
  ``MpmCode.warnings`` lists the EMV deviations real issuers ship (``MpmWarning``,
  codes in ``WARNINGS``: no ID 52 in PromptPay, VietQR and QRIS codes, ...);
* ``build_mpm(fields) -> str`` makes a payload with its CRC;
* ``jpqr_view(code) -> JpqrInfo | None`` reads the unified store ID and the
  Japanese merchant name of a JPQR code;
* ``payee_of(code)`` / ``payees_of(code)`` / ``payee_key(code)`` name the payee of a
  merchant-account template, the ``qr_payee`` identifier;
* ``crc16_ccitt_false(data)`` is the checksum in ID 63.

A valid CRC proves nothing about who is paid: anyone can compute one. See
docs/sticker-swaps.md.
"""

from clue_client.qr.crc import crc16_ccitt_false
from clue_client.qr.errors import MpmError
from clue_client.qr.jpqr import (
    JPQR_GUID,
    JpqrInfo,
    jpqr_view,
    payee_key,
    payee_of,
    payees_of,
)
from clue_client.qr.mpm import (
    MAX_PAYLOAD_LENGTH,
    WARNINGS,
    FieldValue,
    MpmCode,
    MpmWarning,
    SubFields,
    build_mpm,
    parse_mpm,
    sub_field,
)

__all__ = [
    "JPQR_GUID",
    "MAX_PAYLOAD_LENGTH",
    "WARNINGS",
    "FieldValue",
    "JpqrInfo",
    "MpmCode",
    "MpmError",
    "MpmWarning",
    "SubFields",
    "build_mpm",
    "crc16_ccitt_false",
    "jpqr_view",
    "parse_mpm",
    "payee_key",
    "payee_of",
    "payees_of",
    "sub_field",
]
