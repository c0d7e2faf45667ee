"""Open stores kept for short jobs that come concurrently (web requests)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from listener.storage.registry import open_store
from listener.storage.types import Storage


class StorePool:
    """A job takes an open store and gives it back after, so a request does not pay for a
    connection: SQLite reads and parses the whole schema again on each new one, PostgreSQL
    authenticates. A store whose job failed, or that is left inside a transaction or a
    half-read result, is closed instead of reused. At most `keep` idle stores stay open;
    more are opened while more jobs run at once."""

    def __init__(self, url: str, keep: int = 8) -> None:
        self.url, self.keep = url, keep
        self._idle: list[Storage] = []
        self._lock = threading.Lock()

    @contextmanager
    def take(self) -> Iterator[Storage]:
        with self._lock:
            store = self._idle.pop() if self._idle else None
        if store is None:
            store = open_store(self.url, migrate=False)
        done = False
        try:
            yield store
            done = True
        finally:
            kept = False
            if done and store.reusable():
                with self._lock:
                    if len(self._idle) < self.keep:
                        self._idle.append(store)
                        kept = True
            if not kept:
                store.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for store in idle:
            store.close()
