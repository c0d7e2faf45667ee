"""Which backend serves a `database:` setting: a registry keyed by URL scheme, so a new
backend is one entry here and one package beside `sqlite/`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from listener.storage.errors import UnknownBackend
from listener.storage.types import Storage

Opener = Callable[[str, bool], Storage]


def _sqlite(target: str, migrate: bool) -> Storage:
    from listener.storage.sqlite import SQLiteStorage

    return SQLiteStorage.open(target, migrate=migrate)


# scheme -> opener of the rest; a plain path (no scheme) is a SQLite file.
BACKENDS: dict[str, Opener] = {"sqlite": _sqlite}


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
