"""gis.cache.Cache: least recently used goes first, values expire, a missing value is built once."""

from __future__ import annotations

import threading
import time

import pytest

from gis.cache import Cache, clear_all


def test_least_recently_used_is_evicted_first():
    cache: Cache[int] = Cache("t", size=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2


def test_values_expire_after_their_ttl(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    cache: Cache[str] = Cache("t", ttl=5.0)
    cache.put("own", "x")
    cache.put("never", "y", ttl=None)
    cache.put("short", "z", ttl=1.0)
    now[0] += 1.0
    assert cache.get("short") is None and cache.get("own") == "x"
    now[0] += 4.0
    assert cache.get("own") is None and cache.get("never") == "y"


def test_a_missing_value_is_built_once_for_concurrent_callers():
    cache: Cache[int] = Cache("t")
    calls = []
    gate = threading.Event()

    def make() -> int:
        calls.append(1)
        gate.wait(2.0)
        return 42

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_make("k", make))) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join()
    assert results == [42] * 8 and len(calls) == 1


def test_a_failed_build_stores_nothing_and_clear_all_forgets():
    cache: Cache[int] = Cache("t")

    def broken() -> int:
        raise ValueError("no")

    with pytest.raises(ValueError):
        cache.get_or_make("k", broken)
    assert cache.get_or_make("k", lambda: 7) == 7
    clear_all()
    assert cache.get("k") is None
