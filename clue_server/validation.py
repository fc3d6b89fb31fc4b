"""Strict reading of JSON request bodies with errors that point at the field.

Written by hand rather than with a JSON-Schema validator: it is on the hot
path of every lookup, and the messages must name the item index and field in
words a member's engineer can act on.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from flask import Request

from clue_client.protocol import b64url
from clue_server.errors import BadRequest, InvalidJson, UnsupportedMediaType, ValidationFailed

TOKEN_LENGTH = 43  # base64url of 32 bytes, no padding
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def json_body(request: Request) -> Any:
    """The request's JSON body, read strictly (RFC 8259 as I-JSON, RFC 7493, asks).

    UTF-8 only: a byte order mark, UTF-16 and UTF-32 are refused rather than guessed
    (``json.loads`` on bytes would guess). No key twice in one object: with the last
    one winning, a body could mean one thing to a proxy or a log reader and another to
    us. No lone surrogate (``"\\ud800"``): it cannot be stored or echoed as UTF-8.
    No NaN or Infinity, no number too long to convert. Each refusal is a 400
    ``invalid-json`` problem. The checks cost tens of microseconds for a 100-item
    look-up (``tests/functional/test_input.py::test_strict_json_costs_microseconds``).
    """
    content_type = request.mimetype
    if content_type != "application/json":
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {content_type!r}")
    text = _utf8_text(request.get_data(cache=True))
    try:
        value = json.loads(text, parse_constant=_reject_constant,
                           object_pairs_hook=_object_without_repeats)
    except json.JSONDecodeError as exc:
        raise InvalidJson(f"the body is not valid JSON: {exc}") from exc
    except _RepeatedKey as exc:
        raise InvalidJson(f"the body repeats the key {_shown(str(exc))!r} in one object; "
                          "each key may appear once") from None
    except ValueError:
        # int() refuses more than sys.get_int_max_str_digits() (4,300) digits.
        raise InvalidJson("a number in the body has more digits than any field allows") from None
    except RecursionError as exc:
        raise InvalidJson("the body is nested too deeply") from exc
    # A lone surrogate can only arrive as a \uD800-\uDFFF escape (strict UTF-8
    # decoding refuses encoded ones), so look at the parsed values only when the text
    # holds such an escape at all: valid pairs (emoji written as escapes) are rare.
    if _SURROGATE_ESCAPE.search(text) is not None and _holds_lone_surrogate(value):
        raise InvalidJson("the body holds a lone UTF-16 surrogate escape (\\uD800 to "
                          "\\uDFFF without its pair); JSON text must be valid Unicode")
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _RepeatedKey(ValueError):
    pass


def _utf8_text(raw: bytes) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        raise InvalidJson("the body starts with a byte order mark; send UTF-8 JSON without "
                          "one (RFC 8259 section 8.1)")
    # JSON text starts with ASCII, so UTF-16 and UTF-32 show a NUL in the first 4 bytes.
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:4]:
        raise InvalidJson("the body is UTF-16 or UTF-32; JSON must be sent as UTF-8 "
                          "(RFC 8259 section 8.1)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJson(f"the body is not valid UTF-8 (byte {raw[exc.start]:#04x} at "
                          f"offset {exc.start})") from None


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return obj


def _holds_lone_surrogate(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _LONE_SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _reject_constant(name: str) -> None:
    raise json.JSONDecodeError(f"{name} is not allowed", name, 0)


def plausible_id(value: str, max_length: int) -> bool:
    """Whether ``value`` could be one of our ids (printable ASCII, bounded).

    Checked before any id from a URL reaches the database: PostgreSQL refuses a NUL in
    text outright, which would otherwise surface as a 500 instead of a 404.
    """
    return len(value) <= max_length and value.isascii() and value.isprintable()


def expect_object(value: Any, pointer: str, *, required: set[str],
                  optional: set[str] = frozenset()) -> Mapping[str, Any]:  # type: ignore[assignment]
    if not isinstance(value, dict):
        raise BadRequest(f"{pointer or '/'} must be a JSON object", pointer=pointer or "/")
    unknown = sorted(set(value) - required - optional)
    if unknown:
        names = ", ".join(_shown(name) for name in unknown[:5]) + (", ..." if unknown[5:] else "")
        raise BadRequest(f"{pointer or '/'} has unknown field(s): {names}",
                         pointer=f"{pointer}/{_shown(unknown[0])}")
    missing = sorted(required - set(value))
    if missing:
        raise BadRequest(f"{pointer or '/'} is missing field(s): {', '.join(missing)}",
                         pointer=f"{pointer}/{missing[0]}")
    return value


def expect_list(value: Any, pointer: str, *, max_items: int) -> list[Any]:
    if not isinstance(value, list):
        raise BadRequest(f"{pointer} must be an array", pointer=pointer)
    if not value:
        raise ValidationFailed(f"{pointer} must not be empty", pointer=pointer)
    if len(value) > max_items:
        raise ValidationFailed(f"{pointer} has {len(value)} items; at most {max_items} allowed",
                               pointer=pointer)
    return value


def item_error(pointer: str, index: int, field: str, reason: str, *,
               structural: bool = False) -> BadRequest | ValidationFailed:
    cls = BadRequest if structural else ValidationFailed
    field = _shown(field)
    return cls(f"item {index}: {field} {reason}", pointer=f"{pointer}/{index}/{field}",
               index=index, field=field, reason=reason)


def _shown(name: str, limit: int = 64) -> str:
    """A field name as echoed in an error: a hostile one is cut, never reflected whole,
    and what cannot be written as UTF-8 (a lone surrogate) is escaped."""
    cut = name if len(name) <= limit else name[:limit] + "..."
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")


def expect_str(item: Mapping[str, Any], field: str, pointer: str, index: int) -> str:
    value = item[field]
    if not isinstance(value, str):
        raise item_error(pointer, index, field, "must be a string", structural=True)
    return value


def expect_int(item: Mapping[str, Any], field: str, pointer: str, index: int, *, minimum: int,
               maximum: int) -> int:
    value = item[field]
    if type(value) is not int:
        raise item_error(pointer, index, field, "must be an integer", structural=True)
    if not minimum <= value <= maximum:
        raise item_error(pointer, index, field, f"must be between {minimum} and {maximum}")
    return value


def expect_choice(item: Mapping[str, Any], field: str, pointer: str, index: int,
                  choices: tuple[str, ...]) -> str:
    value = expect_str(item, field, pointer, index)
    if value not in choices:
        raise item_error(pointer, index, field,
                         f"{value[:40]!r} is not one of: {', '.join(choices)}")
    return value


# The one canonical spelling of 32 bytes in unpadded base64url: 42 characters, then one
# whose two low bits are zero (the 256 bits end 2 bits into the 43rd character).
_CANONICAL_TOKEN = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def token_or_none(value: Any) -> bytes | None:
    """A token in its one canonical spelling, decoded; None for anything else (the
    caller then lets ``expect_token`` say what is wrong)."""
    if type(value) is str and _CANONICAL_TOKEN.fullmatch(value):
        # binascii directly: urlsafe_b64decode re-checks and re-encodes its argument
        # twice, a third of a 1,000-item batch's decoding.
        return binascii.a2b_base64(value.encode().translate(_FROM_URLSAFE) + b"=")
    return None


def expect_token(item: Mapping[str, Any], field: str, pointer: str, index: int) -> bytes:
    token = token_or_none(item[field])
    if token is not None:  # on every item: one regex instead of the checks below
        return token
    value = expect_str(item, field, pointer, index)
    if len(value) != TOKEN_LENGTH:
        raise item_error(pointer, index, field,
                         f"must be {TOKEN_LENGTH} base64url characters (32 bytes), "
                         f"got {len(value)}")
    if not set(value) <= _B64URL:
        raise item_error(pointer, index, field, "must use the base64url alphabet, no padding")
    token = strict_b64url(value)
    if token is None:
        raise item_error(pointer, index, field, "is not canonical base64url")
    return token


def strict_b64url(value: str) -> bytes | None:
    """Decode unpadded base64url, or ``None`` unless ``value`` is its one canonical form.

    The standard decoder silently skips characters outside the alphabet and accepts
    padding and non-zero trailing bits; accepting those would give one value many
    spellings.
    """
    if not set(value) <= _B64URL or len(value) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if b64url(data) == value else None


#: A sealed note: 12-byte nonce + at most 1,000 bytes of text + 16-byte tag.
MAX_NOTE_BYTES = 12 + 1000 + 16


def expect_item(raw: Any, pointer: str, index: int, *, allowed: frozenset[str],
                required: tuple[str, ...]) -> Mapping[str, Any]:
    """An item of a token batch as an object with no unknown and every required field
    (structural errors, 400), checked in that order."""
    if not isinstance(raw, dict):
        raise item_error(pointer, index, "item", "must be an object", structural=True)
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise item_error(pointer, index, unknown[0], "is not a known field", structural=True)
    for field in required:
        if field not in raw:
            raise item_error(pointer, index, field, "is required", structural=True)
    return raw


def expect_tokens(item: Mapping[str, Any], pointer: str, index: int,
                  id_type: str) -> tuple[bytes, bytes | None]:
    """An item's ``token`` and, for an e-mail only, its optional ``folded_token``."""
    token = expect_token(item, "token", pointer, index)
    if "folded_token" not in item:
        return token, None
    if id_type != "email":
        raise item_error(pointer, index, "folded_token", "is only allowed for email")
    return token, expect_token(item, "folded_token", pointer, index)


def expect_note(item: Mapping[str, Any], pointer: str, index: int) -> bytes:
    """A client-sealed note: strict base64url of at most ``MAX_NOTE_BYTES`` bytes."""
    value = expect_str(item, "note", pointer, index)
    if len(value) > (MAX_NOTE_BYTES * 4 + 2) // 3:
        raise item_error(pointer, index, "note", f"must be base64url (no padding) of at most "
                         f"{MAX_NOTE_BYTES} bytes of ciphertext")
    data = strict_b64url(value)
    if data is None:
        raise item_error(pointer, index, "note", "is not canonical base64url (no padding)")
    if len(data) < 12 + 16:
        raise item_error(pointer, index, "note", "is not a sealed note (nonce, text, tag)")
    return data
