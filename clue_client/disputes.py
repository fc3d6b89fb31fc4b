"""Filing a data subject's dispute: tokenise locally, send the token and the reason.

    client.open_dispute("phone", "090-1234-5678", "The customer says the number is new to them")
    for dispute in client.incoming_disputes():
        client.answer_dispute(dispute["id"], "uphold", "Confirmed chargeback 2024-03")

The reason is sent as written: it must not contain the identifier or other personal
data (the filer's duty; see docs/disputes.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clue_client.errors import NotFoundError

if TYPE_CHECKING:
    from clue_client.client import ClueClient

MAX_REASON_CHARS = 1000
ANSWERS = ("withdraw", "uphold")


def open_dispute(client: ClueClient, id_type: str, value: str, reason: str) -> dict[str, Any]:
    """Newest network-key version first: reports made under an older one match its token."""
    _check_reason(reason)
    versions = client.network_keys.versions
    for position, version in enumerate(versions):
        body = client._token_fields(id_type, value, version)
        body["reason"] = reason
        try:
            result: dict[str, Any] = client._http.request("POST", "/disputes", body)
        except NotFoundError:
            if position == len(versions) - 1:
                raise
            continue
        return result
    raise AssertionError("unreachable: a keyring holds at least one version")


def _check_reason(reason: str) -> None:
    if not 1 <= len(reason.strip()) <= MAX_REASON_CHARS:
        raise ValueError(f"a dispute reason is 1 to {MAX_REASON_CHARS} characters")
