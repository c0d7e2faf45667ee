"""The reply and thank-you inbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from listener.storage.errors import NotFound
from listener.storage.sql._base import AT, LABEL, LABEL_JOINS, NOT_NEWS, SQLBase
from listener.timeutil import iso, utcnow


class InboxMixin(SQLBase):
    def inbox_candidates(
        self, model: tuple[str, str | None], since: datetime
    ) -> list[dict[str, Any]]:
        """Labelled mentions posted since `since` that have no inbox item yet, per brand."""
        name, rev = model
        return list(
            self.db.query(
                f"SELECT m.id, b.brand, {LABEL} AS label, s.score, s.text_label, s.needs_review, "
                f"c.label AS corrected, m.rating, {AT} AS at "
                "FROM mentions m CROSS JOIN mention_brands b ON b.mention_id = m.id "
                # one item per mention: for its last brand by name
                "AND b.brand = (SELECT max(brand) FROM mention_brands WHERE mention_id = m.id) "
                f"{LABEL_JOINS} WHERE {LABEL} IS NOT NULL AND {AT} >= :since "
                "AND m.id NOT IN (SELECT mention_id FROM inbox) AND m.removed_at IS NULL "
                f"AND {NOT_NEWS}",
                {"model": name, "rev": rev or "", "since": iso(since)},
            )
        )

    def add_inbox_items(self, items: Sequence[dict[str, Any]], now: datetime) -> int:
        with self._write():
            cur = self.db.conn.executemany(
                "INSERT INTO inbox (mention_id, brand, kind, status, posted_at, due_at, "
                "created_at, mixed) VALUES (?, ?, ?, 'open', ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [
                    (
                        i["mention_id"],
                        i["brand"],
                        i["kind"],
                        iso(i["posted_at"]),
                        iso(i["due_at"]),
                        iso(now),
                        int(bool(i.get("mixed"))),
                    )
                    for i in items
                ],
            )
        return cur.rowcount

    @staticmethod
    def _inbox_filter(
        brand: str | None,
        status: str | None,
        kind: str | None,
        overdue_at: datetime | None,
        assignee: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        where, params = ["TRUE"], {}
        if assignee == "":
            where.append("i.assignee IS NULL")
        elif assignee is not None:
            where.append("i.assignee = :assignee")
            params["assignee"] = assignee
        for column, value in (("i.brand", brand), ("i.status", status), ("i.kind", kind)):
            if value:
                where.append(f"{column} = :{column[2:]}")
                params[column[2:]] = value
        if overdue_at is not None:
            where.append("i.status = 'open' AND i.due_at <= :now")
            params["now"] = iso(overdue_at)
        return " AND ".join(where), params

    def inbox(
        self,
        *,
        brand: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        overdue_at: datetime | None = None,
        assignee: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Inbox items with their mention, oldest due first, a page at a time."""
        where, params = self._inbox_filter(brand, status, kind, overdue_at, assignee)
        return list(
            self.db.query(
                "SELECT i.*, m.title, m.text, m.url, m.author, m.language, m.rating, m.source_id "
                "FROM inbox i JOIN mentions m ON m.id = i.mention_id "
                f"WHERE {where} ORDER BY i.due_at, i.mention_id LIMIT :limit OFFSET :offset",
                {**params, "limit": limit, "offset": offset},
            )
        )

    def inbox_count(
        self,
        *,
        brand: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        overdue_at: datetime | None = None,
        assignee: str | None = None,
    ) -> int:
        where, params = self._inbox_filter(brand, status, kind, overdue_at, assignee)
        row = self._one(f"SELECT count(*) AS n FROM inbox i WHERE {where}", params)
        return int(row["n"]) if row else 0

    def overdue_inbox(self, now: datetime, brand: str | None = None) -> list[dict[str, Any]]:
        return self.inbox(brand=brand, overdue_at=now, limit=1000)

    def inbox_item(self, mention_id: int) -> dict[str, Any] | None:
        return self._one(
            "SELECT i.*, m.title, m.text, m.url, m.author, m.language, m.rating, m.source_id, "
            "m.published_at FROM inbox i JOIN mentions m ON m.id = i.mention_id "
            "WHERE i.mention_id = ?",
            [mention_id],
        )

    def mark_inbox(
        self, mention_id: int, status: str, by: str | None = None, now: datetime | None = None
    ) -> None:
        if self.inbox_item(mention_id) is None:
            raise NotFound(f"no inbox item for mention {mention_id}")
        closed = None if status == "open" else iso(now or utcnow())
        with self._write():
            self.db.execute(
                "UPDATE inbox SET status = ?, closed_at = ?, closed_by = ? WHERE mention_id = ?",
                [status, closed, by, mention_id],
            )

    def assign_inbox(self, mention_id: int, assignee: str | None) -> None:
        if self.inbox_item(mention_id) is None:
            raise NotFound(f"no inbox item for mention {mention_id}")
        with self._write():
            self.db.execute(
                "UPDATE inbox SET assignee = ? WHERE mention_id = ?", [assignee, mention_id]
            )

    def inbox_all(
        self, brand: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "SELECT * FROM inbox WHERE (:brand IS NULL OR brand = :brand) "
                "AND (:since IS NULL OR posted_at >= :since)",
                {"brand": brand, "since": iso(since) if since else None},
            )
        )
