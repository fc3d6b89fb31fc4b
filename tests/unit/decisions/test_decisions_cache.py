"""The look-up cache: TTL from storing (not from reading), LRU bound, nothing raw kept."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from clue_client.decisions.cache import LookupCache, request_key
from clue_client.models import LookupResult


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def result(id_type: str = "phone", value: str = "090-1234-5678") -> LookupResult:
    return LookupResult(id_type, True, "exact", ("card_theft",), 2,
                        dt.date(2025, 1, 1), dt.date(2025, 2, 1), value=value)


def test_an_entry_lives_exactly_ttl_seconds():
    clock = Clock()
    cache = LookupCache(ttl=30, clock=clock)
    cache.put("k", result())
    clock.now += 29.999
    assert cache.get("k") == result()
    clock.now += 0.001
    assert cache.get("k") is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_reading_never_extends_an_entry_past_its_ttl():
    # "cached entries never outlive a withdrawal by more than the TTL"
    clock = Clock()
    cache = LookupCache(ttl=10, clock=clock)
    cache.put("k", result())
    for _ in range(9):
        clock.now += 1
        assert cache.get("k") is not None
    clock.now += 1
    assert cache.get("k") is None


def test_storing_again_restarts_the_ttl():
    clock = Clock()
    cache = LookupCache(ttl=10, clock=clock)
    cache.put("k", result())
    clock.now += 8
    cache.put("k", result())
    clock.now += 8
    assert cache.get("k") is not None


def test_the_least_recently_used_entry_goes_first():
    cache = LookupCache(ttl=60, max_entries=3, clock=Clock())
    for key in "abc":
        cache.put(key, result())
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("d", result())
    assert cache.get("b") is None
    assert all(cache.get(k) is not None for k in "acd")
    assert len(cache) == 3


def test_size_stays_bounded():
    cache = LookupCache(ttl=60, max_entries=100, clock=Clock())
    for i in range(1000):
        cache.put(str(i), result())
    assert len(cache) == 100
    assert len(cache._entries) == len(cache._stored) == 100
    assert cache.get("999") is not None and cache.get("0") is None


def test_expired_entries_are_dropped_when_storing():
    clock = Clock()
    cache = LookupCache(ttl=5, max_entries=1000, clock=clock)
    for i in range(50):
        cache.put(str(i), result())
    clock.now += 5
    cache.put("new", result())
    assert list(cache._entries) == ["new"]


def test_the_raw_identifier_is_not_kept():
    cache = LookupCache(clock=Clock())
    cache.put("k", result(value="090-1234-5678"))
    stored = cache.get("k")
    assert stored is not None and stored.value == ""
    assert "090" not in repr(cache._entries) and "1234" not in repr(cache._entries)


def test_request_keys_are_digests_of_the_token_request():
    items = [{"type": "phone", "key_version": 1, "token": "abc"},
             {"type": "phone", "key_version": 2, "token": "def"}]
    key = request_key("member-key-1", items)
    assert len(key) == 64 and "abc" not in key
    assert request_key("member-key-1", list(items)) == key
    assert request_key("member-key-2", items) != key  # reported_by_me is per member
    assert request_key("member-key-1", items[:1]) != key  # a keyring change is a new key
    assert request_key("member-key-1", [{**items[0], "token": "abd"}, items[1]]) != key


def test_clear_and_validation():
    cache = LookupCache(clock=Clock())
    cache.put("k", result())
    cache.clear()
    assert cache.get("k") is None and len(cache) == 0
    with pytest.raises(ValueError, match="ttl"):
        LookupCache(ttl=0)
    with pytest.raises(ValueError, match="max_entries"):
        LookupCache(max_entries=0)


def test_concurrent_use_keeps_the_bound():
    cache = LookupCache(ttl=60, max_entries=50)

    def work(offset: int) -> None:
        for i in range(500):
            cache.put(f"{offset}-{i}", result())
            cache.get(f"{offset}-{i // 2}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache._entries) == len(cache._stored) <= 50
