"""Property tests: build/parse round trip, and a fuzz test that only MpmError escapes."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from clue_client.qr import (
    MAX_PAYLOAD_LENGTH,
    MpmCode,
    MpmError,
    build_mpm,
    crc16_ccitt_false,
    jpqr_view,
    parse_mpm,
    payee_key,
    payees_of,
)

# Any character a value may hold: everything but control characters and surrogates,
# so Japanese, emoji, combining marks and private-use characters all take part.
CHARS = st.characters(exclude_categories=("Cc", "Cs"))
ASCII_DIGITS = "0123456789"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

JPQR_EXAMPLE = (
    "0002016003xxx01021129300012D156000000000510A93FO3230Q31280012D15600000001030812345678"
    "26680019jp.or.paymentsjapan01130000000000001020400010306000001040600000153033925903xxx"
    "64180002JA0108メルペイ カフェ520441115802JP610710661436304DEE9"
)
# Example counts keep the whole qr suite well under 30 s; raise them locally to dig.
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def text(min_size: int = 1, max_size: int = 20) -> st.SearchStrategy[str]:
    return st.text(CHARS, min_size=min_size, max_size=max_size)


def digits(n: int) -> st.SearchStrategy[str]:
    return st.text(ASCII_DIGITS, min_size=n, max_size=n)


def encode(pairs: list[tuple[str, str]]) -> str:
    return "".join(f"{t}{len(v):02d}{v}" for t, v in pairs)


@st.composite
def template(draw: st.DrawFn, first: list[tuple[str, str]] | None = None) -> str:
    """An encoded template value: ``first`` sub-fields, then 0-3 others, at most 99 long."""
    pairs = list(first or [])
    taken = {t for t, _ in pairs}
    for sub_id in draw(st.lists(st.integers(0, 99), max_size=3, unique=True)):
        tag = f"{sub_id:02d}"
        if tag not in taken:
            taken.add(tag)
            pairs.append((tag, draw(text(max_size=15))))
    value = encode(pairs)
    assume(1 <= len(value) <= 99)
    return value


@st.composite
def amount(draw: st.DrawFn) -> str:
    whole = draw(st.text(ASCII_DIGITS, min_size=1, max_size=8))
    cents = draw(st.one_of(st.just(""), st.text(ASCII_DIGITS, min_size=1, max_size=2)))
    value = f"{whole}.{cents}" if cents else whole
    assume(any(c in "123456789" for c in value))
    return value


@st.composite
def mpm_codes(draw: st.DrawFn) -> MpmCode:
    """A valid MpmCode with its data objects (other than 00) in any order."""
    fields: dict[str, str] = {
        "52": draw(digits(4)),
        "53": draw(digits(3)),
        "58": draw(st.text(LETTERS[:26], min_size=2, max_size=2)),
        "59": draw(text(max_size=25)),
        "60": draw(text(max_size=15)),
    }
    for tag in draw(st.lists(st.integers(2, 25), max_size=2, unique=True)):
        fields[f"{tag:02d}"] = draw(text(max_size=30))
    guid_first = [("00", draw(text(max_size=20)))]
    for tag in draw(st.lists(st.integers(26, 51), min_size=1, max_size=3, unique=True)):
        fields[f"{tag:02d}"] = draw(template(guid_first))
    if draw(st.booleans()):
        fields["01"] = draw(st.sampled_from(["11", "12"]))
    if draw(st.booleans()):
        fields["54"] = draw(amount())
    tip = draw(st.sampled_from([None, "01", "02", "03"]))
    if tip is not None:
        fields["55"] = tip
        if tip == "02":
            fields["56"] = draw(amount())
        elif tip == "03":
            fields["57"] = draw(st.sampled_from(["0.01", "3", "3.00", "15.5", "99.99"]))
    if draw(st.booleans()):
        fields["61"] = draw(text(max_size=10))
    if draw(st.booleans()):
        fields["62"] = draw(template())
    if draw(st.booleans()):
        language = [
            ("00", draw(st.text(LETTERS, min_size=2, max_size=2))),
            ("01", draw(text(max_size=25))),
        ]
        fields["64"] = draw(template(language))
    for tag in draw(st.lists(st.integers(80, 99), max_size=2, unique=True)):
        fields[f"{tag:02d}"] = draw(template())
    ordered = draw(st.permutations(sorted(fields.items())))
    code = MpmCode(fields=(("00", "01"), *ordered))
    assume(sum(4 + len(v) for _, v in code.fields) + 8 <= MAX_PAYLOAD_LENGTH)
    return code


def _exercise(code: MpmCode) -> None:
    """Everything a caller may do with a parsed code must work without raising."""
    for name in dir(MpmCode):
        if not name.startswith("_") and isinstance(getattr(MpmCode, name), property):
            getattr(code, name)
    jpqr_view(code)
    payees_of(code)
    payee_key(code)
    assert parse_mpm(build_mpm(code)) == code


def _parse_or_mpm_error(payload: object) -> None:
    try:
        code = parse_mpm(payload)  # type: ignore[arg-type]
    except MpmError as err:
        assert err.code and isinstance(err.code, str)
        assert err.position is None or isinstance(err.position, int)
        return
    _exercise(code)


# --- round trip -----------------------------------------------------------------


@settings(SETTINGS, max_examples=120)
@given(mpm_codes())
def test_parse_of_build_is_identity(code: MpmCode) -> None:
    payload = build_mpm(code)
    assert len(payload) <= MAX_PAYLOAD_LENGTH
    assert parse_mpm(payload) == code
    assert build_mpm(parse_mpm(payload)) == payload
    # The CRC is written upper-case and read in any case.
    assert payload[-4:] == payload[-4:].upper()
    assert parse_mpm(payload[:-4] + payload[-4:].lower()) == code
    _exercise(code)


# --- fuzz: nothing but MpmError escapes ----------------------------------------


def finish(body: str) -> str:
    body += "6304"
    try:
        crc = crc16_ccitt_false(body.encode("utf-8"))
    except UnicodeEncodeError:
        return body + "0000"
    return f"{body}{crc:04X}"


@SETTINGS
@given(st.text(max_size=600))
@example("")
@example("6304")
@example("0002016304")
@example("00020163040000" * 40)
def test_random_text(payload: str) -> None:
    _parse_or_mpm_error(payload)


@SETTINGS
@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text()), st.floats()))
def test_non_strings(value: object) -> None:
    _parse_or_mpm_error(value)


@SETTINGS
@given(st.one_of(st.text(max_size=520), st.text(CHARS, max_size=520)))
def test_random_body_with_correct_crc(body: str) -> None:
    _parse_or_mpm_error(finish("000201" + body))


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.integers(0, 99).map(lambda n: f"{n:02d}"),
            st.one_of(st.text(CHARS, min_size=1, max_size=99), st.text(max_size=99)),
        ),
        max_size=12,
    )
)
def test_random_data_objects_with_correct_crc(pairs: list[tuple[str, str]]) -> None:
    # Well-framed data objects with arbitrary IDs and values reach the field checks.
    _parse_or_mpm_error(finish(encode([("00", "01"), *pairs])))


Mutation = tuple[str, int, str]
MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "insert", "delete"]),
        st.integers(0, 600),
        st.one_of(st.characters(), st.sampled_from(list("0123456789ABCDEF6304"))),
    ),
    min_size=1,
    max_size=4,
)


def mutate(payload: str, mutations: list[Mutation]) -> str:
    for kind, index, char in mutations:
        at = index % (len(payload) + 1)
        if kind == "insert":
            payload = payload[:at] + char + payload[at:]
        elif payload and kind == "flip":
            at %= len(payload)
            payload = payload[:at] + char + payload[at + 1 :]
        elif payload:
            at %= len(payload)
            payload = payload[:at] + payload[at + 1 :]
    return payload


@SETTINGS
@given(st.one_of(mpm_codes().map(build_mpm), st.just(JPQR_EXAMPLE)), MUTATIONS)
def test_mutated_valid_payloads(payload: str, mutations: list[Mutation]) -> None:
    _parse_or_mpm_error(mutate(payload, mutations))


@SETTINGS
@given(st.one_of(mpm_codes().map(build_mpm), st.just(JPQR_EXAMPLE)), MUTATIONS)
def test_mutated_valid_payloads_with_crc_recomputed(
    payload: str, mutations: list[Mutation]
) -> None:
    # Mutate everything before "6304" and fix the CRC, so the deeper checks are reached.
    _parse_or_mpm_error(finish(mutate(payload[:-8], mutations)))
