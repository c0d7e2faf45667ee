"""One scheduler per PostgreSQL database: a session advisory lock on a connection of its own,
released when it is let go or its process dies (the server ends the session)."""

from __future__ import annotations

import time

import psycopg

_RUN_LOCK = 7_310_018  # pg_try_advisory_lock key: `listener run`


class AdvisoryRunLock:
    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.Connection[tuple[bool]] | None = None

    def acquire(self, timeout: float) -> bool:
        if self._conn is None:
            self._conn = psycopg.connect(self._url, autocommit=True)
        deadline = time.monotonic() + timeout
        while True:
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", [_RUN_LOCK]).fetchone()
            if row and row[0]:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()  # ends the session, and with it the lock
            self._conn = None
