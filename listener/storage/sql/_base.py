"""What the SQL backends share: the connection's interface, and SQL fragments several concerns use.

The concern mixins beside this module are written once in the SQL both SQLite and PostgreSQL
speak; each dialect's base class (`sqlite/_base.py`, `postgres/_base.py`) supplies the few parts
that differ."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from listener.query import Node as QueryNode
from listener.storage.errors import LeaseLost
from listener.storage.types import LabelledMention
from listener.textnorm import fold

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


class SQLBase:
    """One connection, SQLite's (sqlite-utils) or PostgreSQL's (a wrapper with the same
    methods): `query`, `execute`, `conn.executemany`, `atomic`, and tables by name."""

    db: Any
    # Errors one entry's values can cause: that entry is dropped, the rest of its fetch kept.
    ENTRY_ERRORS: ClassVar[tuple[type[BaseException], ...]] = (OverflowError, ValueError, TypeError)
    # SQL for the start of a mention's day, ISO week (its Monday) or month, as YYYY-MM-DD text.
    PERIODS: ClassVar[dict[str, str]] = {}
    # Ends a SELECT that claims rows ({alias}: the table's): rows another transaction is
    # claiming are skipped, not waited for. SQLite needs none: its writers take turns.
    SKIP_LOCKED: ClassVar[str] = ""

    def close(self) -> None:
        self.db.close()

    def reusable(self) -> bool:
        """Safe to hand to the next job: connected, outside any transaction, no result left
        half-read."""
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[None]:
        """A write transaction (a savepoint inside one)."""
        raise NotImplementedError

    def _insert_id(self, sql: str, params: Sequence[Any]) -> int | None:
        """Run an INSERT; the new row's id, or None when ON CONFLICT DO NOTHING skipped it."""
        raise NotImplementedError

    def _insert_ids(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], key: str
    ) -> dict[Any, int]:
        """Insert new rows (none may conflict); {the row's `key` value: its new id}. One
        statement per row here, where a statement costs no round trip."""
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks(len(columns))})"
        at = list(columns).index(key)
        out = {}
        for row in rows:
            new_id = self._insert_id(sql, row)
            assert new_id is not None
            out[row[at]] = new_id
        return out

    @staticmethod
    def _concat(expression: str, separator: str) -> str:
        """An aggregate joining a group's values into one text (SQL, for a SELECT)."""
        raise NotImplementedError

    @staticmethod
    def _json_number(column: str, key: str) -> str:
        """A number at `key` of a JSON object stored as text, NULL where absent (SQL)."""
        raise NotImplementedError

    def _probabilities(self) -> str:
        """SQL selecting the class probabilities of scores `s` as p_negative, p_neutral and
        p_positive (read out of the scores JSON, so no row is decoded in Python)."""
        return ", ".join(
            f"{self._json_number('s.scores', k)} AS p_{k}"
            for k in ("negative", "neutral", "positive")
        )

    def _batches(
        self, sql: str, params: dict[str, Any], size: int, *, jumping: bool = False
    ) -> Iterator[list[tuple[Any, ...]]]:
        """A query's rows as lists of up to `size` tuples, read as they are consumed;
        `jumping`: in an order other than the table's (through an index)."""
        raise NotImplementedError

    @staticmethod
    def _narrowing(node: QueryNode) -> tuple[str, list[str]] | None:
        """SQL over `m` keeping at least every mention a search query matches, with its
        parameters (None: the index cannot narrow it); the query decides exactly."""
        raise NotImplementedError

    @staticmethod
    def _indexed(text: str) -> str:
        """A title or text as the search index holds it."""
        return fold(text)

    def _index_for_search(self, mentions: Iterable[tuple[int, str | None, str | None]]) -> None:
        """Add (mention id, title, text) to the search index, as this backend indexes them."""
        self.db.conn.executemany(
            "INSERT INTO mentions_search (rowid, title, text) VALUES (?, ?, ?)",
            [
                (i, self._indexed(title or ""), self._indexed(text or ""))
                for i, title, text in mentions
            ],
        )

    def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
        return next(self.db.query(sql, params), None)

    def _end_source_lease(self, source_id: str, worker: str | None) -> None:
        """First thing in the transaction that stores a fetch: end `worker`'s lease on the
        source, or raise LeaseLost if it lapsed and another worker holds the source now (this
        result is then dropped: the holder's fetch stands). The conditional write takes the
        row's lock, so no claim slips in between."""
        if worker is None:
            return
        cur = self.db.execute(
            "UPDATE sources SET lease_owner = NULL, lease_expires = NULL "
            "WHERE id = ? AND lease_owner = ?",
            [source_id, worker],
        )
        if cur.rowcount != 1:
            row = self._one("SELECT lease_owner FROM sources WHERE id = ?", [source_id])
            holder = (row or {}).get("lease_owner") or "no worker"
            raise LeaseLost(
                f"{source_id}: this worker's lease on the source lapsed and {holder} holds it "
                "now; this fetch is not stored"
            )
