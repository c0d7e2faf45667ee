"""Aggregates for metrics, share of voice, key drivers and exports."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from listener.storage.sql._base import AT, LABEL, NOT_NEWS, SQLBase
from listener.storage.types import Dimension, ExportFilter, Model, Period
from listener.timeutil import iso

_DIMENSIONS = {
    "brand": "b.brand",
    "source": "m.source_id",
    "language": "m.language",
    "kind": "coalesce(k.kind, 'social')",  # k: the mention's source, joined when asked
}
# CROSS JOIN: walk mentions through the time index, not every brand link
_BRAND_LINKS = "FROM mentions m CROSS JOIN mention_brands b ON b.mention_id = m.id "
_LABELLED = (
    _BRAND_LINKS
    + "LEFT JOIN scores s ON s.mention_id = m.id AND s.model = :model AND s.revision = :rev "
    "LEFT JOIN brand_scores bs ON bs.mention_id = m.id AND bs.brand = b.brand "
    "AND bs.model = :model AND bs.revision = :rev "
    "LEFT JOIN corrections c ON c.mention_id = m.id "
)


def _window(
    since: datetime | None, until: datetime | None, brands: Sequence[str] | None
) -> tuple[str, dict[str, Any]]:
    where, params = ["TRUE"], {}
    if since:
        where.append(f"{AT} >= :since")
        params["since"] = iso(since)
    if until:
        where.append(f"{AT} < :until")
        params["until"] = iso(until)
    if brands:
        names = {f"b{i}": b for i, b in enumerate(brands)}
        where.append(f"b.brand IN ({', '.join(':' + k for k in names)})")
        params |= names
    return " AND ".join(where), params


def _model(model: Model) -> dict[str, str]:
    return {"model": model[0], "rev": model[1] or ""}


class MetricsMixin(SQLBase):
    def sentiment_counts(
        self,
        model: Model,
        *,
        period: Period,
        by: Dimension,
        brands: Sequence[str] | None,
        since: datetime | None,
        until: datetime | None,
        include_news: bool,
    ) -> list[dict[str, Any]]:
        """Per period and `by` value: volume, mentions per effective label, rated mentions,
        4-5★ (satisfied), 5★ (promoters), 1-3★ (detractors) and the average rating."""
        where, params = _window(since, until, brands)
        if not include_news:
            where += f" AND {NOT_NEWS}"
        return list(
            self.db.query(
                f"SELECT {self.PERIODS[period].format(at=AT)} AS period, "
                f"{_DIMENSIONS[by]} AS {by}, "
                "count(DISTINCT m.id) AS volume, "
                f"count(DISTINCT CASE WHEN {LABEL} = 'negative' THEN m.id END) AS negative, "
                f"count(DISTINCT CASE WHEN {LABEL} = 'neutral' THEN m.id END) AS neutral, "
                f"count(DISTINCT CASE WHEN {LABEL} = 'positive' THEN m.id END) AS positive, "
                "count(DISTINCT CASE WHEN m.rating IS NOT NULL THEN m.id END) AS rated, "
                "count(DISTINCT CASE WHEN m.rating >= 4 THEN m.id END) AS satisfied, "
                "count(DISTINCT CASE WHEN m.rating >= 5 THEN m.id END) AS promoters, "
                "count(DISTINCT CASE WHEN m.rating <= 3 THEN m.id END) AS detractors, "
                f"avg(m.rating) AS avg_rating {_LABELLED}"
                + ("LEFT JOIN sources k ON k.id = m.source_id " if by == "kind" else "")
                + f"WHERE {where} "
                "GROUP BY 1, 2 ORDER BY 1, 2",
                {**params, **_model(model)},
            )
        )

    def news_volume(self, *, since: datetime | None, until: datetime | None) -> dict[str, int]:
        where, params = _window(since, until, None)
        return {
            r["brand"]: r["n"]
            for r in self.db.query(
                f"SELECT b.brand AS brand, count(DISTINCT m.id) AS n {_BRAND_LINKS} "
                f"WHERE {where} AND NOT ({NOT_NEWS}) GROUP BY 1",
                params,
            )
        }

    def brand_volumes(
        self,
        brands: Sequence[str],
        *,
        period: Period,
        since: datetime | None,
        until: datetime | None,
    ) -> list[dict[str, Any]]:
        """Mentions per period and brand from general sources (no `brand:` tie) only."""
        where, params = _window(since, until, brands)
        return list(
            self.db.query(
                f"SELECT {self.PERIODS[period].format(at=AT)} AS period, b.brand AS brand, "
                f"count(DISTINCT m.id) AS volume {_BRAND_LINKS}"
                "JOIN sources src ON src.id = m.source_id AND src.brand IS NULL "
                f"WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2",
                params,
            )
        )

    def labelled_texts(
        self, model: Model, brand: str, *, since: datetime | None, until: datetime | None
    ) -> list[dict[str, Any]]:
        """A brand's mentions in the window: id, title, text, rating, effective label."""
        where, params = _window(since, until, [brand])
        return list(
            self.db.query(
                f"SELECT DISTINCT m.id, m.title, m.text, m.rating, {LABEL} AS label "
                f"{_LABELLED} WHERE {where}",
                {**params, **_model(model)},
            )
        )

    def export_batches(
        self, model: Model, where: ExportFilter, size: int, *, time_order: bool = True
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Mentions with the model's scores and the text's effective label, in lists of up to
        `size` tuples in EXPORT_COLUMNS order: oldest first, or with time_order=False in the
        order they were stored (id), which reads the table front to back instead of jumping
        through it by the time index. Class probabilities come out of the scores JSON in SQL,
        so no row is decoded in Python."""
        effective = "coalesce(c.label, s.label)"
        conditions = ["TRUE"]
        params: dict[str, Any] = _model(model)
        for clause, key, value in (
            (
                "m.id IN (SELECT mention_id FROM mention_brands WHERE brand = :brand)",
                "brand",
                where.brand,
            ),
            ("m.source_id = :source", "source", where.source),
            ("m.language = :language", "language", where.language),
            (f"{effective} = :label", "label", where.label),
            (f"{AT} >= :since", "since", iso(where.since) if where.since else None),
            (f"{AT} < :until", "until", iso(where.until) if where.until else None),
        ):
            if value is not None:
                conditions.append(clause)
                params[key] = value
        brand_labels = self._concat("bs.brand || ':' || bs.label", ",")
        sql = (
            f"SELECT m.id, m.source_id, m.external_id, (SELECT {self._concat('brand', ',')} FROM "
            "mention_brands WHERE mention_id = m.id) AS brands, m.url, m.author, m.title, "
            "m.text, m.language, m.published_at, m.fetched_at, m.rating, m.reach, "
            f"{effective} AS label, s.text_label, s.score, {self._probabilities()}, "
            "s.needs_review, "
            "CASE WHEN c.label IS NULL THEN 0 ELSE 1 END AS corrected, "
            f"(SELECT {brand_labels} FROM brand_scores bs WHERE bs.mention_id = m.id AND "
            "bs.model = :model AND bs.revision = :rev) AS brand_labels, s.model, s.revision "
            "FROM mentions m "
            "LEFT JOIN scores s ON s.mention_id = m.id AND s.model = :model AND s.revision = :rev "
            "LEFT JOIN corrections c ON c.mention_id = m.id "
            f"WHERE {' AND '.join(conditions)} ORDER BY {AT + ', ' if time_order else ''}m.id"
        )
        return self._batches(sql, params, size, jumping=time_order)
