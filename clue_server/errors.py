"""One error hierarchy for the API, rendered once as RFC 9457 problem+json.

Each class has a stable ``type`` URI (``urn:clue:problem:<slug>``) that clients
may switch on; ``title`` is the same for every instance of the class and
``detail`` says what was wrong with this request.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

PROBLEM_TYPE_PREFIX = "urn:clue:problem:"
PROBLEM_CONTENT_TYPE = "application/problem+json"


class ClueError(Exception):
    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        #: Extra response headers (``Retry-After`` on a 429).
        self.headers: dict[str, str] = {}

    @property
    def type(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.slug

    def to_problem(self) -> dict[str, Any]:
        return {"type": self.type, "title": self.title, "status": self.status,
                "detail": self.detail, **self.extra}


class BadRequest(ClueError):
    status, slug, title = 400, "bad-request", "Malformed request"


class InvalidJson(BadRequest):
    slug, title = "invalid-json", "Request body is not valid JSON"


class ValidationFailed(ClueError):
    status, slug, title = 422, "validation", "Request failed validation"


class Unauthenticated(ClueError):
    status, slug, title = 401, "unauthenticated", "Request signature rejected"


class ReplayedRequest(Unauthenticated):
    slug, title = "replayed", "Request nonce was already used"


class MemberSuspended(ClueError):
    status, slug, title = 403, "member-suspended", "Member is suspended"


class NotFound(ClueError):
    status, slug, title = 404, "not-found", "No such resource"


class MethodNotAllowed(ClueError):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class IdempotencyConflict(ClueError):
    status, slug, title = 422, "idempotency-key-reused", "Idempotency-Key reused with another body"


class IdempotencyInProgress(ClueError):
    status, slug, title = 409, "idempotency-in-progress", "A request with this key is in progress"


class NotCustodian(ClueError):
    status, slug, title = 409, "not-custodian", "Only the version's custodian may share it"


class PrefixBitsChanged(ClueError):
    """A bucket request made for another prefix length than the council's current one."""

    status, slug, title = 409, "prefix-bits-changed", "The bucket prefix length has changed"


class ProtocolRetired(ClueError):
    """A protocol-1 look-up after the council retired it: look up privately (v2)."""

    status, slug, title = 410, "protocol-retired", "Protocol version 1 look-ups are retired"


class CursorExpired(ClueError):
    """A replica cursor older than the oldest kept tombstone: download again from 0."""

    status, slug, title = 410, "cursor-expired", "Replica cursor too old"


class PayloadTooLarge(ClueError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class UnsupportedMediaType(ClueError):
    status, slug, title = 415, "unsupported-media-type", "Body must be application/json"


class QuotaExceeded(ClueError):
    status, slug, title = 429, "quota-exceeded", "Daily quota exceeded"


class ServiceUnavailable(ClueError):
    """A dependency (database, Redis) is down; nothing was done. Retry after the delay."""

    status, slug, title = 503, "unavailable", "Service temporarily unavailable"

    def __init__(self, detail: str, *, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **extra)
        self.headers["Retry-After"] = str(retry_after)


class StoreRestarted(ServiceUnavailable):
    """The replay store lost its memory after the request was signed: sign it again."""

    slug, title = "store-restarted", "Replay store restarted; sign the request again"


ALL_ERRORS: tuple[type[ClueError], ...] = (
    ClueError, BadRequest, InvalidJson, ValidationFailed, Unauthenticated, ReplayedRequest,
    MemberSuspended, NotFound, MethodNotAllowed, IdempotencyConflict, IdempotencyInProgress,
    PayloadTooLarge, UnsupportedMediaType, QuotaExceeded, NotCustodian, ServiceUnavailable,
    StoreRestarted, PrefixBitsChanged, CursorExpired, ProtocolRetired,
)


def problem_response(error: ClueError, headers: dict[str, str] | None = None) -> Response:
    # A lone surrogate cannot be sent as UTF-8: write "?" for it rather than fail.
    body = json.dumps(error.to_problem(), ensure_ascii=False).encode("utf-8", "replace")
    response = Response(body, status=error.status, content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


_HTTP_MAP: dict[int, type[ClueError]] = {
    400: BadRequest, 404: NotFound, 405: MethodNotAllowed, 413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def init_app(app: Flask) -> None:
    @app.errorhandler(ClueError)
    def _clue_error(error: ClueError) -> Response:
        return problem_response(error, error.headers)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        code = error.code or 500
        cls = _HTTP_MAP.get(code)
        if cls is None:
            return problem_response(_Generic(code, error.name, error.description or ""))
        detail = {
            413: f"the body exceeds {app.config['MAX_CONTENT_LENGTH']} bytes",
            404: "no such endpoint",
        }.get(code, error.description or cls.title)
        # RFC 9110: a 405 must say which methods are allowed.
        allow = {k: v for k, v in error.get_headers() if k.lower() == "allow"}
        return problem_response(cls(detail), allow)

    from clue_server import outages

    outage_log = outages.OutageLog(app.logger)
    app.extensions["clue_outages"] = outage_log

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        dependency = outages.dependency_of(error)
        if dependency is not None:
            outage_log.failed(dependency, error)
            hot = app.extensions.get("clue_hot")
            if dependency == "database" and hot is not None:
                hot.discard()  # this thread's connection may be the broken one
            unavailable = ServiceUnavailable(
                f"the {dependency} is unavailable; nothing was done, retry shortly")
            return problem_response(unavailable, unavailable.headers)
        # Never the exception's own text: a database error's message can quote row
        # values (a unique violation names the key), and no log line may carry a token
        # or a stored hash.
        app.logger.error("unhandled error %s", outages.describe_with_traceback(error))
        return problem_response(ClueError("the server hit an unexpected error; nothing was stored"))


class _Generic(ClueError):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self._status, self._title = status, title

    def to_problem(self) -> dict[str, Any]:
        return {"type": "about:blank", "title": self._title, "status": self._status,
                "detail": self.detail}

    @property
    def status(self) -> int:  # type: ignore[override]
        return self._status
