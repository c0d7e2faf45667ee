"""Metrics over stored mentions: what the CLI, the export and the web page all show.

Labels are the effective ones: a human correction, else the configured model's score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from listener.query import Query, parse_query
from listener.storage import Store
from listener.textnorm import words
from listener.timeutil import iso

PERIODS = {
    "day": "strftime('%Y-%m-%d', {at})",
    "week": "date({at}, '-6 days', 'weekday 1')",  # the Monday starting the ISO week
    "month": "strftime('%Y-%m-01', {at})",
    "all": "'all'",  # one row per dimension over the whole range
}
DIMENSIONS = {
    "brand": "b.brand",
    "source": "m.source_id",
    "language": "m.language",
    "kind": "(SELECT coalesce(kind, 'social') FROM sources WHERE id = m.source_id)",
}
NOT_NEWS = "m.source_id NOT IN (SELECT id FROM sources WHERE kind = 'news')"
AT = "coalesce(m.published_at, m.fetched_at)"
# A correction, else the model's label for the brand (a mention naming several brands is
# scored per brand), else its label for the mention.
LABEL = "coalesce(c.label, bs.label, s.label)"


def _joins() -> str:
    return (
        # CROSS JOIN: walk mentions through the time index, not every brand link
        "FROM mentions m CROSS JOIN mention_brands b ON b.mention_id = m.id "
        "LEFT JOIN scores s ON s.mention_id = m.id AND s.model = :model AND s.revision = :rev "
        "LEFT JOIN brand_scores bs ON bs.mention_id = m.id AND bs.brand = b.brand "
        "AND bs.model = :model AND bs.revision = :rev "
        "LEFT JOIN corrections c ON c.mention_id = m.id "
    )


def _window(
    since: datetime | None, until: datetime | None, brands: Sequence[str] | None
) -> tuple[str, dict[str, Any]]:
    where, params = ["1"], {}
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


def _rates(row: dict[str, Any]) -> dict[str, Any]:
    total, rated = row["volume"], row["rated"]
    scored = row["negative"] + row["neutral"] + row["positive"]
    net = (row["positive"] - row["negative"]) / scored if scored else None
    row["net_sentiment"] = round(net, 4) if net is not None else None
    # Popped whether or not there are ratings: every row has the same columns (CSV needs it).
    satisfied, promoters, detractors = (
        row.pop(k) for k in ("satisfied", "promoters", "detractors")
    )
    row["csat"] = round(satisfied / rated, 4) if rated else None
    row["nps"] = round((promoters - detractors) / rated, 4) if rated else None
    row["avg_rating"] = round(row["avg_rating"], 3) if row["avg_rating"] is not None else None
    row["unscored"] = total - scored
    return row


def sentiment_table(
    store: Store,
    model: tuple[str, str | None],
    *,
    period: str = "day",
    by: str = "brand",
    brands: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_news: bool | None = None,
) -> list[dict[str, Any]]:
    """Per period and dimension: volume, label counts, net sentiment ((pos - neg) / scored),
    CSAT (share of 4-5 among 1-5 ratings), average rating, NPS-style score (share of 5s minus
    share of 1-3s). News sources are left out (reported events are not opinions of the
    brand) unless include_news, or the table is by kind, which shows them apart."""
    bucket = PERIODS[period].format(at=AT)
    dim = DIMENSIONS[by]
    where, params = _window(since, until, brands)
    if not (include_news if include_news is not None else by == "kind"):
        where += f" AND {NOT_NEWS}"
    sql = (
        f"SELECT {bucket} AS period, {dim} AS {by}, count(DISTINCT m.id) AS volume, "
        f"count(DISTINCT CASE WHEN {LABEL} = 'negative' THEN m.id END) AS negative, "
        f"count(DISTINCT CASE WHEN {LABEL} = 'neutral' THEN m.id END) AS neutral, "
        f"count(DISTINCT CASE WHEN {LABEL} = 'positive' THEN m.id END) AS positive, "
        "count(DISTINCT CASE WHEN m.rating IS NOT NULL THEN m.id END) AS rated, "
        "count(DISTINCT CASE WHEN m.rating >= 4 THEN m.id END) AS satisfied, "
        "count(DISTINCT CASE WHEN m.rating >= 5 THEN m.id END) AS promoters, "
        "count(DISTINCT CASE WHEN m.rating <= 3 THEN m.id END) AS detractors, "
        "avg(m.rating) AS avg_rating "
        f"{_joins()} WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2"
    )
    rows = store.db.query(sql, {**params, "model": model[0], "rev": model[1] or ""})
    return [_rates(r) for r in rows]


def news_volume(
    store: Store, *, since: datetime | None = None, until: datetime | None = None
) -> dict[str, int]:
    """Mentions from news sources per brand: coverage, shown beside the opinion figures."""
    where, params = _window(since, until, None)
    return {
        r["brand"]: r["n"]
        for r in store.db.query(
            "SELECT b.brand AS brand, count(DISTINCT m.id) AS n FROM mentions m CROSS JOIN "
            f"mention_brands b ON b.mention_id = m.id WHERE {where} AND NOT ({NOT_NEWS}) "
            "GROUP BY 1",
            params,
        )
    }


def share_of_voice(
    store: Store,
    brand: str,
    competitors: Sequence[str],
    *,
    period: str = "month",
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Each brand's share of mentions among the brand and its competitors, counted only over
    general sources (no `brand:` tie): a source collected for one brand would skew it."""
    names = [brand, *competitors]
    bucket = PERIODS[period].format(at=AT)
    where, params = _window(since, until, names)
    rows = list(
        store.db.query(
            f"SELECT {bucket} AS period, b.brand AS brand, count(DISTINCT m.id) AS volume "
            "FROM mentions m CROSS JOIN mention_brands b ON b.mention_id = m.id "
            "JOIN sources src ON src.id = m.source_id AND src.brand IS NULL "
            f"WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2",
            params,
        )
    )
    totals: dict[str, int] = {}
    for r in rows:
        totals[r["period"]] = totals.get(r["period"], 0) + r["volume"]
    for r in rows:
        r["share_of_voice"] = round(r["volume"] / totals[r["period"]], 4)
    return rows


DEFAULT_ASPECTS: dict[str, dict[str, list[str]]] = {
    "price": {
        "en": ["price*", "expensive", "cheap*", "cost*", "overpriced", "refund*"],
        "bg": ["цен*", "скъп*", "евтин*"],
        "et": ["hind*", "kallis*", "odav*"],
        "fi": ["hinta*", "hinnan*", "kallis*", "halpa*"],
        "ar": ["سعر", "أسعار", "غالي"],
        "ru": ["цен*", "дорог*", "дешев*"],
    },
    "quality": {
        "en": ["quality", "broken", "broke", "crash*", "bug*", "defect*", "works"],
        "bg": ["качеств*", "счупен*", "развален*"],
        "et": ["kvaliteet*", "katki"],
        "fi": ["laatu*", "rikki", "kaatu*"],
        "ar": ["جودة", "الجودة", "معطل"],
        "ru": ["качеств*", "слома*", "вылета*"],
    },
    "service": {
        "en": ["support", "service", "staff", "customer service", "answer*", "rude"],
        "bg": ["обслужван*", "персонал*", "поддръжка*"],
        "et": ["teenindus*", "klienditugi*", "klienditoe*"],
        "fi": ["asiakaspalvelu*", "palvelu*", "henkilökun*"],
        "ar": ["خدمة", "الخدمة", "الموظفين"],
        "ru": ["обслуживани*", "поддержк*", "персонал*"],
    },
    "delivery": {
        "en": ["delivery", "deliver*", "shipping", "shipped", "late", "package*"],
        "bg": ["доставк*", "куриер*", "пратк*"],
        "et": ["tarne*", "kohaletoimet*"],
        "fi": ["toimitu*", "paketti*", "myöhässä"],
        "ar": ["التوصيل", "توصيل", "الشحن"],
        "ru": ["доставк*", "посылк*", "курьер*"],
    },
    "usability": {
        "en": ["app", "login", "interface", "update", "confusing", "easy"],
        "bg": ["приложение*", "вход*"],
        "et": ["rakendus*", "sisselogi*"],
        "fi": ["sovellu*", "kirjautu*", "päivity*"],
        "ar": ["التطبيق", "تطبيق"],
        "ru": ["приложени*", "интерфейс*", "обновлени*"],
    },
}


@dataclass(frozen=True)
class Aspect:
    name: str
    query: Query

    def matches(self, tokens: Sequence[str]) -> bool:
        return self.query.matches_tokens(tokens)


def aspect_matchers(aspects: dict[str, dict[str, list[str]]]) -> list[Aspect]:
    """One OR-query per aspect over its keywords in every language (keywords may be phrases
    or end in * for inflected forms)."""
    out = []
    for name, by_lang in aspects.items():
        terms = [t for kws in by_lang.values() for t in kws]
        out.append(
            Aspect(name, parse_query(" OR ".join(f'"{t}"' if " " in t else t for t in terms)))
        )
    return out


def key_drivers(
    store: Store,
    model: tuple[str, str | None],
    aspects: list[Aspect],
    *,
    brand: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Which aspects appear in negative more than in positive mentions, and how each moves
    the rating: per aspect, mentions, share of negatives/positives that name it, lift
    (negative share / positive share) and average rating with and without it."""
    where, params = _window(since, until, [brand])
    rows = list(
        store.db.query(
            f"SELECT DISTINCT m.id, m.title, m.text, m.rating, {LABEL} AS label {_joins()} "
            f"WHERE {where}",
            {**params, "model": model[0], "rev": model[1] or ""},
        )
    )
    tagged = [
        (r, {a.name for a in aspects if a.matches(words(f"{r['title']} {r['text']}"))})
        for r in rows
    ]
    neg = [t for t in tagged if t[0]["label"] == "negative"]
    pos = [t for t in tagged if t[0]["label"] == "positive"]
    out = []
    for a in aspects:
        with_a = [r for r, names in tagged if a.name in names]
        rated_with = [r["rating"] for r in with_a if r["rating"] is not None]
        rated_without = [
            r["rating"] for r, names in tagged if a.name not in names and r["rating"] is not None
        ]
        neg_share = sum(a.name in n for _, n in neg) / len(neg) if neg else 0.0
        pos_share = sum(a.name in n for _, n in pos) / len(pos) if pos else 0.0
        avg_with = sum(rated_with) / len(rated_with) if rated_with else None
        avg_without = sum(rated_without) / len(rated_without) if rated_without else None
        out.append(
            {
                "aspect": a.name,
                "mentions": len(with_a),
                "negative_share": round(neg_share, 4),
                "positive_share": round(pos_share, 4),
                "lift": round(neg_share / pos_share, 2) if pos_share else None,
                "avg_rating_with": round(avg_with, 3) if avg_with is not None else None,
                "avg_rating_without": round(avg_without, 3) if avg_without is not None else None,
                "rating_impact": round(avg_with - avg_without, 3)
                if avg_with is not None and avg_without is not None
                else None,
            }
        )
    return sorted(out, key=lambda d: (-d["negative_share"], d["aspect"]))
