"""The charts of the overview page and of the report, from listener.dashboard's data: drawn the
same way in both. `feed(**filters)` gives the address of the mentions behind an element, or ""
where there is nowhere to link (a report saved as a file)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from listener.web.charts import bar_list, stacked_bars

Feed = Callable[..., str]


def next_day(day: str) -> str:
    return (datetime.fromisoformat(day) + timedelta(days=1)).strftime("%Y-%m-%d")


def _short_day(day: str) -> str:
    return datetime.fromisoformat(day).strftime("%d %b").lstrip("0")


def figures(
    data: dict[str, Any], keys: list[str], since: str, brand: str | None, feed: Feed
) -> dict[str, Any]:
    """{"charts": {brand: stacked bars per day}, "source_chart", "language_chart",
    "sov_charts"} for data with "panels", "sources", "languages" and "sov"."""

    def day_link(name: str) -> Callable[[int, str], str]:
        return lambda i, label: feed(
            brand=name, label=label, since=keys[i], until=next_day(keys[i])
        )

    def breakdown(title: str, by: Literal["source", "language"]) -> str | None:
        rows = [r for r in data[f"{by}s"] if r["value"]]
        if not rows:
            return None
        return bar_list(
            f"{title} (mentions, share negative)",
            [
                (
                    r["name"],
                    r["volume"],
                    feed(brand=brand or None, since=since, **{by: r["value"]}),
                    f"{r['volume']:,}, {r['negative_share']:.0%} neg.",
                )
                for r in rows
            ],
        )

    return {
        "charts": {
            p["brand"]: stacked_bars(
                f"{p['brand']}: mentions per day by sentiment",
                keys,
                p["daily"],
                day_link(p["brand"]),
                x_labels=[_short_day(k) for k in keys],
            )
            for p in data["panels"]
        },
        "source_chart": breakdown("Top sources", "source"),
        "language_chart": breakdown("Languages", "language"),
        "sov_charts": [
            bar_list(
                f"Share of voice: {owner} against its competitors",
                [
                    (
                        r["brand"],
                        r["share_of_voice"],
                        feed(brand=r["brand"], since=since),
                        f"{r['share_of_voice']:.0%} ({r['volume']:,} mentions)",
                    )
                    for r in rows
                ],
            )
            for owner, rows in data["sov"].items()
        ],
    }
