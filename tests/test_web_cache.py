"""The dashboard's aggregate cache: once per key and period, also under concurrent requests."""

from __future__ import annotations

import threading
import time

from listener.web.cache import TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_fifty_concurrent_misses_compute_once():
    cache = TTLCache(30)
    calls = []
    start = threading.Barrier(50)
    results = []

    def slow_aggregate() -> int:
        calls.append(1)
        time.sleep(0.2)  # an aggregate query, long enough for all 50 requests to miss
        return 42

    def request() -> None:
        start.wait()
        results.append(cache.get(("sentiment", "Acme", 30), slow_aggregate))

    threads = [threading.Thread(target=request) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [42] * 50
    assert len(calls) == 1


def test_values_expire_and_stale_keys_are_dropped():
    clock = Clock()
    cache = TTLCache(30, clock=clock)
    assert cache.get("a", lambda: 1) == 1
    assert cache.get("a", lambda: 2) == 1  # fresh
    clock.now = 31
    assert cache.get("a", lambda: 3) == 3  # expired: recomputed
    for days in range(100):  # a different query string each time
        cache.get(("b", days), lambda: 0)
    clock.now = 62
    cache.get("c", lambda: 0)
    assert len(cache) == 1  # the hundred stale entries are gone


def test_a_value_computed_from_another_cached_value_on_the_same_stripe():
    cache = TTLCache(30, stripes=1)  # every key shares the one lock
    done = threading.Event()

    def outer():
        value = cache.get("overview", lambda: cache.get("model", lambda: 2) * 21)
        if value == 42:
            done.set()

    thread = threading.Thread(target=outer, daemon=True)
    thread.start()
    assert done.wait(10), "nested cache use deadlocked"
