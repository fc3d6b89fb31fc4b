"""Reading a scanned static QR code into identifiers to look up and local flags.

The decision path never sends the payload: it parses it here with
:mod:`clue_client.qr` and asks CLUE only about the tokens of

* every payee the code names (``qr_payee``: GUID + account of each merchant-account
  template 26–51, see :func:`clue_client.qr.payees_of`), and
* the unified store ID of a JPQR code (``jpqr_store``),

in the same signed request as the account's own identifiers. Flags decided here,
with no network: ``invalid_payload`` (with the parser's stable ``MpmError.code``),
``not_static`` (ID 01 says dynamic), ``not_jpqr``. The engine adds ``payee_reported``
and ``store_swap_reported`` from the look-up answers. Deviations from EMV that genuine
codes ship (no ID 01, 52, 59 or 60; DuitNow's payload format ``02``) are not flags but
``warnings`` (the parser's ``MpmWarning`` codes): they do not make a code suspect.

Hook: the parser lives in :mod:`clue_client.qr` and is imported on first use. If it
is not installed, :func:`read_qr` raises :class:`QrUnavailable`, which a check turns
into a degraded decision (or raises under ``strict=True``).
"""

from __future__ import annotations

from dataclasses import dataclass

from clue_client.errors import ClueError

__all__ = ["QrUnavailable", "ScannedQr", "read_qr"]

MAX_PAYEES = 26  # one per merchant-account template 26–51


class QrUnavailable(ClueError):
    """``qr_payload`` was given but the QR parser (``clue_client.qr``) cannot be imported."""


@dataclass(frozen=True)
class ScannedQr:
    """What the payload says, locally: never the payload itself."""

    flags: frozenset[str]
    error_code: str | None = None
    """``MpmError.code`` when the payload is invalid (``crc_mismatch``, ``truncated``...)."""
    store_id: str | None = None
    """The 29-digit unified store ID of a JPQR code."""
    payees: tuple[str, ...] = ()
    """``qr_payee`` identifiers (``"guid|account"``), lowest template ID first."""
    warnings: tuple[str, ...] = ()
    """``MpmWarning`` codes of a valid code (``no_merchant_category``, ...), by ID."""


def read_qr(payload: str) -> ScannedQr:
    """Parse ``payload``; invalid payloads give ``invalid_payload``, never an exception."""
    try:
        from clue_client.qr import MpmError, jpqr_view, parse_mpm, payees_of
    except ImportError as exc:  # the documented hook: no parser, no QR evidence
        raise QrUnavailable("qr_payload given but clue_client.qr is not available") from exc
    try:
        code = parse_mpm(payload)
    except MpmError as exc:
        return ScannedQr(frozenset({"invalid_payload"}), error_code=exc.code)
    flags = set()
    if code.is_dynamic:  # no ID 01 at all is a warning, not a dynamic code
        flags.add("not_static")
    view = jpqr_view(code)
    if view is None:
        flags.add("not_jpqr")
    payees = tuple(f"{guid}|{account}" for guid, account in payees_of(code))[:MAX_PAYEES]
    return ScannedQr(frozenset(flags), store_id=view.store_id if view else None, payees=payees,
                     warnings=tuple(w.code for w in code.warnings))
