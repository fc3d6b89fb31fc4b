"""HTTP at its edges, through real gunicorn and raw sockets (issue 10 items 4 and 5):
every answer is a signed problem document, whatever the request target or Host looks
like, and a body over the limit is 413 however it is framed."""

from __future__ import annotations

import json
import socket

import pytest

from clue_client import protocol
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e


def _exchange(server: Server, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = server.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep and b"content-length:" in head.lower():
                length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:")))
                if len(body) >= length:
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, body


def _assert_signed(server: Server, status: int, headers: dict[str, str], body: bytes,
                   method: str, url: str) -> None:
    assert headers["Signature"].startswith("clue=:")
    # The signature verifies with the server key over the request as the server saw it.
    protocol.verify_response(status, headers, body, protocol.Message(method, url).as_request(),
                             public_key=server.keys.public_key,
                             key_id=server.keys.signing_key_id, nonce=None)


@pytest.mark.parametrize("target, host", [
    ("/v1/ping?a|b", None),
    ("/v1/server-key?a|b", None),
    ("/v1/ping", "clue_server"),
    ("/v1/server-key", "clue_server:8080"),
    ("/v1/ping?%zz", None),
])
def test_odd_targets_and_hosts_get_a_signed_answer(server: Server, target: str,
                                                   host: str | None) -> None:
    host = host or server.url.split("//")[1]
    status, headers, body = _exchange(server, (f"GET {target} HTTP/1.1\r\nHost: {host}\r\n"
                                               "Connection: close\r\n\r\n").encode())
    assert status != 500, body
    assert headers["Content-Type"].startswith("application/")
    json.loads(body)
    if target.startswith("/v1/ping"):
        assert status == 401 and json.loads(body)["type"] == "urn:clue:problem:unauthenticated"
    if "|" not in target and "%zz" not in target:
        _assert_signed(server, status, headers, body, "GET", f"http://{host}{target}")
    else:
        assert headers["Signature"].startswith("clue=:")


def test_an_absolute_form_target_is_its_own_target_uri(server: Server) -> None:
    url = server.url + "/v1/server-key"
    status, headers, body = _exchange(server, (f"GET {url} HTTP/1.1\r\nHost: ignored.example"
                                               "\r\nConnection: close\r\n\r\n").encode())
    assert status == 200
    _assert_signed(server, status, headers, body, "GET", url)


def test_a_chunked_body_over_the_limit_is_413_not_cut_and_processed(server: Server) -> None:
    creds = server.admit("Chunky Pay")
    host = server.url.split("//")[1]
    # A validly signed first MiB, then more: the signature covers only what the server
    # would have kept had it cut the stream at the limit.
    first = json.dumps({"items": [{"type": "phone", "key_version": 1, "token": "A" * 43}]
                        * 20000}, separators=(",", ":")).encode()[:1024 * 1024]
    assert len(first) == 1024 * 1024
    message = protocol.Message("POST", f"http://{host}/v1/lookups",
                               headers={"Content-Type": "application/json"})
    protocol.sign_request(message, first, key_id=creds.key_id, private_key=creds.signing_key)
    body = first + b" " * 4096
    chunks = b"".join(f"{len(body[i:i + 65536]):x}\r\n".encode() + body[i:i + 65536] + b"\r\n"
                      for i in range(0, len(body), 65536)) + b"0\r\n\r\n"
    head = "".join(f"{k}: {v}\r\n" for k, v in message.headers.items())
    status, headers, answer = _exchange(server, (
        f"POST /v1/lookups HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
        f"Connection: close\r\n{head}\r\n").encode() + chunks)
    assert status == 413, answer
    assert json.loads(answer)["type"] == "urn:clue:problem:payload-too-large"
    assert headers["Signature"].startswith("clue=:")


def test_a_chunked_body_within_the_limit_is_read_whole(server: Server) -> None:
    creds = server.admit("Small Chunks Pay")
    host = server.url.split("//")[1]
    body = json.dumps({"items": [{"type": "phone", "key_version": 1, "token": "A" * 43}]},
                      separators=(",", ":")).encode()
    message = protocol.Message("POST", f"http://{host}/v1/lookups",
                               headers={"Content-Type": "application/json"})
    protocol.sign_request(message, body, key_id=creds.key_id, private_key=creds.signing_key)
    chunks = b"".join(f"{len(body[i:i + 7]):x}\r\n".encode() + body[i:i + 7] + b"\r\n"
                      for i in range(0, len(body), 7)) + b"0\r\n\r\n"
    head = "".join(f"{k}: {v}\r\n" for k, v in message.headers.items())
    status, _, answer = _exchange(server, (
        f"POST /v1/lookups HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
        f"Connection: close\r\n{head}\r\n").encode() + chunks)
    assert status == 200, answer
    assert json.loads(answer)["results"][0]["matched"] is False
