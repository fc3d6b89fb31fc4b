"""CLUE Python SDK: check and report fraud identifiers without revealing them.

    >>> from clue_client import ClueClient
    >>> client = ClueClient.from_config("var/clue.json")          # doctest: +SKIP
    >>> client.lookup(phone="090-1234-5678")["phone"].matched     # doctest: +SKIP
    False

Identifiers are canonicalised and turned into keyed tokens on this machine;
only the tokens, signed with the member's key, are sent.
"""

__version__ = "0.1.0"

from clue_client.client import ClueClient
from clue_client.errors import (
    AuthenticationError,
    ClueError,
    ConfigError,
    ForbiddenError,
    InvalidIdentifier,
    NotFoundError,
    RateLimitedError,
    ResponseVerificationError,
    ServerError,
    TransportError,
    ValidationError,
)
from clue_client.models import LookupResult, Report, ReportInput

__all__ = [
    "AuthenticationError",
    "ClueClient",
    "ClueError",
    "ConfigError",
    "ForbiddenError",
    "InvalidIdentifier",
    "LookupResult",
    "NotFoundError",
    "RateLimitedError",
    "Report",
    "ReportInput",
    "ResponseVerificationError",
    "ServerError",
    "TransportError",
    "ValidationError",
    "__version__",
]
