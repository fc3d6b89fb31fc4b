"""CLUE Python SDK: check and report fraud identifiers without revealing them.

    >>> from clue_client import ClueClient
    >>> with ClueClient.from_config("var/clue.json") as client:     # doctest: +SKIP
    ...     client.lookup(phone="090-1234-5678")["phone"].matched
    False

Identifiers are canonicalised and turned into keyed tokens on this machine;
only the tokens, signed with the member's key, are sent. ``AsyncClueClient`` is the
same client for asyncio. The integrator's guide is docs/sdk.md.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from clue_client.client import ClueClient
from clue_client.errors import (
    AuthenticationError,
    ClockSkewError,
    ClueError,
    ConfigError,
    DeadlineExceeded,
    ForbiddenError,
    GatewayError,
    InvalidIdentifier,
    MalformedResponseError,
    NotFoundError,
    PrivateLookupsUnavailable,
    RateLimitedError,
    RequestClockSkewError,
    ResponseClockSkewError,
    ResponseVerificationError,
    ServerError,
    TransportError,
    UnavailableError,
    ValidationError,
)
from clue_client.models import (
    DisputeAnswer,
    DisputeAnswers,
    DisputedReport,
    FiledDispute,
    IncomingDispute,
    LookupResult,
    OutgoingDispute,
    Report,
    ReportInput,
)

if TYPE_CHECKING:
    from clue_client.aio import AsyncClueClient


def __getattr__(name: str) -> Any:
    # The async client imports httpx; sync-only users never pay for it.
    if name == "AsyncClueClient":
        from clue_client.aio import AsyncClueClient

        return AsyncClueClient
    raise AttributeError(f"module 'clue_client' has no attribute {name!r}")


__all__ = [
    "AsyncClueClient",
    "AuthenticationError",
    "ClockSkewError",
    "ClueClient",
    "ClueError",
    "ConfigError",
    "DeadlineExceeded",
    "DisputeAnswer",
    "DisputeAnswers",
    "DisputedReport",
    "FiledDispute",
    "ForbiddenError",
    "GatewayError",
    "IncomingDispute",
    "InvalidIdentifier",
    "LookupResult",
    "MalformedResponseError",
    "NotFoundError",
    "OutgoingDispute",
    "PrivateLookupsUnavailable",
    "RateLimitedError",
    "Report",
    "ReportInput",
    "RequestClockSkewError",
    "ResponseClockSkewError",
    "ResponseVerificationError",
    "ServerError",
    "TransportError",
    "UnavailableError",
    "ValidationError",
    "__version__",
]
