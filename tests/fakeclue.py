"""A fake CLUE server on a real socket, for the SDK's transport tests.

It speaks HTTP/1.1 with keep-alive and answers each request with what the test's
*script* says: a correctly signed answer (by a test-only server key, through the
project's own ``protocol.sign_response``), an unsigned proxy page, silence, or any of
those trickled one byte at a time. It counts connections, so keep-alive can be shown.

    with FakeClue() as fake:
        fake.script = [fake.signed(200, {"pong": True})]   # then the default
        client = fake.client(network_keys=ring)
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms

import keys
from clue_client import ClueClient, protocol


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    connection: int  # which accepted connection (0, 1, ...) carried it

    @property
    def url(self) -> str:
        return f"http://{self.headers['host']}{self.target}"

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """What to send back: ``data`` (None: say nothing until the client gives up),
    one byte per ``trickle`` seconds if set, then close the connection if ``close``."""

    data: bytes | None
    trickle: float | None = None
    close: bool = False


Script = Callable[[Request], Reply]


@dataclass
class FakeClue:
    key: Any = field(default_factory=keys.generate_signing_key)
    #: One script per request, in order; when used up, ``default`` answers.
    script: list[Script] = field(default_factory=list)
    default: Script | None = None
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    #: Connections whose handler finished (the client closed them or the script did).
    finished: int = 0
    #: When each connection's handler finished, on the monotonic clock.
    finished_at: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key_id = protocol.server_key_id(self.key.public_key())
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._listener.settimeout(0.1)  # accept() wakes up to notice the stop
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        if self.default is None:
            self.default = lambda request: self.signed(200, {"pong": True})(request)

    # -- lifetime ---------------------------------------------------------------------------

    def __enter__(self) -> FakeClue:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def client(self, **options: Any) -> ClueClient:
        options.setdefault("private_lookups", False)  # scripts answer protocol 1's requests
        options.setdefault("network_keys", keys.Keyring([keys.new_symmetric_key("network", 1)]))
        options.setdefault("signing_key", keys.generate_signing_key())
        return ClueClient(self.url, server_public_key=self.key.public_key(),
                          server_key_id=self.key_id, **options)

    def async_client(self, **options: Any) -> Any:
        from clue_client import AsyncClueClient

        options.setdefault("private_lookups", False)
        options.setdefault("network_keys", keys.Keyring([keys.new_symmetric_key("network", 1)]))
        options.setdefault("signing_key", keys.generate_signing_key())
        return AsyncClueClient(self.url, server_public_key=self.key.public_key(),
                               server_key_id=self.key_id, **options)

    # -- scripts ----------------------------------------------------------------------------

    def signed(self, status: int, body: Any, *, headers: dict[str, str] | None = None,
               skew: float = 0.0, trickle: float | None = None,
               content_type: str | None = None) -> Script:
        """A correctly signed answer, as if the server's clock were ``skew`` s ahead."""
        def script(request: Request) -> Reply:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            head = {"Content-Type": content_type or ("application/json" if status < 400
                                                     else "application/problem+json"),
                    "Date": email.utils.formatdate(time.time() + skew, usegmt=True),
                    **(headers or {})}
            nonce = protocol.read_nonce(request.headers)
            if skew:
                _sign_at(self.key, self.key_id, status, head, raw, request, nonce,
                         dt.datetime.now(dt.UTC) + dt.timedelta(seconds=skew))
            else:
                protocol.sign_response(status, head, raw, _RequestView(request), key_id=self.key_id,
                                       private_key=self.key, nonce=nonce)
            return Reply(_response_bytes(status, head, raw), trickle=trickle)
        return script

    def problem(self, status: int, type_: str, detail: str, **kwargs: Any) -> Script:
        return self.signed(status, {"type": type_, "title": type_.rsplit(":", 1)[-1],
                                    "status": status, "detail": detail}, **kwargs)

    @staticmethod
    def unsigned(status: int, body: bytes = b"<html>Bad Gateway</html>",
                 trickle: float | None = None) -> Script:
        def script(request: Request) -> Reply:
            return Reply(_response_bytes(status, {"Content-Type": "text/html"}, body),
                         trickle=trickle)
        return script

    @staticmethod
    def silent(request: Request) -> Reply:
        return Reply(None)

    def lookups(self, *, matched: bool = False, **kwargs: Any) -> Script:
        """A signed answer to POST /v1/lookups with one result per item asked."""
        def script(request: Request) -> Reply:
            items = request.json().get("items", []) if request.body else []
            return self.signed(200, {"results": [{"matched": matched} for _ in items]},
                               **kwargs)(request)
        return script

    # -- serving ----------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                number = self.connections
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn, number), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _next_script(self) -> Script:
        with self._lock:
            if self.script:
                return self.script.pop(0)
        assert self.default is not None
        return self.default

    def _serve(self, conn: socket.socket, number: int) -> None:
        reader = conn.makefile("rb")
        try:
            while not self._stop.is_set():
                request = _read_request(conn, reader, number, self._stop)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                reply = self._next_script()(request)
                if reply.data is None:  # silence: wait for the client to hang up
                    while not self._stop.is_set() and _still_open(conn):
                        pass
                    return
                if not _send(conn, reply, self._stop):
                    return
                if reply.close:
                    return
        finally:
            reader.close()
            conn.close()
            with self._lock:
                self.finished += 1
                self.finished_at.append(time.monotonic())


class _RequestView:
    """The request as protocol.sign_response reads it (method and URL only)."""

    def __init__(self, request: Request) -> None:
        self.method, self.url, self.headers = request.method, request.url, {}


class _OneKey(HTTPSignatureKeyResolver):
    def __init__(self, key: Any) -> None:
        self.key = key

    def resolve_private_key(self, key_id: str) -> Any:
        return self.key

    def resolve_public_key(self, key_id: str) -> Any:
        return self.key.public_key()


@dataclass
class _ResponseView:
    status_code: int
    headers: dict[str, str]
    request: _RequestView


def _sign_at(key: Any, key_id: str, status: int, headers: dict[str, str], body: bytes,
             request: Request, nonce: str | None, created: dt.datetime) -> None:
    """Sign as protocol.sign_response does, but with a ``created`` of our choosing."""
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_OneKey(key))
    signer.sign(_ResponseView(status, headers, _RequestView(request)), key_id=key_id,
                created=created, nonce=nonce, label=protocol.SIGNATURE_LABEL,
                covered_component_ids=("@status", "content-type", '"@method";req',
                                       '"@target-uri";req'), body=body)  # + content-digest


def _response_bytes(status: int, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} X"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _read_request(sock: socket.socket, reader: Any, number: int,
                  stop: threading.Event) -> Request | None:
    """The next request on a kept-alive connection (None once the client hangs up)."""
    while not _readable(sock):
        if stop.is_set():
            return None
    try:
        line = reader.readline(65536)
    except OSError:
        return None
    if not line:
        return None
    method, target, _ = line.decode().split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        header = reader.readline(65536)
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", "0") or 0))
    return Request(method, target, headers, body, number)


def _send(conn: socket.socket, reply: Reply, stop: threading.Event) -> bool:
    assert reply.data is not None
    try:
        if reply.trickle is None:
            conn.sendall(reply.data)
            return True
        for i in range(len(reply.data)):
            if stop.is_set():
                return False
            conn.sendall(reply.data[i:i + 1])
            time.sleep(reply.trickle)
        return True
    except OSError:  # the client hung up
        return False


def _readable(sock: socket.socket, wait: float = 0.1) -> bool:
    try:
        return bool(select.select([sock], [], [], wait)[0])
    except (OSError, ValueError):
        return True  # closed: let the read find out


def _still_open(conn: socket.socket) -> bool:
    if not _readable(conn):
        return True
    try:
        return conn.recv(1) != b""
    except OSError:
        return False
