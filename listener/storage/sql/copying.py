"""Whole tables out of one database and into another (`listener db copy`), in key order and in
batches, so an interrupted copy resumes after the last row it stored; and a digest of each
table (row count and checksum over the values) to verify the copy."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from listener.storage.sql._base import SQLBase

# What a copy moves, parents first, each with its key. Leases, claims and registered workers
# are not history: they are not copied.
COPIED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sources", ("id",)),
    ("mentions", ("id",)),
    ("mention_brands", ("mention_id", "brand")),
    ("scores", ("mention_id", "model", "revision")),
    ("brand_scores", ("mention_id", "brand", "model", "revision")),
    ("score_failures", ("mention_id", "model", "revision")),
    ("fetch_runs", ("id",)),
    ("corrections", ("mention_id",)),
    ("alerts", ("id",)),
    ("deliveries", ("alert_id", "channel")),
    ("inbox", ("mention_id",)),
    ("audit_log", ("id",)),
    ("replies", ("mention_id",)),
)
KEYS = dict(COPIED)
NOT_COPIED = {"lease_owner", "lease_expires"}


def _canonical(value: Any) -> Any:
    """A value as both backends give it back: 5 and 5.0 are one rating."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return float(value)
    return value


class CopyMixin(SQLBase):
    def copy_columns(self, table: str) -> list[str]:
        cur = self.db.execute(f"SELECT * FROM {_known(table)} LIMIT 0")
        return [d[0] for d in cur.description if d[0] not in NOT_COPIED]

    def rows_after(
        self, table: str, after: Sequence[Any] | None, limit: int, columns: Sequence[str]
    ) -> list[tuple[Any, ...]]:
        """Up to `limit` rows of `columns` whose key comes after `after`, in key order."""
        key = KEYS[_known(table)]
        cols = ", ".join(columns)
        where, params = "", list(after or ())
        if after is not None:
            where = f"WHERE ({', '.join(key)}) > ({', '.join('?' * len(key))}) "
        return [
            tuple(r)
            for r in self.db.execute(
                f"SELECT {cols} FROM {table} {where}ORDER BY {', '.join(key)} LIMIT ?",
                [*params, limit],
            ).fetchall()
        ]

    def last_key(self, table: str) -> tuple[Any, ...] | None:
        key = KEYS[_known(table)]
        order = ", ".join(f"{k} DESC" for k in key)
        row = self.db.execute(
            f"SELECT {', '.join(key)} FROM {table} ORDER BY {order} LIMIT 1"
        ).fetchone()
        return tuple(row) if row else None

    def put_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Store copied rows (one transaction); rows already there are left as they are.
        Mentions are indexed for search as this backend indexes them."""
        if not rows:
            return 0
        marks = ", ".join("?" * len(columns))
        with self._write():
            self.db.conn.executemany(
                f"INSERT INTO {_known(table)} ({', '.join(columns)}) VALUES ({marks}) "
                "ON CONFLICT DO NOTHING",
                [list(r) for r in rows],
            )
            if table == "mentions":
                at = {c: i for i, c in enumerate(columns)}
                ids = [(r[at["id"]],) for r in rows]
                self.db.conn.executemany("DELETE FROM mentions_search WHERE rowid = ?", ids)
                self._index_for_search((r[at["id"]], r[at["title"]], r[at["text"]]) for r in rows)
        return len(rows)

    def finish_copy(self) -> None:
        """After rows were stored with their ids: new rows get ids after them."""

    def table_digest(self, table: str, columns: Sequence[str]) -> tuple[int, str]:
        """(rows, sha256 over every row's values in key order), comparable across backends."""
        digest, n, after = hashlib.sha256(), 0, None
        key_at = [list(columns).index(k) for k in KEYS[_known(table)]]
        while rows := self.rows_after(table, after, 5000, columns):
            for r in rows:
                digest.update(json.dumps([_canonical(v) for v in r], default=str).encode())
                digest.update(b"\n")
            n += len(rows)
            after = tuple(rows[-1][i] for i in key_at)
        return n, digest.hexdigest()


def _known(table: str) -> str:
    if table not in KEYS:  # table names go into SQL text: only ours
        raise ValueError(f"not a copied table: {table!r}")
    return table
