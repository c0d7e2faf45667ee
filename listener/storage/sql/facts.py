"""What alert rules read (time windows are [start, end) on published-else-fetched time)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from listener.storage.sql._base import (
    AT,
    LABEL,
    LABEL_JOINS,
    LABELLED_COLUMNS,
    NOT_NEWS,
    SQLBase,
    labelled,
)
from listener.storage.types import LabelCounts, LabelledMention, MentionFilter
from listener.timeutil import iso, parse_iso

_ORDER = {"newest": "at DESC", "lowest_rating": "rating ASC"}
_NEWS_OUT = f"AND {NOT_NEWS} "


class AlertFactsMixin(SQLBase):
    def recent_labelled(
        self,
        brand: str,
        model: str,
        revision: str | None,
        limit: int,
        source: str | None = None,
        *,
        include_news: bool = True,
    ) -> list[LabelledMention]:
        """A brand's newest labelled mentions, newest first, by published (else fetched) time."""
        return self._labelled(
            brand, model, revision, limit, source, "" if include_news else _NEWS_OUT
        )

    def last_non_negative(
        self,
        brand: str,
        model: str,
        revision: str | None,
        source: str | None = None,
        *,
        include_news: bool = True,
    ) -> LabelledMention | None:
        rows = self._labelled(
            brand,
            model,
            revision,
            1,
            source,
            f"AND {LABEL} != 'negative' " + ("" if include_news else _NEWS_OUT),
        )
        return rows[0] if rows else None

    def _labelled(
        self,
        brand: str,
        model: str,
        revision: str | None,
        limit: int,
        source: str | None,
        where: str,
    ) -> list[LabelledMention]:
        rows = self.db.query(
            f"SELECT {LABELLED_COLUMNS} FROM mentions m "
            "CROSS JOIN mention_brands b ON b.mention_id = m.id AND b.brand = :brand "
            f"{LABEL_JOINS} WHERE {LABEL} IS NOT NULL {where} "
            "AND (:source IS NULL OR m.source_id = :source) "
            "ORDER BY at DESC, m.id DESC LIMIT :limit",
            {
                "brand": brand,
                "model": model,
                "rev": revision or "",
                "limit": limit,
                "source": source,
            },
        )
        return [labelled(r) for r in rows]

    def label_counts(
        self,
        brand: str,
        model: str,
        revision: str | None,
        start: datetime,
        end: datetime,
        source: str | None = None,
        *,
        include_news: bool = True,
    ) -> LabelCounts:
        row = (
            self._one(
                f"SELECT count(CASE WHEN {LABEL} = 'negative' THEN 1 END) AS negative, "
                f"count(CASE WHEN {LABEL} = 'neutral' THEN 1 END) AS neutral, "
                f"count(CASE WHEN {LABEL} = 'positive' THEN 1 END) AS positive FROM mentions m "
                "CROSS JOIN mention_brands b ON b.mention_id = m.id AND b.brand = :brand "
                f"{LABEL_JOINS} WHERE {AT} >= :start AND {AT} < :end "
                "AND (:source IS NULL OR m.source_id = :source) "
                + ("" if include_news else _NEWS_OUT),
                {
                    "brand": brand,
                    "model": model,
                    "rev": revision or "",
                    "start": iso(start),
                    "end": iso(end),
                    "source": source,
                },
            )
            or {}
        )
        return LabelCounts(
            row.get("negative") or 0, row.get("neutral") or 0, row.get("positive") or 0
        )

    def mention_count(self, brand: str, start: datetime, end: datetime) -> int:
        row = self._one(
            "SELECT count(*) AS n FROM mentions m CROSS JOIN mention_brands b "
            f"ON b.mention_id = m.id AND b.brand = ? WHERE {AT} >= ? AND {AT} < ?",
            [brand, iso(start), iso(end)],
        )
        return int(row["n"]) if row else 0

    def mentions_between(
        self,
        brand: str,
        model: str,
        revision: str | None,
        start: datetime,
        end: datetime,
        where: MentionFilter | None = None,
    ) -> list[LabelledMention]:
        """A brand's mentions in a window with their effective label, as `where` filters
        and orders them."""
        where = where or MentionFilter()
        conditions: list[str] = []
        params: dict[str, Any] = {}
        if where.label is not None:
            conditions.append("label = :label")
            params["label"] = where.label
        if where.labelled:
            conditions.append("label IS NOT NULL")
        if where.rated or where.max_rating is not None:
            conditions.append("rating IS NOT NULL")
        if where.max_rating is not None:
            conditions.append("rating <= :max_rating")
            params["max_rating"] = float(where.max_rating)
        if where.min_reach is not None:
            conditions.append("reach >= :min_reach")
            params["min_reach"] = int(where.min_reach)
        rows = self.db.query(
            f"SELECT * FROM (SELECT {LABELLED_COLUMNS} FROM mentions m "
            "CROSS JOIN mention_brands b ON b.mention_id = m.id AND b.brand = :brand "
            f"{LABEL_JOINS} WHERE {AT} >= :start AND {AT} < :end "
            f"{'' if where.include_news else _NEWS_OUT}) AS t "
            f"WHERE {' AND '.join(conditions) or 'TRUE'} "
            f"ORDER BY {_ORDER[where.order]}, id DESC LIMIT :limit",
            {
                **params,
                "brand": brand,
                "model": model,
                "rev": revision or "",
                "start": iso(start),
                "end": iso(end),
                "limit": where.limit,
            },
        )
        return [labelled(r) for r in rows]

    def rating_stats(self, brand: str, start: datetime, end: datetime) -> tuple[float | None, int]:
        row = self._one(
            "SELECT avg(m.rating) AS avg, count(m.rating) AS n FROM mentions m "
            "CROSS JOIN mention_brands b ON b.mention_id = m.id AND b.brand = ? "
            f"WHERE {AT} >= ? AND {AT} < ? AND m.rating IS NOT NULL",
            [brand, iso(start), iso(end)],
        )
        return (row["avg"], int(row["n"])) if row else (None, 0)

    def last_alert_at(self, rule_id: str, scope: str) -> datetime | None:
        row = self._one(
            "SELECT max(created_at) AS at FROM alerts WHERE rule_id = ? AND scope = ?",
            [rule_id, scope],
        )
        return parse_iso(row["at"]) if row else None
