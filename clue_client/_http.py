"""Keep-alive HTTP/1.1 to one CLUE server, with one deadline over the whole exchange.

Internal: the sync client's default transport.

Why not ``requests``: its timeouts apply to each socket read, so a server that trickles
its answer one byte at a time holds a call (and the thread running it) for as long as
it likes. Here every socket operation gets only the time left until the call's
deadline, so connecting, sending and reading the whole answer end by the deadline.

It is also several times cheaper per call: the SDK sends one kind of request and
needs the status, the headers and the body bytes of the answer, so it writes the
request itself and reads the answer with a small strict HTTP/1.1 reader (status line,
header fields, ``Content-Length``, ``chunked``, or until close) instead of a general
client. Anything it does not expect is a :class:`~clue_client.errors.TransportError`.

Idle connections are kept (at most ``max_idle``) and reused, newest first; one that
the server has closed meanwhile is noticed before use and dropped. Thread-safe, and
fork-safe: a child process (a gunicorn worker forked after the client was made) never
uses its parent's connections.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import threading
import time
import weakref

from clue_client._wire import MAX_ANSWER_BYTES, Answer, Deadline, Outgoing, as_transport_error
from clue_client.errors import TransportError

#: A connection idle longer than this is not trusted with a call that must not be
#: repeated (the server may be closing it at that very moment: gunicorn's keep-alive is 2 s).
TRUSTED_IDLE = 1.0
MAX_IDLE = 10
MAX_HEAD_BYTES = 64 * 1024
_RECV = 65536


class ProtocolError(Exception):
    """The answer is not HTTP/1.1 as this reader accepts it."""


class _DeadlineReached(TimeoutError):
    pass


class _Connection:
    """One socket; reads and writes that never outlast ``deadline`` (monotonic)."""

    __slots__ = ("buffer", "deadline", "idle_since", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = 0.0
        self.idle_since = 0.0
        self.buffer = bytearray()  # received, not yet consumed

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _DeadlineReached("deadline reached")
        return left

    def send(self, data: bytes) -> None:
        self.sock.settimeout(self._left())  # sendall's timeout is for the whole send
        self.sock.sendall(data)

    def _fill(self) -> bool:
        """Receive more into the buffer; False at the end of the stream."""
        self.sock.settimeout(self._left())
        chunk = self.sock.recv(_RECV)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def _line(self, limit: int) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[:end + 2]
                return line
            if len(self.buffer) > limit:
                raise ProtocolError("line too long")
            if not self._fill():
                raise ProtocolError("connection closed mid-answer")

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise ProtocolError("connection closed mid-answer")
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def read_answer(self, method: str) -> tuple[Answer, bool]:
        """The next answer and whether the connection may carry another request."""
        while True:
            status, version, headers = self._head()
            if status >= 200 or status == 101:
                break  # 1xx (100 Continue, 103 Early Hints) are interim: read on
        if status == 101:
            raise ProtocolError("the server switched protocols")
        connection = headers.get("connection", "").lower()
        keep = (version == "HTTP/1.1" and "close" not in connection) or (
            version == "HTTP/1.0" and "keep-alive" in connection)
        if method == "HEAD" or status in (204, 304):
            return Answer(status, headers, b""), keep
        encoding = headers.get("transfer-encoding")
        if encoding is not None:
            if encoding.strip().lower() != "chunked":
                raise ProtocolError(f"unsupported Transfer-Encoding {encoding!r}")
            return Answer(status, headers, self._chunked()), keep
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit() or len(length) > 12:
                raise ProtocolError(f"bad Content-Length {length!r}")
            size = int(length)
            if size > MAX_ANSWER_BYTES:
                raise ProtocolError(f"the answer exceeds {MAX_ANSWER_BYTES} bytes")
            return Answer(status, headers, self._exactly(size)), keep
        while len(self.buffer) <= MAX_ANSWER_BYTES and self._fill():
            pass  # delimited by the end of the connection
        if len(self.buffer) > MAX_ANSWER_BYTES:
            raise ProtocolError(f"the answer exceeds {MAX_ANSWER_BYTES} bytes")
        body = bytes(self.buffer)
        self.buffer.clear()
        return Answer(status, headers, body), False

    def _head(self) -> tuple[int, str, dict[str, str]]:
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > MAX_HEAD_BYTES:
                raise ProtocolError("header section too long")
            if not self._fill():
                raise ProtocolError("connection closed before an answer"
                                    if not self.buffer else "connection closed mid-answer")
        end = self.buffer.index(b"\r\n\r\n")
        if end > MAX_HEAD_BYTES:
            raise ProtocolError("header section too long")
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        del self.buffer[:end + 4]
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if version not in ("HTTP/1.1", "HTTP/1.0") or not code.isdigit() or (
                rest[3:4] not in ("", " ")):
            raise ProtocolError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip() or line[0] in " \t":
                raise ProtocolError(f"malformed header line: {line[:80]!r}")
            key = name.lower()
            value = value.strip(" \t")
            if key in ("content-length", "transfer-encoding") and key in headers:
                if headers[key] != value:  # conflicting framing: request smuggling territory
                    raise ProtocolError(f"conflicting {name} headers")
            headers.setdefault(key, value)
        if "transfer-encoding" in headers and "content-length" in headers:
            del headers["content-length"]  # RFC 9112 §6.3: Transfer-Encoding wins
        return int(code), version, headers

    def _chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_text = self._line(1024).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
            if size == 0:
                while self._line(MAX_HEAD_BYTES):  # trailer fields, then an empty line
                    pass
                return bytes(body)
            if len(body) + size > MAX_ANSWER_BYTES:
                raise ProtocolError(f"the answer exceeds {MAX_ANSWER_BYTES} bytes")
            body += self._exactly(size)
            if self._exactly(2) != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")

    def dropped(self) -> bool:
        """Has the server closed this idle connection (or sent something unasked)?"""
        if self.buffer:
            return True
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
        _pools.add(self)

    def send(self, out: Outgoing, deadline: Deadline, *, trusted: bool) -> Answer:
        """One exchange; ``trusted`` asks for a connection that cannot be stale (a fresh
        one, or one used within the last second) for requests that must not be repeated."""
        connection = self._checkout(deadline, trusted)
        connection.deadline = deadline.at
        try:
            connection.send(_request_bytes(out))
            answer, reusable = connection.read_answer(out.method)
        except TimeoutError as exc:
            connection.close()
            raise deadline.exceeded(self.where) from exc
        except (OSError, ProtocolError, ValueError) as exc:
            connection.close()
            if deadline.left() <= 0:
                raise deadline.exceeded(self.where) from exc
            raise as_transport_error(exc, self.where) from exc
        except BaseException:
            connection.close()
            raise
        if reusable and not connection.buffer:
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

    def _after_fork(self) -> None:
        """In a forked child: the parent's sockets (and maybe its held lock) are not ours."""
        self._lock = threading.Lock()
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()  # the child's copy of the descriptor; the parent's stays open

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


_pools: weakref.WeakSet[ConnectionPool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pool in list(_pools):
        pool._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _request_bytes(out: Outgoing) -> bytes:
    head = f"{out.method} {out.target} HTTP/1.1\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in out.headers.items())
    if out.body or out.method in ("POST", "PUT", "PATCH"):
        head += f"Content-Length: {len(out.body)}\r\n"
    return (head + "\r\n").encode("ascii") + out.body
