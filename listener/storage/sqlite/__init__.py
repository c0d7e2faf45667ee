"""The embedded default backend: one SQLite file through sqlite-utils."""

from __future__ import annotations

from listener.storage.sql import SQLStorage
from listener.storage.sql.mentions import content_key
from listener.storage.sqlite._base import SQLiteBase


class SQLiteStorage(SQLiteBase, SQLStorage):
    """Every storage concern over one SQLite file."""


__all__ = ["SQLiteStorage", "content_key"]
