"""Fixtures for the console tests: signed-in clients and test-sized Argon2id costs."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher

from clue_server.console import auth
from tests.functional.console_helpers import add_staff, login


class CountingHasher(PasswordHasher):
    """Argon2id with test-sized costs that counts verifications (each is 64 MiB for real)."""

    verifications = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        CountingHasher.verifications += 1
        return super().verify(hash, password)


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> type[CountingHasher]:
    """Argon2id still, but with test-sized costs (the defaults take ~1 s per hash here)."""
    hasher = CountingHasher(time_cost=1, memory_cost=1024, parallelism=1)
    dummy = hasher.hash("dummy")
    CountingHasher.verifications = 0
    monkeypatch.setattr(auth, "_hasher", lambda: hasher)
    monkeypatch.setattr(auth, "_dummy_hash", lambda: dummy)
    return CountingHasher


@pytest.fixture
def admin(app: Any) -> Any:
    add_staff(app, "alice", "admin")
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    return client


@pytest.fixture
def auditor(app: Any) -> Any:
    add_staff(app, "otto", "auditor")
    client = app.test_client()
    assert login(client, "otto").status_code == 302
    return client
