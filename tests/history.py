"""Constructed histories: mentions with known labels, times, ratings and reach, stored through
the real storage code, so alert rules can be tested on data whose answer we know."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from listener.storage import MatchedEntry
from listener.storage.sqlite import SQLiteStorage
from sentiment.base import Prediction
from sources.base import Entry, FetchResult, SourceState

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MODEL = ("m", "1")
_P = {
    "negative": (-0.9, {"negative": 0.95, "neutral": 0.03, "positive": 0.02}),
    "neutral": (0.0, {"negative": 0.1, "neutral": 0.8, "positive": 0.1}),
    "positive": (0.9, {"negative": 0.02, "neutral": 0.03, "positive": 0.95}),
}


@dataclass
class Post:
    label: str
    ago: timedelta
    rating: float | None = None
    reach: int | None = None
    source: str = "s"
    brand: str = "Acme"
    text: str = ""
    language: str | None = None
    author: str | None = None
    url: str | None = None  # default: https://example.com/<n>; stored as given (no checks)
    title: str | None = None


class History:
    def __init__(
        self,
        store: SQLiteStorage,
        sources: tuple[str, ...] = ("s", "t"),
        tied: dict[str, str] | None = None,
    ) -> None:
        """`sources` are general (no brand tie); `tied` maps source -> its one brand."""
        self.store = store
        self.n = 0
        for name, brand in [*((s, None) for s in sources), *(tied or {}).items()]:
            if store.db["sources"].count_where("id = ?", [name]) == 0:
                store.db["sources"].insert(
                    {
                        "id": name,
                        "type": "rss",
                        "brand": brand,
                        "enabled": 1,
                        "consecutive_failures": 0,
                    }
                )

    def add(self, *posts: Post, now: datetime = NOW) -> list[int]:
        ids = []
        for p in posts:
            self.n += 1
            at = now - p.ago
            e = Entry(
                f"e{self.n}",
                p.url or f"https://example.com/{self.n}",
                p.author,
                p.title if p.title is not None else f"post {self.n}",
                p.text or f"{p.label} words {self.n}",
                None,
                p.language,
                at,
                f"h{self.n}",
                rating=p.rating,
                reach=p.reach,
            )
            self.store.save_fetch(
                p.source,
                FetchResult([e], SourceState()),
                [MatchedEntry(e, (p.brand,))],
                started=at,
                finished=at,
                next_due=at,
            )
            mid = self.store.db.execute(
                "SELECT id FROM mentions WHERE source_id = ? AND external_id = ?",
                [p.source, e.external_id],
            ).fetchone()[0]
            score, probs = _P[p.label]
            self.store.save_scores(*MODEL, [(mid, Prediction(p.label, probs, score), None)], now=at)
            ids.append(mid)
        return ids


def stored_text(store: Any) -> str:
    """Every row of every table as text, on either backend: what a leaked secret would show in."""
    if isinstance(store, SQLiteStorage):
        return "\n".join(store.db.iterdump())
    tables = store.db.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    )
    return "\n".join(
        row["r"]
        for name in [t["table_name"] for t in tables]
        for row in store.db.query(f'SELECT t::text AS r FROM "{name}" t')
    )
