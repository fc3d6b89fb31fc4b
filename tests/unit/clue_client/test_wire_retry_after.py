"""Retry-After is outside the response signature (BCM review G-2): the SDK takes the delay
from the signed problem body, and the header only when the body has none."""

from __future__ import annotations

from clue_client import _wire
from clue_client.errors import RateLimitedError, UnavailableError


def test_the_signed_body_wins_over_a_tampered_header() -> None:
    problem = {"type": "urn:clue:problem:quota-exceeded", "detail": "x", "retry_after": 120}
    error = _wire._problem(429, {"Retry-After": "999999"}, problem, None)
    assert isinstance(error, RateLimitedError) and error.retry_after == 120
    unavailable = _wire._problem(503, {"Retry-After": "3600"},
                                 {"type": "urn:clue:problem:unavailable", "retry_after": 1},
                                 None)
    assert isinstance(unavailable, UnavailableError) and unavailable.retry_after == 1


def test_without_a_signed_delay_the_header_is_used() -> None:
    error = _wire._problem(429, {"Retry-After": "30"}, {"type": "x", "detail": "y"}, None)
    assert isinstance(error, RateLimitedError) and error.retry_after == 30
    for hostile in (-5, True, "60", 10**9):
        error = _wire._problem(429, {"Retry-After": "7"}, {"retry_after": hostile}, None)
        assert error.retry_after == 7
