"""A small time-to-live cache for the dashboard's aggregates, safe under concurrent requests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any


class TTLCache:
    """Values computed at most once per `ttl` seconds per key. Concurrent misses on one key
    wait for the first to compute instead of all computing it (a room of dashboards opening
    at once must not run the same aggregate query fifty times); expired entries are dropped
    as new ones arrive, so any number of distinct keys (query strings) cannot grow it."""

    def __init__(
        self, ttl: float, clock: Callable[[], float] = time.monotonic, stripes: int = 64
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self._values: dict[Hashable, tuple[float, Any]] = {}
        # Bounded, unlike per-key locks. Re-entrant: one aggregate may use another cached
        # value (the overview asks for the model key), and both keys can share a stripe.
        self._locks = [threading.RLock() for _ in range(stripes)]

    def _fresh(self, key: Hashable) -> tuple[bool, Any]:
        hit = self._values.get(key)
        if hit is not None and self.clock() - hit[0] < self.ttl:
            return True, hit[1]
        return False, None

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        fresh, value = self._fresh(key)
        if fresh:
            return value
        with self._locks[hash(key) % len(self._locks)]:
            fresh, value = self._fresh(key)  # computed while this request waited
            if fresh:
                return value
            value = compute()
            now = self.clock()
            for stale in [k for k, (t, _) in list(self._values.items()) if now - t >= self.ttl]:
                self._values.pop(stale, None)
            self._values[key] = (now, value)
            return value

    def __len__(self) -> int:
        return len(self._values)
