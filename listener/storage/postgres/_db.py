"""A thin psycopg 3 connection with the small part of sqlite-utils' API the storage mixins use,
so the SQL that is the same on both databases is written once.

Placeholders are written SQLite's way (`?`, `:name`) and rewritten to psycopg's; values are
bound on the client (psycopg's ClientCursor), so `:x IS NULL` needs no type cast."""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import Any, cast

import psycopg

# Each table's primary key, for update() and upsert().
PKS: dict[str, tuple[str, ...]] = {
    "sources": ("id",),
    "mentions": ("id",),
    "fetch_runs": ("id",),
    "alerts": ("id",),
    "mention_brands": ("mention_id", "brand"),
    "scores": ("mention_id", "model", "revision"),
    "brand_scores": ("mention_id", "brand", "model", "revision"),
    "score_failures": ("mention_id", "model", "revision"),
    "deliveries": ("alert_id", "channel"),
    "corrections": ("mention_id",),
    "inbox": ("mention_id",),
    "audit_log": ("id",),
    "replies": ("mention_id",),
}


_CROSS_JOIN_ON = re.compile(r"\bCROSS JOIN (\w+ \w+) ON\b")


def _plain_joins(sql: str) -> str:
    """SQLite's join-order hint (CROSS JOIN ... ON) is a syntax error here: a plain join."""
    return _CROSS_JOIN_ON.sub(r"JOIN \1 ON", sql)


@lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """`?` -> `%s`, `:name` -> `%(name)s`, `%` -> `%%`, outside quoted text and `::` casts."""
    sql = _plain_joins(sql)
    out: list[str] = []
    i, n, quote = 0, len(sql), ""
    while i < n:
        c = sql[i]
        if quote:
            out.append("%%" if c == "%" else c)
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
            out.append(c)
        elif c == "?":
            out.append("%s")
        elif c == "%":
            out.append("%%")
        elif c == ":" and i + 1 < n and sql[i + 1] == ":":
            out.append("::")
            i += 1
        elif c == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            out.append(f"%({sql[i + 1 : j]})s")
            i = j
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


# INSERT INTO t (a, b) VALUES (?, ?) [ON CONFLICT ... DO NOTHING]: many rows in one statement.
# Not DO UPDATE: one statement may not update a row twice, which a batch with repeats would.
_INSERT_VALUES = re.compile(
    r"^\s*INSERT\s+INTO\s+(\w+)\s*\(([\w\s,]+)\)\s*VALUES\s*\((?:\s*\?\s*,)*\s*\?\s*\)"
    r"(\s*(?:ON\s+CONFLICT\b[^;]*?\bDO\s+NOTHING)?\s*)$",
    re.S | re.I,
)


def _as_text(value: Any) -> str | None:
    """A value as PostgreSQL reads it back from text (a bool as 1/0: valid for int and bool)."""
    if value is None or isinstance(value, str):
        return value
    return str(int(value)) if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class Many:
    """What executemany reports when it sent multi-row statements: rows written."""

    rowcount: int


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PgDatabase:
    """One autocommit connection: a statement outside `transaction()` commits at once."""

    def __init__(self, url: str) -> None:
        self.raw = psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor)
        self._types: dict[str, dict[str, str]] = {}

    @property
    def conn(self) -> PgDatabase:  # the mixins call db.conn.execute/executemany too
        return self

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def transaction(self) -> AbstractContextManager[Any]:
        """A transaction, or a savepoint inside one."""
        return self.raw.transaction()

    atomic = transaction

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> psycopg.Cursor[Any]:
        cur = self.raw.cursor()
        if params:
            cur.execute(translate(sql), params)
        else:  # nothing to bind: sent as written (bytes), so a literal % stays one
            cur.execute(_plain_joins(sql).encode())
        return cur

    def executemany(
        self, sql: str, params: Iterable[Sequence[Any] | dict[str, Any]]
    ) -> psycopg.Cursor[Any] | Many:
        rows = list(params)
        insert = _INSERT_VALUES.match(sql)
        if rows and insert and not isinstance(rows[0], dict):
            table, columns, tail = insert.groups()
            names = [c.strip() for c in columns.split(",")]
            cur = self.insert_rows(table, names, cast(list[Sequence[Any]], rows), tail)
            return Many(max(cur.rowcount, 0))
        cur = self.raw.cursor()
        if rows:
            cur.executemany(translate(sql), rows)
        return cur

    def insert_rows(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        tail: str = "",
    ) -> psycopg.Cursor[Any]:
        """INSERT many rows as one statement over arrays, one per column (`unnest`): one round
        trip and one short statement for thousands of rows, where executemany sends a
        statement per row. `tail`: ON CONFLICT ... and/or RETURNING ..., written as for
        execute(). The cursor holds what RETURNING returned."""
        types = self._column_types(table)
        # Every array goes as text[] and is cast to the column's type by the server: one list
        # may mix ints and floats (a rating), which psycopg will not put in one array.
        arrays = [[_as_text(v) for v in column] for column in zip(*rows, strict=True)]
        casts = ", ".join(
            "%s::text[]" + ("" if types[c] == "text" else f"::{types[c]}[]") for c in columns
        )
        cur = self.raw.cursor()
        cur.execute(
            f"INSERT INTO {_quoted(table)} ({', '.join(map(_quoted, columns))}) "
            f"SELECT * FROM unnest({casts}){translate(tail)}",
            arrays,
        )
        return cur

    def _column_types(self, table: str) -> dict[str, str]:
        if table not in self._types:
            self._types[table] = {
                name: kind
                for name, kind in self.raw.execute(
                    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                    [table],
                )
            }
        return self._types[table]

    def stream(
        self, sql: str, params: dict[str, Any], size: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Rows in lists of up to `size`, streamed from the server as they are consumed: a
        plain cursor would hold every row of the result in this process first. Until the
        last row is read, the connection serves nothing else."""
        chunk = size if psycopg.pq.version() >= 170000 else 1  # chunked reads need libpq 17
        rows = cast(
            Generator[Any, None, None],
            self.raw.cursor().stream(translate(sql), params, size=chunk),
        )
        try:
            while batch := list(islice(rows, size)):
                yield batch
        finally:  # stopped early (a download cut off): psycopg ends the query on close
            rows.close()

    def query(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> Iterator[dict[str, Any]]:
        cur = self.execute(sql, params)
        names = [d.name for d in cur.description or ()]
        for values in cur:
            yield dict(zip(names, values, strict=True))

    def __getitem__(self, name: str) -> PgTable:
        return PgTable(self, name)

    def close(self) -> None:
        self.raw.close()


class PgTable:
    def __init__(self, db: PgDatabase, name: str) -> None:
        self.db, self.name, self.pk = db, name, PKS.get(name, ("id",))

    def insert(self, record: dict[str, Any]) -> None:
        self.insert_all([record])

    def _insert_many(
        self,
        records: Iterable[dict[str, Any]],
        suffix: Callable[[tuple[str, ...]], str],
        keys: tuple[str, ...] = (),
    ) -> None:
        """One statement per set of columns (PgDatabase.insert_rows), not one per row. With
        `keys` (an upsert), a key given twice keeps its last row, as row-by-row upserts would:
        one statement may not update a row twice."""
        batches: dict[tuple[str, ...], dict[Any, list[Any]]] = {}
        for n, r in enumerate(records):
            cols = tuple(r)
            key = tuple(r[k] for k in keys) if keys and all(k in r for k in keys) else n
            batches.setdefault(cols, {})[key] = list(r.values())
        for cols, rows in batches.items():
            self.db.insert_rows(self.name, cols, list(rows.values()), suffix(cols))

    def insert_all(self, records: Iterable[dict[str, Any]]) -> None:
        self._insert_many(records, lambda cols: "")

    def upsert(self, record: dict[str, Any], pk: str | Sequence[str] | None = None) -> None:
        self.upsert_all([record], pk)

    def upsert_all(
        self, records: Iterable[dict[str, Any]], pk: str | Sequence[str] | None = None
    ) -> None:
        keys = (pk,) if isinstance(pk, str) else tuple(pk or self.pk)

        def on_conflict(cols: tuple[str, ...]) -> str:
            sets = ", ".join(f"{_quoted(c)} = EXCLUDED.{_quoted(c)}" for c in cols if c not in keys)
            target = ", ".join(map(_quoted, keys))
            return f" ON CONFLICT ({target}) " + (f"DO UPDATE SET {sets}" if sets else "DO NOTHING")

        self._insert_many(records, on_conflict, keys)

    def _where_pk(self, value: Any) -> tuple[str, list[Any]]:
        values = list(value) if isinstance(value, (tuple, list)) else [value]
        return " AND ".join(f"{_quoted(k)} = ?" for k in self.pk), values

    def update(self, pk_value: Any, changes: dict[str, Any]) -> None:
        if not changes:
            return
        where, params = self._where_pk(pk_value)
        sets = ", ".join(f"{_quoted(c)} = ?" for c in changes)
        self.db.execute(
            f"UPDATE {_quoted(self.name)} SET {sets} WHERE {where}", [*changes.values(), *params]
        )

    def get(self, pk_value: Any) -> dict[str, Any]:
        where, params = self._where_pk(pk_value)
        row = next(self.db.query(f"SELECT * FROM {_quoted(self.name)} WHERE {where}", params), None)
        if row is None:
            raise KeyError(f"no row {pk_value!r} in {self.name}")
        return row

    def count_where(self, where: str = "TRUE", params: Sequence[Any] = ()) -> int:
        [(n,)] = self.db.execute(
            f"SELECT count(*) FROM {_quoted(self.name)} WHERE {where}", params
        ).fetchall()
        return int(n)

    @property
    def count(self) -> int:
        return self.count_where()

    @property
    def rows(self) -> Iterator[dict[str, Any]]:
        return self.db.query(f"SELECT * FROM {_quoted(self.name)}")

    def rows_where(
        self, where: str = "TRUE", params: Sequence[Any] = (), order_by: str | None = None
    ) -> Iterator[dict[str, Any]]:
        order = f" ORDER BY {order_by}" if order_by else ""
        return self.db.query(f"SELECT * FROM {_quoted(self.name)} WHERE {where}{order}", params)
