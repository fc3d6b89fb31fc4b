"""The one error the QR parser raises."""

from __future__ import annotations

from clue_client.errors import ClueError

__all__ = ["MpmError"]


class MpmError(ClueError):
    """A QR payload is not a valid EMV merchant-presented code (or not a valid JPQR code).

    Attributes:
        code: a stable machine-readable reason, one of ``not_a_string``, ``too_long``,
            ``bad_char``, ``truncated``, ``bad_tag``, ``bad_length``, ``crc_not_last``,
            ``bad_crc_format``, ``crc_mismatch``, ``not_first``, ``duplicate_tag``,
            ``reserved_tag``, ``bad_template``, ``bad_format``, ``missing_field``,
            ``unexpected_field``; and from the JPQR view ``not_jpqr`` and
            ``bad_store_id``. Callers branch on this, never on the message.
        tag: the offending data object, ``"59"`` for a top-level ID or ``"26.01"`` for
            sub-ID 01 of template 26; ``None`` when no single tag is at fault.
        position: the index, in Unicode code points from the start of the payload, of
            the offending data object (or of the byte that broke it); ``None`` when the
            problem is something missing rather than something present.
        detail: the human-readable explanation without the code/tag/position suffix.

    The message (``str(error)``) names the code, the tag and the position.
    Values from the payload are shown with ``repr`` and are cut short, so a hostile
    payload cannot forge log lines.
    """

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        tag: str | None = None,
        position: int | None = None,
    ) -> None:
        self.code = code
        self.detail = detail
        self.tag = tag
        self.position = position
        where = []
        if tag is not None:
            where.append(f"tag {tag}")
        if position is not None:
            where.append(f"position {position}")
        suffix = f" ({', '.join(where)})" if where else ""
        super().__init__(f"{code}: {detail}{suffix}")

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the error picklable (multiprocessing, pytest-xdist) despite the
        # keyword-only constructor.
        return (_rebuild, (self.code, self.detail, self.tag, self.position))


def _rebuild(code: str, detail: str, tag: str | None, position: int | None) -> MpmError:
    return MpmError(code, detail, tag=tag, position=position)
