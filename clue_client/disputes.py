"""Filing a data subject's dispute: tokenise locally, send the token and the reason.

    filed = client.open_dispute("phone", "090-1234-5678",
                                "The customer says the number is new to them")
    for dispute in client.incoming_disputes():           # IncomingDispute models
        client.answer_dispute(dispute.id, "uphold", "Confirmed chargeback 2024-03")

The reason is sent as written: it must not contain the identifier or other personal
data (the filer's duty; see docs/disputes.md). The requests themselves are built in
``clue_client._calls`` (``open_dispute`` asks under the newest network-key version
first); the answers are the frozen models of :mod:`clue_client.models`.
"""

from __future__ import annotations

MAX_REASON_CHARS = 1000
ANSWERS = ("withdraw", "uphold")


def check_reason(reason: str) -> None:
    if not 1 <= len(reason.strip()) <= MAX_REASON_CHARS:
        raise ValueError(f"a dispute reason is 1 to {MAX_REASON_CHARS} characters")
