"""A thin psycopg 3 connection with the small part of sqlite-utils' API the storage mixins use,
so the SQL that is the same on both databases is written once.

Placeholders are written SQLite's way (`?`, `:name`) and rewritten to psycopg's; values are
bound on the client (psycopg's ClientCursor), so `:x IS NULL` needs no type cast."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from functools import lru_cache
from typing import Any

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


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PgDatabase:
    """One autocommit connection: a statement outside `transaction()` commits at once."""

    def __init__(self, url: str) -> None:
        self.raw = psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor)

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
    ) -> psycopg.Cursor[Any]:
        cur = self.raw.cursor()
        rows = list(params)
        if rows:
            cur.executemany(translate(sql), rows)
        return cur

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
        self, records: Iterable[dict[str, Any]], suffix: Callable[[tuple[str, ...]], str]
    ) -> None:
        """One executemany (pipelined by psycopg) per set of columns, not a statement per row."""
        batches: dict[tuple[str, ...], list[list[Any]]] = {}
        for r in records:
            batches.setdefault(tuple(r), []).append(list(r.values()))
        for cols, values in batches.items():
            self.db.executemany(
                f"INSERT INTO {_quoted(self.name)} ({', '.join(map(_quoted, cols))}) "
                f"VALUES ({', '.join('?' * len(cols))}){suffix(cols)}",
                values,
            )

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

        self._insert_many(records, on_conflict)

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
