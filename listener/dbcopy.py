"""`listener db copy SRC DST`: move a history from one database to another (a SQLite file into
PostgreSQL, typically), table by table in key order, one transaction per batch.

Interrupted, it resumes: each table continues after the last row the destination holds, and
rows already there are left as they are. Afterwards every table is verified: the same number of
rows and the same checksum over their values on both sides."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from listener.storage import Storage
from listener.storage.sql.copying import COPIED


@dataclass(frozen=True)
class TableCheck:
    table: str
    source_rows: int
    copied_rows: int
    same: bool


def _shared_columns(src: Storage, dst: Storage, table: str) -> list[str]:
    """The table's columns both databases have (a column a newer schema added is skipped)."""
    there = set(dst.copy_columns(table))
    return [c for c in src.copy_columns(table) if c in there]


def copy(
    src: Storage,
    dst: Storage,
    batch: int = 5000,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Rows stored in `dst` per table by this run (0 where it was already complete);
    progress(table, rows stored so far in all tables) after each batch."""
    stored: dict[str, int] = {}
    for table, key in COPIED:
        columns = _shared_columns(src, dst, table)
        at = [columns.index(k) for k in key]
        after = dst.last_key(table)
        stored[table] = 0
        while rows := src.rows_after(table, after, batch, columns):
            stored[table] += dst.put_rows(table, columns, rows)
            after = tuple(rows[-1][i] for i in at)
            if progress is not None:
                progress(table, sum(stored.values()))
    dst.finish_copy()
    return stored


def verify(src: Storage, dst: Storage) -> list[TableCheck]:
    """Each table's row count and checksum, compared on the columns both sides have."""
    checks = []
    for table, _ in COPIED:
        columns = _shared_columns(src, dst, table)
        (n, a), (m, b) = src.table_digest(table, columns), dst.table_digest(table, columns)
        checks.append(TableCheck(table, n, m, n == m and a == b))
    return checks
