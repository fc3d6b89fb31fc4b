"""RFC 9180 Appendix A.1.1 known-answer test: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
AES-128-GCM, mode_base -- the suite ``keys.wrap`` uses.

Values copied from RFC 9180 (draft-irtf-cfrg-hpke, "Base Setup Information" and its first
encryption, sequence number 0). The key schedule is also recomputed here from the RFC's
definitions with plain HMAC/HKDF, independently of pyhpke.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

import keys
from keys import _hpke

MODE_BASE = 0x00
KEM_ID = 0x0020
KDF_ID = 0x0001
AEAD_ID = 0x0001

INFO = bytes.fromhex("4f6465206f6e2061204772656369616e2055726e")  # "Ode on a Grecian Urn"
IKM_E = bytes.fromhex("7268600d403fce431561aef583ee1613527cff655c1343f29812e66706df3234")
PK_EM = bytes.fromhex("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431")
SK_EM = bytes.fromhex("52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736")
IKM_R = bytes.fromhex("6db9df30aa07dd42ee5e8181afdb977e538f5e1fec8a06223f33f7013e525037")
PK_RM = bytes.fromhex("3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d")
SK_RM = bytes.fromhex("4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8")
ENC = bytes.fromhex("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431")
SHARED_SECRET = bytes.fromhex("fe0e18c9f024ce43799ae393c7e8fe8fce9d218875e8227b0187c04e7d2ea1fc")
KEY_SCHEDULE_CONTEXT = bytes.fromhex(
    "00725611c9d98c07c03f60095cd32d400d8347d45ed67097bbad50fc56da742d07"
    "cb6cffde367bb0565ba28bb02c90744a20f5ef37f30523526106f637abb05449"
)
SECRET = bytes.fromhex("12fff91991e93b48de37e7daddb52981084bd8aa64289c3788471d9a9712f397")
KEY = bytes.fromhex("4531685d41d65f03dc48f6b8302c05b0")
BASE_NONCE = bytes.fromhex("56d890e5accaaf011cff4b7d")
EXPORTER_SECRET = bytes.fromhex("45ff1c2e220db587171952c0592d5f5ebe103f1561a2614e38f2ffd47e99e3f8")
# Encryption, sequence number 0
PT = bytes.fromhex("4265617574792069732074727574682c20747275746820626561757479")
AAD = bytes.fromhex("436f756e742d30")  # "Count-0"
NONCE_0 = bytes.fromhex("56d890e5accaaf011cff4b7d")
CT = bytes.fromhex(
    "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a9"
    "6d8770ac83d07bea87e13c512a"
)

HPKE_SUITE_ID = b"HPKE" + KEM_ID.to_bytes(2, "big") + KDF_ID.to_bytes(2, "big") + \
    AEAD_ID.to_bytes(2, "big")
KEM_SUITE_ID = b"KEM" + KEM_ID.to_bytes(2, "big")


def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    # HKDF-Extract with an empty salt equals HMAC with an empty key (zero padded).
    return hmac.new(salt, b"HPKE-v1" + suite_id + label + ikm, hashlib.sha256).digest()


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled_info = length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info
    return HKDFExpand(hashes.SHA256(), length, labeled_info).derive(prk)


def test_derive_key_pairs() -> None:
    kem = _hpke._SUITE.kem
    ephemeral = kem.derive_key_pair(IKM_E)
    recipient = kem.derive_key_pair(IKM_R)
    assert ephemeral.private_key.to_private_bytes() == SK_EM
    assert ephemeral.public_key.to_public_bytes() == PK_EM
    assert recipient.private_key.to_private_bytes() == SK_RM
    assert recipient.public_key.to_public_bytes() == PK_RM
    assert X25519PrivateKey.from_private_bytes(SK_RM).public_key().public_bytes_raw() == PK_RM


def test_encap_decap_shared_secret() -> None:
    kem = _hpke._SUITE.kem
    ephemeral = kem.derive_key_pair(IKM_E)
    recipient = kem.derive_key_pair(IKM_R)
    shared_secret, enc = kem.encap(recipient.public_key, eks=ephemeral)
    assert enc == ENC
    assert shared_secret == SHARED_SECRET
    assert kem.decap(ENC, recipient.private_key) == SHARED_SECRET


def test_shared_secret_from_first_principles() -> None:
    dh = X25519PrivateKey.from_private_bytes(SK_EM).exchange(
        X25519PublicKey.from_public_bytes(PK_RM))
    eae_prk = labeled_extract(KEM_SUITE_ID, b"", b"eae_prk", dh)
    assert labeled_expand(KEM_SUITE_ID, eae_prk, b"shared_secret", ENC + PK_RM, 32) == \
        SHARED_SECRET


def test_key_schedule_from_first_principles() -> None:
    psk_id_hash = labeled_extract(HPKE_SUITE_ID, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(HPKE_SUITE_ID, b"", b"info_hash", INFO)
    context = bytes([MODE_BASE]) + psk_id_hash + info_hash
    assert context == KEY_SCHEDULE_CONTEXT
    secret = labeled_extract(HPKE_SUITE_ID, SHARED_SECRET, b"secret", b"")
    assert secret == SECRET
    assert labeled_expand(HPKE_SUITE_ID, secret, b"key", context, 16) == KEY
    assert labeled_expand(HPKE_SUITE_ID, secret, b"base_nonce", context, 12) == BASE_NONCE
    assert labeled_expand(HPKE_SUITE_ID, secret, b"exp", context, 32) == EXPORTER_SECRET


def test_first_encryption() -> None:
    assert NONCE_0 == BASE_NONCE  # sequence number 0: nonce = base_nonce XOR 0
    assert AESGCM(KEY).encrypt(NONCE_0, PT, AAD) == CT


def test_wrap_reproduces_vector() -> None:
    """``keys.wrap``'s code path, with the RFC's ephemeral key, gives enc || ct exactly."""
    ephemeral = _hpke._SUITE.kem.derive_key_pair(IKM_E)
    recipient = X25519PublicKey.from_public_bytes(PK_RM)
    envelope = _hpke._seal(recipient, PT, INFO, AAD, ephemeral)
    assert envelope == ENC + CT


def test_unwrap_vector() -> None:
    recipient = X25519PrivateKey.from_private_bytes(SK_RM)
    assert keys.unwrap(recipient, ENC + CT, info=INFO, aad=AAD) == PT
