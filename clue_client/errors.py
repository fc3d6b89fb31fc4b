"""Errors raised by the CLUE SDK.

Every error the SDK raises is a :class:`ClueError`; callers that only want to
know "did CLUE answer?" catch that one class. The tree::

    ClueError
    ├── InvalidIdentifier (also ValueError)    refused locally, nothing sent
    ├── ConfigError                            local configuration or key file
    ├── PrivateLookupsUnavailable              the server has no protocol version 2
    ├── TransportError                         no usable answer arrived
    │   └── DeadlineExceeded (also TimeoutError)   the call's deadline passed
    ├── ResponseVerificationError              an answer arrived but is not CLUE's
    │   ├── GatewayError                       unsigned 502/503/504 (a proxy's page)
    │   ├── MalformedResponseError             signed, but not the shape promised
    │   └── ResponseClockSkewError             refused for time (also ClockSkewError)
    ├── ServerError                            a signed RFC 9457 problem
    │   ├── AuthenticationError (401)
    │   │   └── RequestClockSkewError          refused for time (also ClockSkewError)
    │   ├── ForbiddenError (403), NotFoundError (404), ValidationError (4xx)
    │   ├── RateLimitedError (429)
    │   └── UnavailableError (503)             the server's database or Redis is down
    └── ClockSkewError                         either clock error above
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


class PrivateLookupsUnavailable(ClueError):
    """Private look-ups (protocol version 2) were asked for, and the server has none
    (``GET /v2/config`` answered 404: an older server)."""


class TransportError(ClueError):
    """CLUE could not be reached (connection refused or reset, TLS failure, client closed)."""


class DeadlineExceeded(TransportError, TimeoutError):
    """The call's deadline passed before a verified answer arrived.

    Covers connecting, sending, every retry and back-off and reading the whole
    answer, so a silent or a trickling server ends here, on time. ``timeout`` is the
    call's budget in seconds.
    """

    def __init__(self, message: str, timeout: float) -> None:
        super().__init__(message)
        self.timeout = timeout


class ClockSkewError(ClueError):
    """A request or an answer was refused for time: the local clock is off.

    ``offset`` is the server's clock minus this machine's, in seconds (positive: this
    machine is behind), measured from the server's ``Date`` header; ``None`` when the
    answer had none. Raised as :class:`RequestClockSkewError` (the server refused the
    request) or :class:`ResponseClockSkewError` (the SDK refused the answer).
    """

    offset: float | None = None


class ResponseVerificationError(ClueError):
    """The server's answer was unsigned, tampered with or signed by an unknown key.

    Nothing in it is used: treat it as if no answer had arrived. ``status`` is the
    refused answer's HTTP status, when the SDK got that far.
    """

    status: int | None = None


class GatewayError(ResponseVerificationError):
    """An unsigned 502/503/504: a proxy or load balancer answered, not CLUE.

    Retried within the call's deadline (repeating a request changes nothing); raised
    when it is still the answer at the end. ``status`` is the proxy's status code.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class MalformedResponseError(ResponseVerificationError):
    """A correctly signed answer lacks a field or has the wrong shape (a server bug)."""


class ResponseClockSkewError(ResponseVerificationError, ClockSkewError):
    """The answer's signature is dated too far from this machine's clock."""

    def __init__(self, message: str, offset: float | None) -> None:
        super().__init__(message)
        self.offset = offset


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


class RequestClockSkewError(AuthenticationError, ClockSkewError):
    """401 because the request's signature is too old or dated in the future."""

    def __init__(self, status: int, problem: dict[str, Any], offset: float | None,
                 advice: str) -> None:
        super().__init__(status, problem)
        self.offset = offset
        self.args = (f"{self.args[0]} ({advice})",)


class ForbiddenError(ServerError):
    """403: the member is suspended or not allowed to do this."""


class NotFoundError(ServerError):
    """404: no such resource (or not one of the caller's own)."""


class ValidationError(ServerError):
    """400/409/413/415/422: the request was malformed; nothing was stored."""


class RateLimitedError(ServerError):
    """429: a quota was exceeded; ``retry_after`` says when to try again."""

    def __init__(self, status: int, problem: dict[str, Any], retry_after: int | None) -> None:
        super().__init__(status, problem)
        self.retry_after = retry_after


class UnavailableError(ServerError):
    """503 ``urn:clue:problem:unavailable``: the server cannot reach its database or Redis.

    Signed, so it is CLUE's own word; nothing was stored. Retried within the call's
    deadline, honouring ``retry_after`` (seconds) when it fits.
    """

    def __init__(self, status: int, problem: dict[str, Any], retry_after: float | None) -> None:
        super().__init__(status, problem)
        self.retry_after = retry_after
