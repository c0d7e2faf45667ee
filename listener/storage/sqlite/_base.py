"""The SQLite dialect: one file through sqlite-utils, migrated at open."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Self

from filelock import FileLock
from sqlite_utils import Database

from listener.query import Node as QueryNode
from listener.storage.sql._base import SQLBase
from listener.storage.sql.search import Condition, narrowed
from listener.storage.sqlite.fts import fts_phrase
from listener.storage.sqlite.schema import migrations

MAP_BYTES = 1 << 40  # SQLite caps it at its compile-time maximum (2 GB by default)


class SQLiteBase(SQLBase):
    """One connection to one SQLite file (or :memory:)."""

    ENTRY_ERRORS = (
        sqlite3.IntegrityError,
        sqlite3.InterfaceError,
        sqlite3.ProgrammingError,
        sqlite3.DataError,
        *SQLBase.ENTRY_ERRORS,
    )
    PERIODS: ClassVar[dict[str, str]] = {
        "day": "strftime('%Y-%m-%d', {at})",
        "week": "date({at}, '-6 days', 'weekday 1')",
        "month": "strftime('%Y-%m-01', {at})",
        "all": "'all'",  # one row per dimension over the whole range
    }

    def __init__(self, db: Database) -> None:
        self.db = db
        self._streaming = 0  # exports being read

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
        cur = self.db.execute(sql, params)
        return cur.lastrowid if cur.rowcount == 1 else None

    @staticmethod
    def _concat(expression: str, separator: str) -> str:
        return f"group_concat({expression}, '{separator}')"

    @staticmethod
    def _json_number(column: str, key: str) -> str:
        return f"json_extract({column}, '$.{key}')"

    def _batches(
        self, sql: str, params: dict[str, Any], size: int, *, jumping: bool = False
    ) -> Iterator[list[tuple[Any, ...]]]:
        # A long read in an order other than the rows' (`jumping`: an export in time order)
        # reads pages all over the file: through a memory map each is a memory read, not a
        # read() call into a 2 MB page cache (measured: half the time of a 1M-row export).
        # Only then: mapped pages count in the process's resident memory while it reads.
        if jumping:
            self.db.execute(f"PRAGMA mmap_size = {MAP_BYTES}")
        cursor = self.db.execute(sql, params)
        self._streaming += 1
        try:
            while batch := cursor.fetchmany(size):
                yield batch
        finally:  # also when the reader stops early: no statement left holding a snapshot
            self._streaming -= 1
            cursor.close()
            if jumping:
                self.db.execute("PRAGMA mmap_size = 0")

    def reusable(self) -> bool:
        # A statement still being read holds its read snapshot: Python cannot ask SQLite
        # whether one is, so the one long read there is (an export) is counted.
        try:
            return not self.db.conn.in_transaction and not self._streaming
        except sqlite3.ProgrammingError:  # closed
            return False

    @staticmethod
    def _narrowing(node: QueryNode) -> Condition | None:
        return narrowed(node, fts_phrase)
