"""Keep-alive HTTP/1.1 to one CLUE server, with one deadline over the whole exchange.

Internal: the sync client's default transport.

Why not ``requests``: its timeouts apply to each socket read, so a server that trickles
its answer one byte at a time holds a call (and the thread running it) for as long as
it likes. Here every socket operation gets the time left until the call's deadline, so
connecting, sending and reading the whole answer together end by the deadline. It is
also several times cheaper per call. Responses are parsed by ``http.client``.

Idle connections are kept (at most ``max_idle``) and reused, newest first; one that
the server has closed meanwhile is noticed before use and dropped. Thread-safe.
"""

from __future__ import annotations

import http.client
import io
import select
import socket
import ssl
import threading
import time
from typing import Any

from clue_client._wire import MAX_ANSWER_BYTES, Answer, Deadline, Outgoing, as_transport_error
from clue_client.errors import TransportError

#: A connection idle longer than this is not trusted with a call that must not be
#: repeated (the server may be closing it at that very moment: gunicorn's keep-alive is 2 s).
TRUSTED_IDLE = 1.0
MAX_IDLE = 10
_READ_BUFFER = 65536


class _DeadlineReached(socket.timeout):
    pass


class _Connection:
    """One socket, and the deadline of the exchange currently using it."""

    __slots__ = ("deadline", "exchanges", "idle_since", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = 0.0
        self.idle_since = 0.0
        self.exchanges = 0

    def left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _DeadlineReached("deadline reached")
        return left

    def sendall(self, data: bytes) -> None:
        self.sock.settimeout(self.left())  # sendall's timeout is for the whole send
        self.sock.sendall(data)

    def makefile(self, mode: str) -> io.BufferedReader:
        assert mode == "rb"
        return io.BufferedReader(_Reader(self), _READ_BUFFER)

    def dropped(self) -> bool:
        """Has the server closed this idle connection (or sent something unasked)?"""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class _Reader(io.RawIOBase):
    """Every read waits at most until the deadline: a trickle cannot stretch it."""

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        connection = self.connection
        connection.sock.settimeout(connection.left())
        return connection.sock.recv_into(buffer)


class ConnectionPool:
    """HTTP/1.1 keep-alive connections to one origin, shared by threads."""

    def __init__(self, scheme: str, hostname: str, port: int, *,
                 ssl_context: ssl.SSLContext | None = None, max_idle: int = MAX_IDLE) -> None:
        self.scheme = scheme
        self.hostname = hostname
        self.port = port
        self.where = f"{scheme}://{hostname}:{port}"
        self.ssl_context = (ssl_context or ssl.create_default_context()
                            if scheme == "https" else None)
        self.max_idle = max_idle
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        #: Connections opened so far (for tests and diagnostics).
        self.opened = 0

    def send(self, out: Outgoing, deadline: Deadline, *, trusted: bool) -> Answer:
        """One exchange; ``trusted`` asks for a connection that cannot be stale (a fresh
        one, or one used within the last second) for requests that must not be repeated."""
        connection = self._checkout(deadline, trusted)
        connection.deadline = deadline.at
        try:
            connection.sendall(_request_bytes(out))
            response = http.client.HTTPResponse(connection)  # type: ignore[arg-type]
            response.begin()
            body = response.read(MAX_ANSWER_BYTES + 1)
            if len(body) > MAX_ANSWER_BYTES:
                raise ValueError(f"the answer exceeds {MAX_ANSWER_BYTES} bytes")
            answer = Answer(response.status, _headers(response.getheaders()), body)
            reusable = not response.will_close and response.isclosed()
        except TimeoutError as exc:
            connection.close()
            raise deadline.exceeded(self.where) from exc
        except (OSError, http.client.HTTPException, ValueError) as exc:
            connection.close()
            if deadline.left() <= 0:
                raise deadline.exceeded(self.where) from exc
            raise as_transport_error(exc, self.where) from exc
        except BaseException:
            connection.close()
            raise
        connection.exchanges += 1
        if reusable:
            self._checkin(connection)
        else:
            connection.close()
        return answer

    def close(self) -> None:
        """Close the idle connections; connections in use close when their call returns."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    @property
    def idle(self) -> int:
        return len(self._idle)

    def _checkout(self, deadline: Deadline, trusted: bool) -> _Connection:
        now = time.monotonic()
        while True:
            with self._lock:
                if self._closed:
                    raise TransportError("this CLUE client is closed")
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._connect(deadline)
            if (trusted and now - connection.idle_since > TRUSTED_IDLE) or connection.dropped():
                connection.close()
                continue
            return connection

    def _checkin(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        with self._lock:
            if not self._closed and len(self._idle) < self.max_idle:
                self._idle.append(connection)
                return
        connection.close()

    def _connect(self, deadline: Deadline) -> _Connection:
        left = deadline.left()
        if left <= 0:
            raise deadline.exceeded(self.where)
        try:
            sock = socket.create_connection((self.hostname, self.port), timeout=left)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock.settimeout(max(deadline.left(), 0.001))
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.hostname)
        except TimeoutError as exc:
            raise deadline.exceeded(self.where) from exc
        except OSError as exc:
            raise as_transport_error(exc, self.where) from exc
        self.opened += 1
        return _Connection(sock)


def _request_bytes(out: Outgoing) -> bytes:
    lines = [f"{out.method} {out.target} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in out.headers.items())
    if out.body or out.method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(out.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + out.body


def _headers(pairs: list[tuple[str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in pairs:
        headers.setdefault(name.lower(), value)
    return headers
