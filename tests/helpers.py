"""Test helpers: a requests adapter that serves a Flask app in-process, and raw signing."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

import keys
from clue_client import protocol

BASE_URL = "http://clue.test"


@dataclass
class Creds:
    member_id: str
    signing_key: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        return keys.key_id(self.signing_key.public_key())


class WSGIAdapter(BaseAdapter):
    """Lets a real ``requests.Session`` (and so the real SDK) talk to an app in-process.

    ``captured`` keeps every request the SDK sent, byte for byte.
    """

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self.client = app.test_client()
        self.captured: list[requests.PreparedRequest] = []
        self.tamper: Callable[[requests.Response], None] | None = None

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        self.captured.append(request)
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        answer = self.client.open(request.path_url, base_url=BASE_URL, method=request.method,
                                  headers=dict(request.headers), data=body)
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(answer.headers.items())
        response._content = answer.get_data()
        response.url = request.url or ""
        response.request = request
        if self.tamper is not None:
            self.tamper(response)
        return response

    def close(self) -> None:
        pass


class AsyncWSGITransport(httpx.AsyncBaseTransport):
    """Lets a real ``httpx.AsyncClient`` (and so the real AsyncClueClient) talk to an app
    in-process; ``captured`` keeps every request, ``tamper`` may change an answer."""

    def __init__(self, app: Flask) -> None:
        self.client = app.test_client()
        self.captured: list[httpx.Request] = []
        self.tamper: Callable[[httpx.Response], httpx.Response] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.captured.append(request)
        answer = self.client.open(request.url.raw_path.decode("ascii"), base_url=BASE_URL,
                                  method=request.method, headers=dict(request.headers),
                                  data=body)
        response = httpx.Response(answer.status_code, headers=list(answer.headers.items()),
                                  content=answer.get_data(), request=request)
        return self.tamper(response) if self.tamper is not None else response


def signed(test_client: Any, creds: Creds, method: str, path: str, body: Any = None, *,
           raw: bytes | None = None, headers: dict[str, str] | None = None,
           created: dt.datetime | None = None, nonce: str | None = None,
           after_sign: Callable[[protocol.Message], None] | None = None,
           key: Ed25519PrivateKey | None = None) -> Any:
    """Send one hand-signed request through Flask's test client (for hostile cases)."""
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    message = protocol.Message(method=method, url=BASE_URL + path, headers=dict(headers or {}))
    if body is not None or raw is not None:
        message.headers.setdefault("Content-Type", "application/json")
    protocol.sign_request(message, data, key_id=creds.key_id,
                          private_key=key or creds.signing_key, nonce=nonce, created=created)
    if after_sign is not None:
        after_sign(message)
    return test_client.open(message.url[len(BASE_URL):], base_url=BASE_URL, method=message.method,
                            headers=message.headers, data=getattr(message, "body", data))
