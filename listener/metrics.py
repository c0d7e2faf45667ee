"""Metrics over stored mentions: what the CLI, the export and the web page all show.

Labels are the effective ones: a human correction, else the configured model's score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from listener.query import Query, parse_query
from listener.storage import Storage
from listener.storage.types import Dimension, Period
from listener.textnorm import words


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
    store: Storage,
    model: tuple[str, str | None],
    *,
    period: Period = "day",
    by: Dimension = "brand",
    brands: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_news: bool | None = None,
) -> list[dict[str, Any]]:
    """Per period and dimension: volume, label counts, net sentiment ((pos - neg) / scored),
    CSAT (share of 4-5 among 1-5 ratings), average rating, NPS-style score (share of 5s minus
    share of 1-3s). News sources are left out (reported events are not opinions of the
    brand) unless include_news, or the table is by kind, which shows them apart."""
    rows = store.sentiment_counts(
        model,
        period=period,
        by=by,
        brands=brands,
        since=since,
        until=until,
        include_news=include_news if include_news is not None else by == "kind",
    )
    return [_rates(r) for r in rows]


def news_volume(
    store: Storage, *, since: datetime | None = None, until: datetime | None = None
) -> dict[str, int]:
    """Mentions from news sources per brand: coverage, shown beside the opinion figures."""
    return store.news_volume(since=since, until=until)


def share_of_voice(
    store: Storage,
    brand: str,
    competitors: Sequence[str],
    *,
    period: Period = "month",
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Each brand's share of mentions among the brand and its competitors, counted only over
    general sources (no `brand:` tie): a source collected for one brand would skew it."""
    names = [brand, *competitors]
    rows = store.brand_volumes(names, period=period, since=since, until=until)
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
    store: Storage,
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
    rows = store.labelled_texts(model, brand, since=since, until=until)
    tagged = []
    for r in rows:
        said = words(f"{r['title']} {r['text']}")  # once per mention, not once per aspect
        tagged.append((r, {a.name for a in aspects if a.matches(said)}))
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
