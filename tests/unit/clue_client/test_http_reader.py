"""The sync transport's HTTP/1.1 answer reader, fed real bytes over a socket pair.

Framing it must get right (Content-Length, chunked with trailers, until close,
interim 1xx answers, keep-alive rules) and hostile answers it must refuse with a
clear error rather than hang, over-read or guess (conflicting lengths, bad chunk
sizes, endless headers, oversized bodies).
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from clue_client import _http
from clue_client._http import ProtocolError, _Connection


def _answer(raw: bytes, *, method: str = "GET", close: bool = True, deadline: float = 2.0,
            pace: float | None = None):
    client, server = socket.socketpair()

    def feed() -> None:
        try:
            if pace is None:
                server.sendall(raw)
            else:
                for i in range(len(raw)):
                    server.sendall(raw[i:i + 1])
                    time.sleep(pace)
        except OSError:
            pass
        if close:
            server.close()

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    connection = _Connection(client)
    connection.deadline = time.monotonic() + deadline
    try:
        return connection.read_answer(method)
    finally:
        connection.close()
        if not close:
            server.close()
        thread.join(timeout=5)


def test_content_length_and_keep_alive():
    answer, keep = _answer(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 11\r\nDate: x\r\n\r\n{\"a\": true}", close=False)
    assert (answer.status, answer.body, keep) == (200, b'{"a": true}', True)
    assert answer.headers["content-type"] == "application/json"


def test_connection_close_and_http_1_0():
    _, keep = _answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert keep is False
    _, keep = _answer(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert keep is False
    _, keep = _answer(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
                      close=False)
    assert keep is True


def test_chunked_with_extensions_and_trailers():
    answer, keep = _answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                           b"Content-Length: 999\r\n\r\n"
                           b"4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nX-Trailer: y\r\n\r\n", close=False)
    assert (answer.body, keep) == (b"abcdefg", True)
    assert "content-length" not in answer.headers  # Transfer-Encoding wins


def test_body_until_close_and_no_body_statuses():
    answer, keep = _answer(b"HTTP/1.1 200 OK\r\n\r\nall of it")
    assert (answer.body, keep) == (b"all of it", False)
    answer, _ = _answer(b"HTTP/1.1 204 No Content\r\n\r\n", close=False)
    assert answer.body == b""


def test_interim_answers_are_skipped():
    answer, _ = _answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n"
                        b"\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", close=False)
    assert (answer.status, answer.body) == (201, b"ok")
    assert "link" not in answer.headers


def test_repeated_headers_keep_the_first():
    answer, _ = _answer(b"HTTP/1.1 200 OK\r\nSignature: first\r\nsignature: second\r\n"
                        b"Content-Length: 0\r\n\r\n", close=False)
    assert answer.headers["signature"] == "first"


@pytest.mark.parametrize(("raw", "error"), [
    (b"HTTP/2 200 OK\r\n\r\n", "not an HTTP/1.1 status line"),
    (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.1 status line"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP/1.1 status line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
     "conflicting Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported Transfer-Encoding"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
     "chunk not followed by CRLF"),
    (b"HTTP/1.1 200 OK\r\n folded: header\r\n\r\n", "malformed header line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed mid-answer"),
    (b"", "closed before an answer"),
    (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "switched protocols"),
])
def test_hostile_or_broken_answers_are_refused(raw, error):
    with pytest.raises(ProtocolError, match=error):
        _answer(raw)


def test_endless_headers_and_oversized_bodies_are_refused(monkeypatch):
    with pytest.raises(ProtocolError, match="header section too long"):
        _answer(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\n\r\n")
    monkeypatch.setattr(_http, "MAX_ANSWER_BYTES", 100)
    with pytest.raises(ProtocolError, match="exceeds 100 bytes"):
        _answer(b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n")
    with pytest.raises(ProtocolError, match="exceeds 100 bytes"):
        _answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"64\r\n" + b"a" * 100 + b"\r\n1\r\nb\r\n0\r\n\r\n")
    with pytest.raises(ProtocolError, match="exceeds 100 bytes"):
        _answer(b"HTTP/1.1 200 OK\r\n\r\n" + b"a" * 200)


def test_a_trickle_ends_at_the_deadline_not_per_read():
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        _answer(raw, deadline=0.3, pace=0.02)  # each byte well within any per-read timeout
    assert 0.25 < time.monotonic() - started < 0.6
