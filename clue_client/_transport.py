"""One signed HTTP session: sign every request, verify every response.

Internal: use :class:`clue_client.ClueClient`.
"""

from __future__ import annotations

import json
import time
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from clue_client import __version__, protocol
from clue_client.errors import (
    AuthenticationError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    ResponseVerificationError,
    ServerError,
    TransportError,
    ValidationError,
)

RETRYABLE_STATUS = frozenset({502, 503, 504})


class SignedSession:
    def __init__(self, base_url: str, *, key_id: str, signing_key: Ed25519PrivateKey,
                 server_keys: dict[str, Ed25519PublicKey],
                 timeout: float = 5.0, retries: int = 2,
                 session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.key_id = key_id
        self.signing_key = signing_key
        #: Pinned server keys by key id: the current one and, during a rotation, the
        #: endorsed next one.
        self.server_keys = dict(server_keys)
        self.timeout = timeout
        self.retries = retries
        self.http = session or requests.Session()
        self.http.headers["User-Agent"] = f"clue-python/{__version__}"

    def request(self, method: str, path: str, body: Any = None, *,
                headers: dict[str, str] | None = None, params: dict[str, Any] | None = None,
                retry: bool = False) -> Any:
        """Send a signed request and return the verified JSON answer.

        ``retry`` is for requests that are safe to repeat (reads, writes with an
        Idempotency-Key); each attempt is signed afresh with a new nonce.
        """
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            try:
                return self._once(method, path, body, headers or {}, params)
            except (TransportError, ServerError) as exc:
                last = attempt == attempts - 1
                if last or not _retryable(exc):
                    raise
                time.sleep(0.1 * 2 ** attempt)
        raise AssertionError("unreachable")

    def _once(self, method: str, path: str, body: Any, headers: dict[str, str],
              params: dict[str, Any] | None) -> Any:
        raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        all_headers = dict(headers)
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        prepared = self.http.prepare_request(requests.Request(
            method, self.base_url + protocol.API_PREFIX + path, data=raw or None,
            headers=all_headers, params=params))
        nonce = protocol.sign_request(prepared, raw, key_id=self.key_id,
                                      private_key=self.signing_key)
        try:
            response = self.http.send(prepared, timeout=self.timeout)
        except requests.RequestException as exc:
            raise TransportError(f"cannot reach CLUE at {self.base_url}: {exc}") from exc
        content = response.content
        try:
            server_key_id = protocol.read_key_id(response.headers)
            if server_key_id not in self.server_keys:
                raise protocol.SignatureError(f"signed by {server_key_id!r}, not a pinned "
                                              "server key")
            protocol.verify_response(response.status_code, response.headers, content, prepared,
                                     public_key=self.server_keys[server_key_id],
                                     key_id=server_key_id, nonce=nonce)
        except protocol.SignatureError as exc:
            raise ResponseVerificationError(
                f"refusing the server's answer ({response.status_code}): {exc}") from exc
        data = _json(response, content)
        if response.status_code >= 400:
            raise _error(response, data)
        return data


def _json(response: requests.Response, content: bytes) -> Any:
    try:
        return json.loads(content) if content else {}
    except ValueError as exc:
        raise ResponseVerificationError(
            f"the server's answer ({response.status_code}) is not JSON") from exc


def _error(response: requests.Response, data: Any) -> ServerError:
    problem = data if isinstance(data, dict) else {"detail": str(data)}
    status = response.status_code
    if status == 401:
        return AuthenticationError(status, problem)
    if status == 403:
        return ForbiddenError(status, problem)
    if status == 404:
        return NotFoundError(status, problem)
    if status == 429:
        retry_after = response.headers.get("Retry-After")
        return RateLimitedError(status, problem,
                                int(retry_after) if retry_after and retry_after.isdigit() else None)
    if status in (400, 409, 413, 415, 422):
        return ValidationError(status, problem)
    return ServerError(status, problem)


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, TransportError):
        return True
    return isinstance(exc, ServerError) and exc.status in RETRYABLE_STATUS
