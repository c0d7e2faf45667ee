"""What the dashboard's overview shows, as plain data: the web page (and anything else that
wants the same morning view) calls these functions; they only read through the metrics and
storage functions the CLI uses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from listener.metrics import Aspect, key_drivers, news_volume, sentiment_table, share_of_voice
from listener.storage import Storage
from listener.timeutil import parse_iso
from sentiment.base import LABELS

TOP = 8  # sources and languages listed


@dataclass(frozen=True)
class Window:
    """The days shown and the same number of days just before, for "change against the
    previous period"."""

    since: datetime
    days: int

    @property
    def previous(self) -> datetime:
        return self.since - timedelta(days=self.days)

    @property
    def until(self) -> datetime:
        return self.since + timedelta(days=self.days)

    def day_keys(self) -> list[str]:
        return [(self.since + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(self.days)]


def needs_you(store: Storage, brands: list[str], now: datetime) -> dict[str, Any]:
    """Open and overdue inbox items, and the alerts of the last 24 hours, for `brands`."""
    only = brands[0] if len(brands) == 1 else None  # None: every brand
    recent = now - timedelta(hours=24)
    alerts = [
        a
        for a in store.alerts(200)
        if (at := parse_iso(a["created_at"])) is not None
        and at >= recent
        and (only is None or a.get("brand") in (only, None))
        and a["rule"] != "report"  # a report is news, not something to answer
    ]
    return {
        "open": store.inbox_count(brand=only, status="open"),
        "overdue": store.inbox_count(brand=only, status="open", overdue_at=now),
        "alerts": alerts,
    }


def _kpi(row: dict[str, Any] | None) -> dict[str, Any]:
    row = row or {}
    return {
        "volume": row.get("volume", 0),
        "net_sentiment": row.get("net_sentiment"),
        "csat": row.get("csat"),
        "avg_rating": row.get("avg_rating"),
        **{label: row.get(label, 0) for label in LABELS},
    }


def change(now: float | None, before: float | None) -> float | None:
    """now - before, or None when either side has no figure."""
    return None if now is None or before is None else round(now - before, 4)


def brand_panels(
    store: Storage,
    model: tuple[str, str | None],
    brands: list[str],
    window: Window,
    aspects: list[Aspect],
) -> list[dict[str, Any]]:
    """Per brand: the window's figures against the previous window, labels per day, news
    coverage kept apart, and the aspects found most in its negative mentions."""
    current = {
        r["brand"]: r
        for r in sentiment_table(
            store, model, period="all", brands=brands, since=window.since, until=window.until
        )
    }
    before = {
        r["brand"]: r
        for r in sentiment_table(
            store, model, period="all", brands=brands, since=window.previous, until=window.since
        )
    }
    daily = {
        (r["period"], r["brand"]): r
        for r in sentiment_table(
            store, model, period="day", brands=brands, since=window.since, until=window.until
        )
    }
    news = news_volume(store, since=window.since, until=window.until)
    panels = []
    for name in brands:
        now, prev = _kpi(current.get(name)), _kpi(before.get(name))
        drivers = (
            [
                d
                for d in key_drivers(
                    store, model, aspects, brand=name, since=window.since, until=window.until
                )
                if d["negative_share"] > 0
            ][:5]
            if aspects
            else []
        )
        panels.append(
            {
                "brand": name,
                "now": now,
                "before": prev,
                "change": {
                    k: change(now[k], prev[k])
                    for k in ("volume", "net_sentiment", "csat", "avg_rating")
                },
                "daily": {
                    label: [daily.get((d, name), {}).get(label, 0) for d in window.day_keys()]
                    for label in LABELS
                },
                "news": news.get(name, 0),
                "drivers": drivers,
            }
        )
    return panels


def top_by(
    store: Storage,
    model: tuple[str, str | None],
    by: Literal["source", "language"],
    brands: list[str],
    since: datetime,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """The sources or languages with the most mentions of `brands` in the window, each with
    its negative share."""
    # Over the whole window ("all") the table has one row per source or language.
    rows = [
        {
            "name": r[by] or "unknown",
            "value": r[by],
            "volume": r["volume"],
            "negative_share": r["negative"] / r["volume"] if r["volume"] else 0.0,
        }
        for r in sentiment_table(
            store, model, period="all", by=by, brands=brands, since=since, until=until
        )
    ]
    return sorted(rows, key=lambda m: (-m["volume"], m["name"]))[:TOP]


def voice_shares(
    store: Storage,
    brands: list[tuple[str, list[str]]],
    since: datetime,
    until: datetime | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Per brand with competitors: each name's mentions and share among the brand and its
    competitors, in general sources only."""
    return {
        name: share_of_voice(store, name, competitors, period="all", since=since, until=until)
        for name, competitors in brands
        if competitors
    }
