"""The sync client's transport: sign, send, verify, retry, all within one deadline.

Internal: use :class:`clue_client.ClueClient`.

By default calls go through :class:`clue_client._http.ConnectionPool` (keep-alive,
the deadline enforced on every socket operation). A caller's own ``requests.Session``
(proxies, client certificates, test adapters) is used as given instead; through it the
deadline bounds each socket read and the retries, not a trickle of reads.
"""

from __future__ import annotations

import ssl
import time
import urllib.request
from typing import Any

import requests

from clue_client._http import ConnectionPool
from clue_client._wire import Answer, Call, Deadline, Outgoing, Wire, as_transport_error
from clue_client.errors import ClueError, TransportError


class SyncTransport:
    """Thread-safe: the pool hands each thread its own connection."""

    def __init__(self, wire: Wire, *, retries: int = 2, session: requests.Session | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self.wire = wire
        self.retries = retries
        if session is None and _proxied(wire.base_url):
            session = requests.Session()  # it honours HTTP(S)_PROXY / NO_PROXY; we do not
        self.session = session
        self.pool = (None if session is not None else
                     ConnectionPool(wire.scheme, wire.hostname, wire.port,
                                    ssl_context=ssl_context))
        self.closed = False

    @property
    def key_id(self) -> str:
        return self.wire.key_id

    def request(self, call: Call, deadline: Deadline) -> Any:
        """The verified JSON answer to ``call``, or the last error once no retry fits."""
        attempts = 1 + self.retries
        attempt = 0
        while True:
            if deadline.left() <= 0:
                raise deadline.exceeded(self.wire.base_url)
            out = self.wire.prepare(call)
            try:
                answer = self._send(out, deadline, trusted=not call.retry)
                return self.wire.check(out, answer.status, answer.headers, answer.body,
                                       call.binary)
            except ClueError as exc:
                attempt += 1
                delay = (self.wire.retry_delay(exc, attempt - 1, deadline.left(),
                                               repeatable=call.retry)
                         if attempt < attempts else None)
                if delay is None:
                    raise
                time.sleep(delay)

    def _send(self, out: Outgoing, deadline: Deadline, *, trusted: bool) -> Answer:
        if self.closed:
            raise TransportError("this CLUE client is closed")
        if self.pool is not None:
            return self.pool.send(out, deadline, trusted=trusted)
        assert self.session is not None
        left = deadline.left()
        if left <= 0:
            raise deadline.exceeded(self.wire.base_url)
        prepared = self.session.prepare_request(requests.Request(
            out.method, out.url, data=out.body or None, headers=out.headers))
        try:
            response = self.session.send(prepared, timeout=left, allow_redirects=False)
            body = response.content
        except requests.Timeout as exc:
            raise deadline.exceeded(self.wire.base_url) from exc
        except requests.RequestException as exc:
            raise as_transport_error(exc, self.wire.base_url) from exc
        headers: dict[str, str] = {}
        for name, value in response.headers.items():
            headers.setdefault(name.lower(), value)
        return Answer(response.status_code, headers, body)

    def close(self) -> None:
        """Close idle connections; a caller's own session stays open (it is theirs)."""
        self.closed = True
        if self.pool is not None:
            self.pool.close()


def _proxied(url: str) -> bool:
    """Does the environment route ``url`` through a proxy (and not exempt it)?"""
    proxies = urllib.request.getproxies()
    scheme = url.split(":", 1)[0]
    if not proxies.get(scheme) and not proxies.get("all"):
        return False
    host = url.split("://", 1)[1].split("/", 1)[0]
    return not urllib.request.proxy_bypass(host)
