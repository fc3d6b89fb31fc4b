"""What the sync and the async transport share, with no I/O: a call becomes signed
bytes, an answer becomes data or a typed error, and a failure a retry or not.

Internal: use :class:`clue_client.ClueClient` or :class:`clue_client.AsyncClueClient`.

    wire = Wire("https://clue.example", key_id=..., signing_key=..., server_keys={...})
    out = wire.prepare(Call("POST", "/lookups", {"items": [...]}, retry=True))
    # ... send out.method, out.url, out.headers, out.body; read status, headers, body ...
    data = wire.check(out, status, headers, body)      # verified JSON, or a typed error
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from clue_client import __version__, protocol
from clue_client.errors import (
    AuthenticationError,
    ClueError,
    ConfigError,
    DeadlineExceeded,
    ForbiddenError,
    GatewayError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    RequestClockSkewError,
    ResponseClockSkewError,
    ResponseVerificationError,
    ServerError,
    TransportError,
    UnavailableError,
    ValidationError,
)

#: Answers that change nothing and may be asked again: a proxy's or CLUE's own "not now".
RETRYABLE_STATUS = frozenset({502, 503, 504})
#: Back-off before retry n (0-based): 0.1 s, 0.2 s, ... unless Retry-After says more.
BACKOFF = 0.1
USER_AGENT = f"clue-python/{__version__}"
#: The largest answer read (a page of 1,000 reports is ~300 KB).
MAX_ANSWER_BYTES = 16 * 1024 * 1024
# How the server words a refusal for time ("the signature is 400 s old", "created 12 s in
# the future"): such a 401 is about this machine's clock, not its key.
_TIME_REFUSAL = re.compile(r"\bs old\b|too old|in the future|clock|skew|stale", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Call:
    """One API request as the SDK means it: ``path`` is under ``api`` (``/v1`` unless a
    call of protocol version 2 says ``/v2``) and already quoted.

    ``retry`` marks calls that are safe to repeat (reads, look-ups, registrations, envelope
    uploads); each attempt is signed afresh. ``binary`` names the content type of an
    answer that is not JSON (a replica delta): its verified bytes are the call's reply.
    """

    method: str
    path: str
    body: Any = None
    params: Mapping[str, Any] | None = None
    headers: Mapping[str, str] | None = None
    retry: bool = False
    api: str = protocol.API_PREFIX
    binary: str | None = None


class Deadline:
    """One call's deadline on the monotonic clock, and the budget it was made from."""

    __slots__ = ("at", "timeout")

    def __init__(self, timeout: float, *, at: float | None = None) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.timeout = float(timeout)
        self.at = time.monotonic() + self.timeout if at is None else at

    def left(self) -> float:
        return self.at - time.monotonic()

    def exceeded(self, where: str = "") -> DeadlineExceeded:
        place = f" at {where}" if where else ""
        return DeadlineExceeded(f"no answer from CLUE{place} within {_duration(self.timeout)}",
                                self.timeout)


@dataclass(slots=True)
class Outgoing:
    """A signed request ready to send, and what checking its answer needs."""

    method: str
    url: str
    target: str  # path and query, as on the request line
    headers: dict[str, str]
    body: bytes
    nonce: str
    signed_at: float  # this machine's clock (Unix seconds) when signed
    request: Any  # the request as the signature library sees it (for "@method";req)


@dataclass(slots=True)
class Answer:
    """What came back, as bytes: checked by :meth:`Wire.check`."""

    status: int
    headers: dict[str, str]  # lower-case names; the first of repeated headers
    body: bytes


class Wire:
    """Signs requests with the member's key and checks answers against the pinned keys.

    Thread-safe and shared by every call of a client: it holds keys and settings, and
    the last clock offset seen (a float written atomically).
    """

    def __init__(self, base_url: str, *, key_id: str, signing_key: Ed25519PrivateKey,
                 server_keys: Mapping[str, Ed25519PublicKey],
                 clock: Callable[[], float] = time.time) -> None:
        parts = urlsplit(base_url.strip())
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ConfigError(f"the CLUE server URL must be http(s)://host[:port], "
                              f"not {base_url!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigError(f"the CLUE server URL takes no query, fragment or user: "
                              f"{base_url!r}")
        host = parts.hostname
        if ":" in host:
            host = f"[{host}]"  # an IPv6 literal
        port = parts.port or _DEFAULT_PORTS[scheme]
        self.scheme = scheme
        self.hostname = parts.hostname
        self.port = port
        #: The Host header and the authority of every signed ``@target-uri``: no default port.
        self.host = host if port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
        self.origin = f"{scheme}://{self.host}"
        self.base_url = self.origin + parts.path.rstrip("/")
        self._base_path = parts.path.rstrip("/")
        self.key_id = key_id
        self.signing_key = signing_key
        #: Pinned server keys by key id: the current one and, during a rotation, the
        #: endorsed next one.
        self.server_keys = dict(server_keys)
        self._only_key = (next(iter(self.server_keys.items()))
                          if len(self.server_keys) == 1 else None)
        self.clock = clock
        #: The server's clock minus this machine's (seconds), from the last answer's Date.
        self.clock_offset: float | None = None
        self._last_date: tuple[str, float] = ("", 0.0)

    # -- requests -------------------------------------------------------------------------

    def prepare(self, call: Call) -> Outgoing:
        """Serialise and sign ``call`` with a fresh nonce and ``created``."""
        body = (b"" if call.body is None
                else json.dumps(call.body, separators=(",", ":")).encode())
        target = self._base_path + call.api + call.path
        if call.params:
            target += "?" + urlencode(call.params)
        url = self.origin + target
        headers = {"Host": self.host, "User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if call.headers:
            for name, value in call.headers.items():
                _check_header(name, value)
                headers[name] = value
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        message = protocol.Message(method=call.method, url=url, headers=headers).as_request()
        signed_at = self.clock()
        # The default clock is protocol's own (tests fix protocol._now); another is used as is.
        created = (None if self.clock is time.time
                   else dt.datetime.fromtimestamp(signed_at, dt.UTC))
        nonce = protocol.sign_request(message, body, key_id=self.key_id,
                                      private_key=self.signing_key, created=created)
        return Outgoing(call.method, url, target, headers, body, nonce, signed_at, message)

    # -- answers --------------------------------------------------------------------------

    def check(self, out: Outgoing, status: int, headers: Mapping[str, str], body: bytes,
              binary: str | None = None) -> Any:
        """The verified JSON of a 2xx answer (its bytes, if ``binary`` names its content
        type); a typed error for anything else."""
        offset = self._observe_clock(headers, out.signed_at)
        try:
            if self._only_key is not None:  # the usual case: verify_response checks keyid
                server_key_id, public_key = self._only_key
            else:  # a rotation: two pinned keys, find the one the answer names
                server_key_id = protocol.read_key_id(headers)
                found = self.server_keys.get(server_key_id)
                if found is None:
                    raise protocol.SignatureError(f"signed by {server_key_id!r}, not a pinned "
                                                  "server key")
                public_key = found
            protocol.verify_response(status, headers,  # type: ignore[arg-type]
                                     body, out.request, public_key=public_key,
                                     key_id=server_key_id, nonce=out.nonce)
        except protocol.SignatureError as exc:
            raise self._refusal(status, headers, exc, offset) from exc
        if binary is not None and 200 <= status < 300:
            return _binary(status, headers, body, binary)
        try:
            data = json.loads(body) if body else {}
        except ValueError as exc:
            raise MalformedResponseError(
                f"the server's signed answer ({status}) is not JSON") from exc
        if status >= 400:
            raise _problem(status, headers, data, offset)
        if not 200 <= status < 300:
            raise MalformedResponseError(f"unexpected status {status} in a signed answer")
        return data

    def _observe_clock(self, headers: Mapping[str, str], signed_at: float) -> float | None:
        date = _header(headers, "date")
        if not date:
            return None
        last, epoch = self._last_date
        if date != last:  # one parse per second of server time, not per answer
            try:
                epoch = email.utils.parsedate_to_datetime(date).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
            self._last_date = (date, epoch)
        # Date has whole seconds: the server's clock was within [epoch, epoch + 1) when it
        # answered, some time between signing and now on this machine's clock.
        offset = round(epoch + 0.5 - (signed_at + self.clock()) / 2, 1)
        self.clock_offset = offset
        return offset

    def _refusal(self, status: int, headers: Mapping[str, str], exc: protocol.SignatureError,
                 offset: float | None) -> ResponseVerificationError:
        signed = _header(headers, "signature-input") or _header(headers, "signature")
        if not signed and status in RETRYABLE_STATUS:
            return GatewayError(f"an unsigned {status} answered, not CLUE (a proxy or load "
                                "balancer between here and CLUE could not reach it)", status)
        text = str(exc)
        # protocol may say it itself (a ClockSkewError with the signer's offset: the server's)
        said = getattr(exc, "offset", None)
        if offset is None and isinstance(said, int | float):
            offset = float(said)
        skewed = offset is not None and abs(offset) > protocol.MAX_CLOCK_SKEW
        if "future" in text.lower() or skewed or said is not None:
            return ResponseClockSkewError(
                f"refusing the server's answer ({status}): its signature is dated "
                f"too far from this machine's clock; {_clock_advice(offset)}", offset)
        refused = ResponseVerificationError(f"refusing the server's answer ({status}): {text}")
        refused.status = status
        return refused

    # -- retries --------------------------------------------------------------------------

    @staticmethod
    def retry_delay(exc: ClueError, attempt: int, left: float, *,
                    repeatable: bool) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up now.

        A ``repeatable`` call is retried on no connection or a broken one, an unsigned
        502/503/504 from a proxy, and CLUE's own signed 502/503/504 (after its
        Retry-After, if that fits the deadline). Any call is retried on CLUE's signed
        503: the server says nothing was done (a database or Redis outage, or a replay
        store that restarted after the request was signed).
        """
        if isinstance(exc, DeadlineExceeded):
            return None
        if not repeatable and not isinstance(exc, UnavailableError):
            return None
        if isinstance(exc, (TransportError, GatewayError)):
            delay = BACKOFF * 2 ** attempt
        elif isinstance(exc, ServerError) and exc.status in RETRYABLE_STATUS:
            delay = BACKOFF * 2 ** attempt
            if isinstance(exc, UnavailableError) and exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
        else:
            return None
        return delay if delay < left else None


def _problem(status: int, headers: Mapping[str, str], data: Any,
             offset: float | None) -> ServerError:
    problem = data if isinstance(data, dict) else {"detail": str(data)}
    if status == 401:
        detail = str(problem.get("detail", ""))
        # The server may say how far ahead the request's signer (this machine) looked.
        said = problem.get("clock_offset_seconds")
        if offset is None and isinstance(said, int | float) and not isinstance(said, bool):
            offset = -float(said)
        skewed = offset is not None and abs(offset) > protocol.MAX_CLOCK_SKEW
        if skewed or said is not None or (
                problem.get("type") == "urn:clue:problem:unauthenticated"
                and _TIME_REFUSAL.search(detail)):
            return RequestClockSkewError(status, problem, offset, _clock_advice(offset))
        return AuthenticationError(status, problem)
    if status == 403:
        return ForbiddenError(status, problem)
    if status == 404:
        return NotFoundError(status, problem)
    if status == 429:
        retry_after = _signed_retry_after(problem, headers)
        return RateLimitedError(status, problem,
                                None if retry_after is None else int(retry_after))
    if status == 503:
        return UnavailableError(status, problem, _signed_retry_after(problem, headers))
    if status in (400, 409, 413, 415, 422):
        return ValidationError(status, problem)
    return ServerError(status, problem)


def _binary(status: int, headers: Mapping[str, str], body: bytes, content_type: str) -> bytes:
    """The signed bytes of a binary answer, if they are the content type asked for."""
    said = (_header(headers, "content-type") or "").split(";", 1)[0].strip().lower()
    if said != content_type:
        raise MalformedResponseError(f"the server's signed answer ({status}) is "
                                     f"{said or 'untyped'}, not {content_type}")
    return body


def _clock_advice(offset: float | None) -> str:
    tolerance = protocol.MAX_CLOCK_SKEW
    if offset is None:
        return (f"this machine's clock may be off (CLUE allows {tolerance} s either way): "
                "synchronise it (NTP)")
    way = "behind" if offset > 0 else "ahead of"
    return (f"this machine's clock is about {abs(offset):.0f} s {way} the server's; CLUE "
            f"allows {tolerance} s either way: synchronise it (NTP)")


def _signed_retry_after(problem: Mapping[str, Any], headers: Mapping[str, str]
                        ) -> float | None:
    """The delay CLUE asks for: ``retry_after`` from the signed problem body (the header is
    outside the response signature), else the ``Retry-After`` header."""
    value = problem.get("retry_after")
    if type(value) is int and 0 <= value <= 86_400 * 2:
        return float(value)
    return _retry_after(headers)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    value = (_header(headers, "retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup in any mapping (a dict, http.client's or httpx's headers)."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _check_header(name: str, value: str) -> None:
    if not name.isascii() or not name.replace("-", "").isalnum():
        raise ValueError(f"not a header name: {name!r}")
    if not value.isascii() or not value.isprintable():
        raise ValueError(f"header {name} must be printable ASCII")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:g} s"


def as_transport_error(exc: BaseException, where: str) -> TransportError:
    """A socket or HTTP library failure, in the SDK's words."""
    return TransportError(f"cannot reach CLUE at {where}: {exc}")
