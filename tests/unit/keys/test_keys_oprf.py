"""The OPRF of private look-ups against published vectors, and its refusals.

Known answers: RFC 9497 appendix A.1.1 (ristretto255-SHA512, OPRF mode: DeriveKeyPair
and both test vectors), RFC 9380 appendix K.3 (expand_message_xmd with SHA-512, all ten
vectors) and RFC 9496 appendix A.2 (the encodings a ristretto255 decoder must refuse).
Properties (hypothesis): blind, evaluate and finalize give the server's direct PRF
evaluation; every malformed element is refused with the one opaque error.
"""

from __future__ import annotations

import hashlib
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keys
from keys import _oprf, _ristretto255

# -- RFC 9497 appendix A.1.1: OPRF(ristretto255, SHA-512), OPRF mode ------------------------

SEED = bytes.fromhex("a3" * 32)
KEY_INFO = bytes.fromhex("74657374206b6579")  # "test key"
SK_SM = bytes.fromhex("5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e")
BLIND = bytes.fromhex("64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706")
# (Input, BlindedElement, EvaluationElement, Output) of test vectors 1 and 2; both use BLIND.
RFC9497_VECTORS = [
    (
        "00",
        "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
        "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e",
        "527759c3d9366f277d8c6020418d96bb393ba2afb20ff90df23fb7708264e2f3"
        "ab9135e3bd69955851de4b1f9fe8a0973396719b7912ba9ee8aa7d0b5e24bcf6",
    ),
    (
        "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
        "b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25",
        "f4a74c9c592497375e796aa837e907b1a045d34306a749db9f34221f7e750cb4"
        "f2a6413a6bf6fa5e19ba6348eb673934a722a7ede2e7621306d18951e7cf2c73",
    ),
]
# The RFC's hash-to-group DST: "HashToGroup-" || contextString.
GROUP_DST_HEX = ("48617368546f47726f75702d4f50524656312d002d72697374726574746f3235352d"
                 "534841353132")


def test_context_string_and_dst_are_the_rfcs() -> None:
    assert _oprf.OPRF_CONTEXT == b"OPRFV1-\x00-ristretto255-SHA512"
    assert _oprf._HASH_TO_GROUP_DST.hex() == GROUP_DST_HEX


def test_derive_key_pair_gives_the_rfc_key() -> None:
    assert keys.OprfKey.derive(SEED, KEY_INFO).private_bytes() == SK_SM


@pytest.mark.parametrize(("input_hex", "blinded_hex", "evaluated_hex", "output_hex"),
                         RFC9497_VECTORS)
def test_rfc9497_vectors(input_hex: str, blinded_hex: str, evaluated_hex: str,
                         output_hex: str) -> None:
    key = keys.OprfKey.from_bytes(SK_SM)
    state = _oprf._blind_with(bytes.fromhex(input_hex), BLIND)
    assert state.blinded_element.hex() == blinded_hex
    evaluated = key.blind_evaluate(state.blinded_element)
    assert evaluated.hex() == evaluated_hex
    assert keys.oprf_finalize(state, evaluated).hex() == output_hex
    assert key.evaluate(bytes.fromhex(input_hex)).hex() == output_hex


def test_rfc9497_vectors_as_one_batch() -> None:
    key = keys.OprfKey.from_bytes(SK_SM)
    states = [_oprf._blind_with(bytes.fromhex(v[0]), BLIND) for v in RFC9497_VECTORS]
    evaluated = key.blind_evaluate_batch([s.blinded_element for s in states])
    assert [e.hex() for e in evaluated] == [v[2] for v in RFC9497_VECTORS]
    outputs = keys.oprf_finalize_batch(states, evaluated)
    assert [o.hex() for o in outputs] == [v[3] for v in RFC9497_VECTORS]


# -- RFC 9380 appendix K.3: expand_message_xmd(SHA-512) --------------------------------------

XMD_DST = b"QUUX-V01-CS02-with-expander-SHA512-256"
XMD_MESSAGES = [b"", b"abc", b"abcdef0123456789", b"q128_" + b"q" * 128, b"a512_" + b"a" * 512]
XMD_32 = [
    "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba",
    "0da749f12fbe5483eb066a5f595055679b976e93abe9be6f0f6318bce7aca8dc",
    "087e45a86e2939ee8b91100af1583c4938e0f5fc6c9db4b107b83346bc967f58",
    "7336234ee9983902440f6bc35b348352013becd88938d2afec44311caf8356b3",
    "57b5f7e766d5be68a6bfe1768e3c2b7f1228b3e4b3134956dd73a59b954c66f4",
]
XMD_128 = [
    "41b037d1734a5f8df225dd8c7de38f851efdb45c372887be655212d07251b921"
    "b052b62eaed99b46f72f2ef4cc96bfaf254ebbbec091e1a3b9e4fb5e5b619d2e"
    "0c5414800a1d882b62bb5cd1778f098b8eb6cb399d5d9d18f5d5842cf5d13d7e"
    "b00a7cff859b605da678b318bd0e65ebff70bec88c753b159a805d2c89c55961",
    "7f1dddd13c08b543f2e2037b14cefb255b44c83cc397c1786d975653e36a6b11"
    "bdd7732d8b38adb4a0edc26a0cef4bb45217135456e58fbca1703cd6032cb134"
    "7ee720b87972d63fbf232587043ed2901bce7f22610c0419751c065922b48843"
    "1851041310ad659e4b23520e1772ab29dcdeb2002222a363f0c2b1c972b3efe1",
    "3f721f208e6199fe903545abc26c837ce59ac6fa45733f1baaf0222f8b7acb04"
    "24814fcb5eecf6c1d38f06e9d0a6ccfbf85ae612ab8735dfdf9ce84c372a77c8"
    "f9e1c1e952c3a61b7567dd0693016af51d2745822663d0c2367e3f4f0bed827f"
    "eecc2aaf98c949b5ed0d35c3f1023d64ad1407924288d366ea159f46287e61ac",
    "b799b045a58c8d2b4334cf54b78260b45eec544f9f2fb5bd12fb603eaee70db7"
    "317bf807c406e26373922b7b8920fa29142703dd52bdf280084fb7ef69da78af"
    "df80b3586395b433dc66cde048a258e476a561e9deba7060af40adf30c64249c"
    "a7ddea79806ee5beb9a1422949471d267b21bc88e688e4014087a0b592b695ed",
    "05b0bfef265dcee87654372777b7c44177e2ae4c13a27f103340d9cd11c86cb2"
    "426ffcad5bd964080c2aee97f03be1ca18e30a1f14e27bc11ebbd650f305269c"
    "c9fb1db08bf90bfc79b42a952b46daf810359e7bc36452684784a64952c343c5"
    "2e5124cd1f71d474d5197fefc571a92929c9084ffe1112cf5eea5192ebff330b",
]


@pytest.mark.parametrize(("msg", "expected"), list(zip(XMD_MESSAGES, XMD_32, strict=True)))
def test_expand_message_xmd_32(msg: bytes, expected: str) -> None:
    assert _oprf.expand_message_xmd(msg, XMD_DST, 0x20).hex() == expected


@pytest.mark.parametrize(("msg", "expected"), list(zip(XMD_MESSAGES, XMD_128, strict=True)))
def test_expand_message_xmd_128(msg: bytes, expected: str) -> None:
    assert _oprf.expand_message_xmd(msg, XMD_DST, 0x80).hex() == expected


@pytest.mark.parametrize(("length", "dst"), [(0, XMD_DST), (64 * 255 + 1, XMD_DST),
                                             (32, b"x" * 256)])
def test_expand_message_xmd_refuses_what_it_does_not_support(length: int, dst: bytes) -> None:
    with pytest.raises(ValueError, match="out of range"):
        _oprf.expand_message_xmd(b"abc", dst, length)


# -- RFC 9496 appendix A.2: encodings a decoder must refuse ----------------------------------

BAD_ENCODINGS = [
    # non-canonical field encodings
    "00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "f3ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    # negative field elements
    "0100000000000000000000000000000000000000000000000000000000000000",
    "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "ed57ffd8c914fb201471d1c3d245ce3c746fcbe63a3679d51b6a516ebebe0e20",
    "c34c4e1826e5d403b78e246e88aa051c36ccf0aafebffe137d148a2bf9104562",
    "c940e5a4404157cfb1628b108db051a8d439e1a421394ec4ebccb9ec92a8ac78",
    "47cfc5497c53dc8e61c91d17fd626ffb1c49e2bca94eed052281b510b1117a24",
    "f1c6165d33367351b0da8f6e4511010c68174a03b6581212c71c0e1d026c3c72",
    "87260f7a2f12495118360f02c26a470f450dadf34a413d21042b43b9d93e1309",
    # non-square x^2
    "26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371",
    "4eac077a713c57b4f4397629a4145982c661f48044dd3f96427d40b147d9742f",
    "de6a7b00deadc788eb6b6c8d20c0ae96c2f2019078fa604fee5b87d6e989ad7b",
    "bcab477be20861e01e4a0e295284146a510150d9817763caf1a6f4b422d67042",
    "2a292df7e32cababbd9de088d1d1abec9fc0440f637ed2fba145094dc14bea08",
    "f4a9e534fc0d216c44b218fa0c42d99635a0127ee2e53c712f70609649fdff22",
    "8268436f8c4126196cf64b3c7ddbda90746a378625f9813dd9b8457077256731",
    "2810e5cbc2cc4d4eece54f61c6f69758e289aa7ab440b3cbeaa21995c2f4232b",
    # negative xy value
    "3eb858e78f5a7254d8c9731174a94f76755fd3941c0ac93735c07ba14579630e",
    "a45fdc55c76448c049a1ab33f17023edfb2be3581e9c7aade8a6125215e04220",
    "d483fe813c6ba647ebbfd3ec41adca1c6130c2beeee9d9bf065c8d151c5f396e",
    "8a2e1d30050198c65a54483123960ccc38aef6848e1ec8f5f780e8523769ba32",
    "32888462f8b486c68ad7dd9610be5192bbeaf3b443951ac1a8118419d9fa097b",
    "227142501b9d4355ccba290404bde41575b037693cef1f438c47f8fbf35d1165",
    "5c37cc491da847cfeb9281d407efc41e15144c876e0170b499a96a22ed31e01e",
    "445425117cb8c90edcbc7c1cc0e74f747f2c1efa5630a967c64f287792a48a4b",
    # s = -1, which causes y = 0
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]
IDENTITY = bytes(32)
OPAQUE = "invalid OPRF input, element or key"
# The group order L, little-endian: not a canonical scalar.
ORDER = bytes.fromhex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")


def _key() -> keys.OprfKey:
    return keys.OprfKey.from_bytes(SK_SM)


def _state() -> keys.OprfBlind:
    return keys.oprf_blind(b"some token")


@pytest.mark.parametrize("encoding", [*BAD_ENCODINGS, IDENTITY.hex()])
def test_server_refuses_bad_and_identity_elements_with_one_opaque_error(encoding: str) -> None:
    with pytest.raises(keys.OprfError) as caught:
        _key().blind_evaluate(bytes.fromhex(encoding))
    assert str(caught.value) == OPAQUE


@pytest.mark.parametrize("encoding", [*BAD_ENCODINGS, IDENTITY.hex()])
def test_client_refuses_bad_and_identity_elements_with_one_opaque_error(encoding: str) -> None:
    with pytest.raises(keys.OprfError) as caught:
        keys.oprf_finalize(_state(), bytes.fromhex(encoding))
    assert str(caught.value) == OPAQUE


@pytest.mark.parametrize("element", [b"", b"\x01" * 31, b"\x02" * 33, b"\xe2" * 64])
def test_wrong_lengths_are_the_same_opaque_error(element: bytes) -> None:
    with pytest.raises(keys.OprfError, match=OPAQUE):
        _key().blind_evaluate(element)
    with pytest.raises(keys.OprfError, match=OPAQUE):
        keys.oprf_finalize(_state(), element)


def test_one_bad_element_refuses_the_whole_batch() -> None:
    states = keys.oprf_blind_batch([b"a", b"b", b"c"])
    elements = [s.blinded_element for s in states]
    with pytest.raises(keys.OprfError):
        _key().blind_evaluate_batch([elements[0], IDENTITY, elements[2]])
    evaluated = _key().blind_evaluate_batch(elements)
    with pytest.raises(keys.OprfError):
        keys.oprf_finalize_batch(states, [evaluated[0], bytes.fromhex(BAD_ENCODINGS[0]),
                                          evaluated[2]])
    with pytest.raises(ValueError, match="one evaluated element"):
        keys.oprf_finalize_batch(states, evaluated[:2])
    assert keys.oprf_finalize_batch([], []) == []


@pytest.mark.parametrize("scalar", [IDENTITY, ORDER, b"\xff" * 32, b"\x01" * 31])
def test_zero_or_non_canonical_keys_are_refused(scalar: bytes) -> None:
    with pytest.raises(keys.OprfError, match=OPAQUE):
        keys.OprfKey.from_bytes(scalar)


def test_derive_refuses_a_seed_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        keys.OprfKey.derive(b"short", KEY_INFO)


def test_inputs_longer_than_the_length_field_are_refused() -> None:
    too_long = b"x" * 0x10000
    with pytest.raises(keys.OprfError):
        keys.oprf_blind(too_long)
    with pytest.raises(keys.OprfError):
        _key().evaluate(too_long)
    longest = b"x" * 0xFFFF
    state = keys.oprf_blind(longest)
    assert keys.oprf_finalize(state, _key().blind_evaluate(state.blinded_element)) \
        == _key().evaluate(longest)


def test_secrets_stay_out_of_reprs() -> None:
    key = _key()
    assert SK_SM.hex() not in repr(key) and repr(SK_SM) not in repr(key)
    state = _oprf._blind_with(b"secret-token-bytes", BLIND)
    text = repr(state)
    assert "secret-token-bytes" not in text and BLIND.hex() not in text
    assert repr(BLIND) not in text


def test_a_missing_libsodium_is_named_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    _ristretto255._sodium.cache_clear()
    monkeypatch.setitem(sys.modules, "pysodium", None)  # import pysodium -> ImportError
    try:
        with pytest.raises(_ristretto255.LibsodiumMissing, match="apt-get install libsodium23"):
            keys.oprf_blind(b"x")
    finally:
        _ristretto255._sodium.cache_clear()


# -- properties ------------------------------------------------------------------------------

INPUTS = st.binary(max_size=300)


@settings(max_examples=60, deadline=None)
@given(prf_input=INPUTS, seed=st.binary(min_size=32, max_size=32))
def test_blind_evaluate_finalize_is_the_prf(prf_input: bytes, seed: bytes) -> None:
    key = keys.OprfKey.derive(seed, b"clue test")
    state = keys.oprf_blind(prf_input)
    output = keys.oprf_finalize(state, key.blind_evaluate(state.blinded_element))
    assert output == key.evaluate(prf_input)
    assert len(output) == keys.OPRF_OUTPUT_BYTES


@settings(max_examples=25, deadline=None)
@given(prf_inputs=st.lists(INPUTS, min_size=1, max_size=6))
def test_batches_agree_with_one_at_a_time(prf_inputs: list[bytes]) -> None:
    key = _key()
    states = keys.oprf_blind_batch(prf_inputs)
    evaluated = key.blind_evaluate_batch([s.blinded_element for s in states])
    assert keys.oprf_finalize_batch(states, evaluated) == [key.evaluate(x) for x in prf_inputs]


@settings(max_examples=25, deadline=None)
@given(prf_input=INPUTS)
def test_blinding_hides_the_input(prf_input: bytes) -> None:
    # Two blindings of one input share nothing the server could link.
    first, second = keys.oprf_blind(prf_input), keys.oprf_blind(prf_input)
    assert first.blinded_element != second.blinded_element
    assert _ristretto255.is_valid_element(first.blinded_element)


@settings(max_examples=200, deadline=None)
@given(encoding=st.binary(min_size=32, max_size=32))
def test_any_32_bytes_evaluate_iff_they_encode_a_non_identity_element(encoding: bytes) -> None:
    valid = _ristretto255.is_valid_element(encoding) and encoding != IDENTITY
    try:
        evaluated = _key().blind_evaluate(encoding)
    except keys.OprfError as exc:
        assert not valid
        assert str(exc) == OPAQUE
    else:
        assert valid and _ristretto255.is_valid_element(evaluated)


@settings(max_examples=30, deadline=None)
@given(prf_input=INPUTS)
def test_different_keys_give_unrelated_outputs(prf_input: bytes) -> None:
    one, two = keys.OprfKey.generate(), keys.OprfKey.generate()
    assert one.evaluate(prf_input) != two.evaluate(prf_input)


def test_finalize_hash_layout() -> None:
    # RFC 9497 Finalize: I2OSP(len(input), 2) || input || I2OSP(32, 2) || element || "Finalize"
    element = bytes.fromhex(RFC9497_VECTORS[0][2])
    assert _oprf._finalize_hash(b"\x00", element) == hashlib.sha512(
        b"\x00\x01\x00" + b"\x00\x20" + element + b"Finalize").digest()
