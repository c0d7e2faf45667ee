"""Alert evaluation cost against the size of the history: one pass of every rule type over
databases of 100,000 and 1,000,000 mentions (same last-day activity, longer past), on SQLite
and on PostgreSQL side by side.

    python bench/alerts.py [--sizes 100000 1000000] [--backends sqlite postgresql]

A pass must not rescan history: its time should barely move with the size of the database.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts import engine
from alerts.inbox import sync_inbox
from bench.backends import LABEL, Backends, add_arguments, ratio_line
from listener.config import parse_config
from listener.storage import Storage, open_store
from listener.storage.sqlite import SQLiteStorage
from listener.timeutil import iso

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
BRANDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli"]
CONFIG = """
brands: [{name: Acme}, {name: Globex}, {name: Initech}, {name: Umbrella}, {name: Hooli}]
sources: [{name: s0, type: rss, url: 'http://x/0'}, {name: s1, type: rss, url: 'http://x/1'}]
alerts:
  - {rule: negative_streak, count: 5}
  - {rule: negative_share_spike}
  - {rule: volume_spike}
  - {rule: silence}
  - {rule: low_rating}
  - {rule: rating_drop}
  - {rule: high_reach_negative}
  - {rule: overdue}
  - {rule: negative_share_spike, name: delivery-spike, aspect: delivery, window: 6h, baseline: 7d}
sentiment: {model: m, revision: '1'}
"""
LABELS = ["negative", "neutral", "positive"]
TEXTS = [
    "some text",
    "delivery was late again",
    "great price",
    "the support never answered",
    "доставка опоздала",
    "toimitus myöhässä",
    "quality went down",
    "love it",
]


def build(database: str | Path, n: int, recent: int = 2000, month: int = 20_000) -> Storage:
    """n mentions: `recent` in the last day, `month` over the 30 days before (every rule's
    windows and baselines fall in these), and the rest older: only the history grows. Rows go
    in by bulk statements, one transaction, the search index included."""
    store = open_store(database)
    db = store.db
    db.execute(
        "INSERT INTO sources (id, type, enabled, consecutive_failures) VALUES "
        "('s0', 'rss', 1, 0), ('s1', 'rss', 1, 0)"
    )
    rng = random.Random(3)
    conn = db.conn
    sqlite = isinstance(store, SQLiteStorage)
    with nullcontext() if sqlite else db.transaction():
        if sqlite:
            conn.execute("BEGIN")
        _insert(store, n, recent, month, rng)
        if sqlite:
            conn.execute("COMMIT")
    store.finish_copy()  # the rows were written with explicit ids
    db.execute("ANALYZE")
    return store


def _insert(store: Storage, n: int, recent: int, month: int, rng: random.Random) -> None:
    conn = store.db.conn
    batch_m, batch_b, batch_s = [], [], []
    for i in range(n):
        if i >= n - recent:
            age = timedelta(seconds=rng.randint(0, 86_400))
        elif i >= n - recent - month:
            age = timedelta(days=1 + rng.random() * 30)
        else:
            age = timedelta(days=31 + rng.random() * 365 * 3)
        at = iso(NOW - age)
        label = rng.choice(LABELS)
        rating = rng.choice([None, None, 1, 2, 3, 4, 5])
        batch_m.append(
            (
                i + 1,
                f"s{i % 2}",
                f"e{i}",
                at,
                at,
                "post",
                rng.choice(TEXTS),
                f"h{i}",
                rating,
                rng.randint(0, 20_000),
            )
        )
        batch_b.append((i + 1, BRANDS[i % len(BRANDS)]))
        batch_s.append((i + 1, "m", "1", label, label, 0.0, json.dumps({label: 1.0}), at))
        if len(batch_m) == 50_000 or i == n - 1:
            conn.executemany(
                "INSERT INTO mentions (id, source_id, external_id, published_at, "
                "fetched_at, title, text, content_hash, rating, reach) VALUES "
                "(?,?,?,?,?,?,?,?,?,?)",
                batch_m,
            )
            conn.executemany("INSERT INTO mention_brands VALUES (?, ?)", batch_b)
            store._index_for_search((m[0], m[5], m[6]) for m in batch_m)
            conn.executemany(
                "INSERT INTO scores (mention_id, model, revision, label, "
                "text_label, score, scores, scored_at) VALUES (?,?,?,?,?,?,?,?)",
                batch_s,
            )
            batch_m, batch_b, batch_s = [], [], []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--passes", type=int, default=5)
    add_arguments(parser)
    args = parser.parse_args()
    config = parse_config(CONFIG)
    results: dict[int, dict[str, float]] = {}
    with Backends(args.backends, args.postgres) as backends:
        for n in args.sizes:
            for name in backends.names:
                with backends.database(name) as database:
                    results.setdefault(n, {})[name] = one_size(config, database, n, args.passes)
                print(
                    f"{LABEL[name]:<11} {n:>9,} mentions: median pass "
                    f"{results[n][name] * 1000:7.1f} ms ({len(config.alerts)} rules x 5 brands "
                    "+ inbox)"
                )
    for n, times in results.items():
        ms = {name: t * 1000 for name, t in times.items()}
        print(ratio_line(f"{n:,} mentions, one pass", ms, "ms", higher_is_better=False))
    small, large = min(results), max(results)
    if small != large:
        for name in results[small]:
            print(
                f"{LABEL[name]} ratio {large:,} / {small:,}: "
                f"{results[large][name] / results[small][name]:.2f}x time for "
                f"{large / small:.0f}x history"
            )


def one_size(config, database: str, n: int, passes: int) -> float:
    """The median time of an alert pass (inbox included) over a history of n mentions."""
    store = build(database, n)
    try:
        sync_inbox(config, store, ("m", "1"), NOW)
        engine.evaluate(config, store, ("m", "1"), NOW)  # first pass stores the alerts
        times = []
        for k in range(passes):
            t = time.perf_counter()
            sync_inbox(config, store, ("m", "1"), NOW + timedelta(minutes=k + 1))
            engine.evaluate(config, store, ("m", "1"), NOW + timedelta(minutes=k + 1))
            times.append(time.perf_counter() - t)
    finally:
        store.close()
    return sorted(times)[len(times) // 2]


if __name__ == "__main__":
    main()
