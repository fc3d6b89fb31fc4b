"""Fixtures for the keys tests: cheap Argon2 so sealing stays fast, a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import keys._sealing

CHEAP = keys.Argon2Params(t=1, m=8, p=1)


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys._sealing, "DEFAULT_KDF_PARAMS", CHEAP)


@pytest.fixture
def fixed_now() -> datetime:
    return datetime(2025, 4, 1, 9, 30, 15, 123456, tzinfo=UTC)
