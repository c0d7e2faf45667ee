"""Ingest benchmark: mentions stored per second into SQLite through SQLiteStorage.save_fetch.

    python bench/ingest.py [--entries 100000] [--batch 1000]

Prints figures for: our batched path (one transaction per fetch, FTS rows included), the same
entries fetched again (all unchanged: the dedupe path), and a naive baseline in the same process
(one INSERT and one commit per mention, as a first draft would do), with ratios.
"""

from __future__ import annotations

import argparse
import random
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from listener.storage import MatchedEntry
from listener.storage.sqlite import SQLiteStorage
from sources.base import (
    Entry,
    FetchResult,
    SourceConfig,
    SourceState,
)

SAMPLES = [
    "Ordered on Monday, still no delivery and support does not answer. Very disappointed.",
    "Отличный сервис, доставили за день, всё работает как надо. Рекомендую!",
    "Обслужването беше ужасно, чакахме повече от час и никой не се извини.",
    "Palvelu oli nopeaa ja ystävällistä, kiitos! Tilaan varmasti uudestaan.",
    "Teenindus oli aeglane ja hind liiga kõrge, ei soovita kellelegi.",
    "الخدمة ممتازة والتوصيل سريع جدًا، شكرًا لكم على الاهتمام",
    "Love the new update 😍 the app finally stopped crashing on my phone",
]


def make_entries(n: int, seed: int = 1) -> list[Entry]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        text = " ".join(rng.choice(SAMPLES) for _ in range(rng.randint(1, 4)))
        out.append(
            Entry(
                external_id=f"https://example.com/post/{i}",
                url=f"https://example.com/post/{i}",
                author=f"user{rng.randint(1, 5000)}",
                title=text[:60],
                text=text,
                html=f"<p>{text}</p>",
                language=None,
                published_at=start + timedelta(seconds=i * 7),
                content_hash=f"{i:064x}",
                raw={"id": i, "text": text},
            )
        )
    return out


class _Source(SourceConfig):
    pass


def ours(path: Path, entries: list[Entry], batch: int) -> float:
    store = SQLiteStorage.open(path)
    store.sync_sources([_Source(name="bench", type="rss")])
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    for start in range(0, len(entries), batch):
        chunk = entries[start : start + batch]
        store.save_fetch(
            "bench",
            FetchResult(chunk, SourceState()),
            [MatchedEntry(e, ("Acme",)) for e in chunk],
            started=now,
            finished=now,
            next_due=now,
        )
    elapsed = time.perf_counter() - t0
    store.close()
    return elapsed


def naive(path: Path, entries: list[Entry]) -> float:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE mentions (source_id TEXT, external_id TEXT, url TEXT, author TEXT,"
        " title TEXT, text TEXT, html TEXT, published_at TEXT, content_hash TEXT,"
        " PRIMARY KEY (source_id, external_id))"
    )
    t0 = time.perf_counter()
    for e in entries:
        conn.execute(
            "INSERT OR REPLACE INTO mentions VALUES (?,?,?,?,?,?,?,?,?)",
            (
                "bench",
                e.external_id,
                e.url,
                e.author,
                e.title,
                e.text,
                e.html,
                e.published_at.isoformat() if e.published_at else None,
                e.content_hash,
            ),
        )
        conn.commit()
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="entries per fetch")
    parser.add_argument("--baseline", type=int, default=5000, help="entries for the naive run")
    args = parser.parse_args()

    entries = make_entries(args.entries)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        first = ours(db, entries, args.batch)
        again = ours(db, entries, args.batch)
        size_mb = db.stat().st_size / 1e6
        base = naive(Path(tmp) / "naive.db", entries[: args.baseline])
    ours_rate = args.entries / first
    base_rate = args.baseline / base
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"entries: {args.entries:,} in fetches of {args.batch:,} (WAL, FTS5 index included)")
    print(f"store new:        {ours_rate:>10,.0f} mentions/s  ({first:.1f} s)")
    print(
        f"same again:       {args.entries / again:>10,.0f} mentions/s  (all unchanged; "
        f"{again:.1f} s)"
    )
    print(
        f"naive baseline:   {base_rate:>10,.0f} mentions/s  (row-at-a-time commits, "
        f"{args.baseline:,} entries)"
    )
    print(f"ratio ours/naive: {ours_rate / base_rate:>10.1f}x")
    print(f"database size: {size_mb:.0f} MB; peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
