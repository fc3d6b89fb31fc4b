"""The floor the hot path is compared with: a bare Flask endpoint that does one Ed25519
verify, served by the same gunicorn settings as CLUE (``make bench`` starts it).

Each request carries ``X-Floor-Message`` and its Ed25519 ``X-Floor-Signature``
(base64url) under the key in ``BENCH_FLOOR_PUBLIC_HEX``; the answer is a small JSON
document. Nothing else: no database, no nonce, no response signature.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import Flask, request

app = Flask(__name__)
PUBLIC = Ed25519PublicKey.from_public_bytes(bytes.fromhex(os.environ["BENCH_FLOOR_PUBLIC_HEX"]))


@app.get("/floor")
def floor() -> tuple[dict[str, bool], int]:
    message = request.headers.get("X-Floor-Message", "").encode()
    signature = request.headers.get("X-Floor-Signature", "")
    try:
        PUBLIC.verify(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)), message)
    except (InvalidSignature, ValueError):
        return {"ok": False}, 401
    return {"ok": True}, 200
