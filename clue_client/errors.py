"""Errors raised by the CLUE SDK.

Every error the SDK raises is a :class:`ClueError`; callers that only want to
know "did CLUE answer?" catch that one class.
"""

from __future__ import annotations

from typing import Any


class ClueError(Exception):
    """Base class of every SDK error."""


class InvalidIdentifier(ClueError, ValueError):
    """An identifier could not be canonicalised (bad phone number, e-mail, ...).

    Raised locally, before anything is sent.
    """

    def __init__(self, id_type: str, reason: str) -> None:
        super().__init__(f"invalid {id_type}: {reason}")
        self.id_type = id_type
        self.reason = reason


class ConfigError(ClueError):
    """The local configuration or a key file is missing or unusable."""


class TransportError(ClueError):
    """CLUE could not be reached (connection refused, timeout, TLS failure)."""


class ResponseVerificationError(ClueError):
    """The server's answer was unsigned, tampered with or signed by an unknown key."""


class ServerError(ClueError):
    """The server answered with an RFC 9457 problem document."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", "about:blank"))
        self.title = str(problem.get("title", ""))
        self.detail = str(problem.get("detail", ""))
        super().__init__(f"{status} {self.title}: {self.detail}".strip())


class AuthenticationError(ServerError):
    """401: the server refused the request's signature."""


class ForbiddenError(ServerError):
    """403: the member is suspended or not allowed to do this."""


class NotFoundError(ServerError):
    """404: no such resource (or not one of the caller's own)."""


class ValidationError(ServerError):
    """400/413/422: the request was malformed; nothing was stored."""


class RateLimitedError(ServerError):
    """429: a quota was exceeded; ``retry_after`` says when to try again."""

    def __init__(self, status: int, problem: dict[str, Any], retry_after: int | None) -> None:
        super().__init__(status, problem)
        self.retry_after = retry_after
