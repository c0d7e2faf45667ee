"""The embedded default backend: one SQLite file through sqlite-utils."""

from __future__ import annotations

import sys

# sqlite-utils imports pandas whenever it is installed (Ray's data extra brings it) only to
# store pandas Timestamps as TEXT, which listener never hands it; that import was a third of a
# `collect --once` with nothing to do. A None in sys.modules makes its `import pandas` fail.
if "pandas" not in sys.modules and "sqlite_utils" not in sys.modules:
    sys.modules["pandas"] = None  # type: ignore[assignment]
    try:
        import sqlite_utils  # noqa: F401
    finally:
        del sys.modules["pandas"]

from listener.storage.sql import SQLStorage
from listener.storage.sql.mentions import content_key
from listener.storage.sqlite._base import SQLiteBase


class SQLiteStorage(SQLiteBase, SQLStorage):
    """Every storage concern over one SQLite file."""


__all__ = ["SQLiteStorage", "content_key"]
