"""Ingest benchmark: mentions stored per second through Storage.save_fetch, on SQLite and on
PostgreSQL side by side.

    python bench/ingest.py [--entries 100000] [--batch 1000] [--backends sqlite postgresql]

Prints figures for: our batched path (one transaction per fetch, search index included), the
same entries fetched again (all unchanged: the dedupe path), on each backend, and a naive
baseline in the same process (SQLite, one INSERT and one commit per mention, as a first draft
would do), with ratios.
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

from bench.backends import LABEL, Backends, add_arguments, ratio_line
from listener.storage import MatchedEntry, open_store
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


def ours(database: str, entries: list[Entry], batch: int) -> float:
    store = open_store(database)
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
    add_arguments(parser)
    args = parser.parse_args()

    entries = make_entries(args.entries)
    new, same = {}, {}
    print(f"entries: {args.entries:,} in fetches of {args.batch:,} (search index included)")
    with Backends(args.backends, args.postgres) as backends:
        for name in backends.names:
            with backends.database(name) as database:
                first = ours(database, entries, args.batch)
                again = ours(database, entries, args.batch)
            new[name], same[name] = args.entries / first, args.entries / again
            print(
                f"{LABEL[name]:<11} store new: {new[name]:>9,.0f} mentions/s ({first:.1f} s);  "
                f"same again: {same[name]:>9,.0f} mentions/s (all unchanged; {again:.1f} s)"
            )
    with tempfile.TemporaryDirectory() as tmp:
        base = naive(Path(tmp) / "naive.db", entries[: args.baseline])
    base_rate = args.baseline / base
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"naive baseline:   {base_rate:>10,.0f} mentions/s  (SQLite, row-at-a-time commits, "
        f"{args.baseline:,} entries)"
    )
    for name, rate in new.items():
        print(f"ratio {LABEL[name]}/naive: {rate / base_rate:>8.1f}x")
    print(ratio_line("store new", new, "mentions/s", higher_is_better=True))
    print(ratio_line("same again", same, "mentions/s", higher_is_better=True))
    print(f"peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
