"""docs/protocol.md: the qr_payee form and its worked example (§2, §14.2), byte for byte.

The page's example blocks are recomputed from the payload with the SDK's own code and,
for the token, by hand with hmac and hashlib, so the page cannot drift from the one
definition (clue_client.canonical.qr_payee).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from pathlib import Path

from clue_client import canonical, tokens
from clue_client.qr import parse_mpm, payees_of
from tests.unit.qr.test_qr_known_answers import JPQR_MERPAY

DOC = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"
TEXT = DOC.read_text(encoding="utf-8")
EX = dict(re.findall(r"<!-- example:([a-z0-9-]+) -->\n```[a-z]*\n(.*?)\n```", TEXT, re.DOTALL))


def test_the_worked_payload_is_the_published_sample() -> None:
    assert EX["qr-payload"] == JPQR_MERPAY


def test_payload_to_canonical_form() -> None:
    code = parse_mpm(EX["qr-payload"])
    template = code.template("29")
    assert template == (("00", "D15600000000"), ("05", "A93FO3230Q"))
    built = canonical.qr_payee(template[0][1], template[1:])
    assert built == EX["qr-payee-canonical"]
    assert f"{payees_of(code)[1][0]}|{payees_of(code)[1][1]}" == built
    assert canonical.canonicalize("qr_payee", built) == built
    assert "29300012D156000000000510A93FO3230Q" in EX["qr-payload"]


def test_canonical_form_to_token() -> None:
    network_key = bytes.fromhex(EX["network-key-hex"])
    message = b"clue/v1" + b"\x00" + b"qr_payee" + b"\x00" + EX["qr-payee-canonical"].encode()
    assert EX["qr-payee-hmac-input-hex"] == message.hex()
    by_hand = hmac.new(network_key, message, hashlib.sha256).digest()
    assert EX["qr-payee-token"] == base64.urlsafe_b64encode(by_hand).rstrip(b"=").decode()
    assert tokens.derive_token(network_key, "qr_payee", EX["qr-payee-canonical"]) == by_hand


def test_the_form_table_examples() -> None:
    # the qr_payee rows of the §2 examples table (pipes escaped for Markdown)
    rows = re.findall(r"^\| qr_payee \| `(.*?)` \| `(.*?)` \|$", TEXT, re.M)
    assert len(rows) == 3
    for written, expected in rows:
        written, expected = written.replace("\\|", "|"), expected.replace("\\|", "|")
        assert canonical.canonicalize("qr_payee", written) == expected
        assert canonical.canonicalize("qr_payee", expected) == expected
