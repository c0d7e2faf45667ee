"""The PostgreSQL dialect: psycopg 3, migrations under an advisory lock, LIKE-narrowed search."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Self

import psycopg

from listener.query import Node as QueryNode
from listener.query import Phrase
from listener.storage.postgres import schema
from listener.storage.postgres._db import PgDatabase
from listener.storage.sql._base import SQLBase
from listener.storage.sql.search import Condition, joined, narrowed
from listener.textnorm import fold, without_accents


class PostgresBase(SQLBase):
    ENTRY_ERRORS = (psycopg.DataError, psycopg.IntegrityError, *SQLBase.ENTRY_ERRORS)
    PERIODS: ClassVar[dict[str, str]] = {
        "day": "substr({at}, 1, 10)",
        "week": "to_char(date_trunc('week', CAST(substr({at}, 1, 10) AS date)), 'YYYY-MM-DD')",
        "month": "substr({at}, 1, 7) || '-01'",
        "all": "'all'",
    }
    SKIP_LOCKED: ClassVar[str] = " FOR UPDATE OF {alias} SKIP LOCKED"

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Self:
        db = PgDatabase(url)
        if migrate:
            schema.apply(db)
        return cls(db)

    @contextmanager
    def _write(self) -> Iterator[None]:
        with self.db.transaction():
            yield

    def _insert_id(self, sql: str, params: Sequence[Any]) -> int | None:
        row = self.db.execute(sql + " RETURNING id", params).fetchone()
        return int(row[0]) if row else None

    def _insert_ids(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], key: str
    ) -> dict[Any, int]:
        # One statement for the lot: a round trip per mention was most of a fetch's cost.
        if not rows:
            return {}
        cur = self.db.insert_rows(table, columns, rows, f" RETURNING {key}, id")
        return {k: int(i) for k, i in cur.fetchall()}

    def finish_copy(self) -> None:
        # Rows were copied with their ids: new ones must come after them.
        for table in ("mentions", "fetch_runs", "alerts", "audit_log"):
            self.db.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            )

    @staticmethod
    def _concat(expression: str, separator: str) -> str:
        return f"string_agg({expression}, '{separator}')"

    def reusable(self) -> bool:
        raw = self.db.raw
        # IDLE: no transaction, and no result still streaming (that would be ACTIVE).
        return not raw.closed and not raw.broken and not self.db.in_transaction

    @staticmethod
    def _json_number(column: str, key: str) -> str:
        return f"({column}::json ->> '{key}')::double precision"

    def _batches(
        self, sql: str, params: dict[str, Any], size: int, *, jumping: bool = False
    ) -> Iterator[list[tuple[Any, ...]]]:
        return self.db.stream(sql, params, size)

    @staticmethod
    def _indexed(text: str) -> str:
        # Folded and without Latin accents, as queries are: substrings then match both ways.
        return without_accents(fold(text or ""))

    @staticmethod
    def _narrowing(node: QueryNode) -> Condition | None:
        return narrowed(node, _like_phrase)


_CONTAINS = "m.id IN (SELECT rowid FROM mentions_search WHERE title LIKE ? OR text LIKE ?)"


def _pattern(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{without_accents(fold(escaped))}%"


def _like_phrase(node: Phrase) -> Condition | None:
    """Every word of a phrase as a substring of the indexed title or text: a superset of what
    the phrase matches (prefixes, Arabic proclitics and unspaced scripts included)."""
    return joined([(_CONTAINS, [_pattern(w), _pattern(w)]) for w in node.words], "AND")
