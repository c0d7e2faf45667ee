"""Which backend serves a `database:` setting: a registry keyed by URL scheme, so a new
backend is one entry here and one package beside `sqlite/`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from filelock import FileLock, Timeout

from listener.storage.errors import UnknownBackend
from listener.storage.types import Storage

Opener = Callable[[str, bool], Storage]


def _sqlite(target: str, migrate: bool) -> Storage:
    from listener.storage.sqlite import SQLiteStorage

    return SQLiteStorage.open(target, migrate=migrate)


def _postgresql(target: str, migrate: bool) -> Storage:
    try:
        from listener.storage.postgres import PostgresStorage
    except ImportError as exc:  # psycopg is an extra
        raise UnknownBackend(
            "database postgresql://… needs psycopg: pip install 'listener[postgresql]'"
        ) from exc
    return PostgresStorage.open(target, migrate=migrate)


# scheme -> opener of the rest; a plain path (no scheme) is a SQLite file.
BACKENDS: dict[str, Opener] = {
    "sqlite": _sqlite,
    "postgresql": _postgresql,
    "postgres": _postgresql,
}


def backend_of(database: str | Path) -> tuple[str, str]:
    """(scheme, what the backend opens): `sqlite:///data/l.db` and `data/l.db` are both
    ("sqlite", "data/l.db")."""
    text = str(database)
    scheme = urlsplit(text).scheme.lower()
    if isinstance(database, Path) or text == ":memory:" or len(scheme) <= 1 or "://" not in text:
        return "sqlite", text  # a path (a Windows drive letter is not a scheme)
    if scheme == "sqlite":
        return "sqlite", text.split("://", 1)[1].removeprefix("/") or ":memory:"
    return scheme, text


def open_store(database: str | Path, *, migrate: bool = True) -> Storage:
    """Open the storage a `database:` setting names, migrating it unless told not to."""
    scheme, target = backend_of(database)
    opener = BACKENDS.get(scheme)
    if opener is None:
        known = ", ".join(sorted(BACKENDS))
        raise UnknownBackend(
            f"database {scheme}://… : no storage backend for {scheme!r} (known: {known}, "
            "or a file path for SQLite)"
        )
    return opener(target, migrate)


def describe(database: str | Path) -> str:
    """The database for logs and messages: a URL without its password."""
    scheme, target = backend_of(database)
    if scheme == "sqlite":
        return target
    parts = urlsplit(target)
    if parts.password is None:
        return target
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class RunLock(Protocol):
    """Held by the one `listener run` scheduling a database."""

    def acquire(self, timeout: float) -> bool: ...
    def release(self) -> None: ...


class _FileRunLock:
    """SQLite: a lock file beside the database file."""

    def __init__(self, path: str) -> None:
        self._lock = FileLock(f"{path}.run.lock")

    def acquire(self, timeout: float) -> bool:
        try:
            self._lock.acquire(timeout=timeout)
        except Timeout:
            return False
        return True

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()


def scheduler_lock(database: str | Path) -> RunLock | None:
    """The lock that keeps one `listener run` per SQLite file (a second would wait on every
    write of the first); None for a server database, which takes many workers (leases keep
    them from doing the same work twice)."""
    scheme, target = backend_of(database)
    return _FileRunLock(target) if scheme == "sqlite" else None
