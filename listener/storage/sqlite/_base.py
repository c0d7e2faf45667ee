"""The SQLite connection, its write transactions, and the SQL that several concerns share."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from filelock import FileLock
from sqlite_utils import Database

from listener.storage.sqlite.schema import migrations
from listener.storage.types import LabelledMention

_CHUNK = 500  # stays under SQLite's bound-parameter limit


def chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def marks(n: int) -> str:
    """`?, ?, ?` for an IN list of n values."""
    return ",".join("?" * n)


# Queries by time join brands with CROSS JOIN: SQLite then walks mentions through the time
# index (newest first, or a window) instead of every mention of the brand, so an alert pass
# does not rescan history.
# The effective label: a human correction, else the model's label for this brand (when the
# mention names several), else the model's label for the mention.
LABEL = "coalesce(c.label, bs.label, s.label)"
LABEL_JOINS = (
    "LEFT JOIN scores s ON s.mention_id = m.id AND s.model = :model AND s.revision = :rev "
    "LEFT JOIN brand_scores bs ON bs.mention_id = m.id AND bs.brand = b.brand "
    "AND bs.model = :model AND bs.revision = :rev "
    "LEFT JOIN corrections c ON c.mention_id = m.id "
)
AT = "coalesce(m.published_at, m.fetched_at)"
# Mentions from news sources, left out where opinions are counted (the set is computed once
# per query: a handful of source ids).
NOT_NEWS = "m.source_id NOT IN (SELECT id FROM sources WHERE kind = 'news')"
LABELLED_COLUMNS = (
    f"m.id, {LABEL} AS label, {AT} AS at, m.url, m.title, m.text, m.source_id, m.author, "
    "m.rating, m.reach"
)


def labelled(r: dict[str, Any]) -> LabelledMention:
    return LabelledMention(
        r["id"],
        r["label"],
        r["at"],
        r["url"],
        r["title"] or "",
        r["text"] or "",
        r["source_id"],
        r["author"],
        r["rating"],
        r["reach"],
    )


class SQLiteBase:
    """One connection to one SQLite file (or :memory:)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def open(cls, path: str | Path, *, migrate: bool = True) -> Self:
        """Open (creating if needed) and migrate. Never share one between concurrent jobs:
        open one per job or request."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One store is used by one job or request at a time, but a web request may hop between
        # worker threads (FastAPI runs dependencies and handlers on a pool).
        db = Database(sqlite3.connect(str(path), check_same_thread=False))
        db.execute("PRAGMA busy_timeout = 30000")  # wait for a reader/writer instead of failing
        db.execute("PRAGMA foreign_keys = ON")
        if migrate:
            if str(path) == ":memory:":
                migrations.apply(db)
            else:
                # Processes starting together on a fresh file would each see every migration
                # pending and race to apply it ("table already exists", "database is locked"):
                # one at a time, and the later ones find nothing left to do.
                with FileLock(f"{path}.migrate.lock", timeout=300):
                    db.enable_wal()  # persistent: recorded in the file
                    migrations.apply(db)
        return cls(db)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        """A write transaction that takes the write lock up front (BEGIN IMMEDIATE).

        A deferred BEGIN that reads and then writes cannot wait for another writer: SQLite
        answers "database is locked" at once instead of using the busy timeout."""
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():  # nested: a savepoint
                yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _insert_id(self, sql: str, params: Sequence[Any]) -> int | None:
        """Run an INSERT; the new row's id, or None when ON CONFLICT DO NOTHING skipped it."""
        cur = self.db.execute(sql, params)
        return cur.lastrowid if cur.rowcount == 1 else None

    @staticmethod
    def _concat(expression: str, separator: str) -> str:
        """An aggregate joining a group's values into one text (SQL, for a SELECT)."""
        return f"group_concat({expression}, '{separator}')"

    def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
        return next(self.db.query(sql, params), None)
