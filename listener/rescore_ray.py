"""Re-scoring a large history on several GPUs with Ray Data (`pip install 'listener[ray]'`).

    stretches of ids --read--> mentions --model actors--> scores --write--> database
    (from_items)      (tasks, paged)      (map_batches, one    (Datasink, one
                                           model load each)     transaction per block)

Read tasks page through their own stretch of the history through the storage seam, so no SQL
leaves the store; each model actor loads the model once and scores batches with the same code
as `listener run` (listener.scoring); write tasks store each block of scores in one
transaction. Scores are keyed by (mention, model, revision), so a task Ray retries after a
worker died stores the same rows again, never a second copy. Texts the model fails on are
recorded and retried later, as everywhere else."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from typing import Any

from listener.query import Query
from listener.scoring import ScoredChunk, save_chunk, score_chunk
from listener.storage import PendingMention, open_store
from sentiment import configured_key
from sentiment.base import Prediction
from sentiment.fusion import Verdict

log = logging.getLogger(__name__)

PAGE = 1000  # mentions a read task fetches per query


class RayMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class RayRescore:
    scored: int
    failed: int
    model: tuple[str, str | None]


def rescore_on_ray(
    database: str,
    settings: Any,
    matchers: Mapping[str, Query],
    *,
    address: str | None = None,
    actors: int | None = None,
    gpus_per_actor: float | None = None,
    batch_size: int = 256,
    stretch: int = 20_000,
    limit: int | None = None,
) -> RayRescore:
    """Score every mention the model in `settings` has not scored, on the Ray cluster at
    `address` (default: $RAY_ADDRESS, else a Ray instance started here for this run).
    `actors` model copies (default: one per GPU in the cluster, else one), each given
    `gpus_per_actor` GPUs (default: 1 where the cluster has GPUs, else 0)."""
    try:
        import ray
    except ImportError:
        raise RayMissing("Ray is not installed: pip install 'listener[ray]' (Ray Data)") from None
    model = configured_key(settings)
    store = open_store(database)
    try:
        low, high, pending = store.unscored_span(*model)
    finally:
        store.close()
    if limit is not None:
        pending = min(pending, limit)
    if pending == 0:
        return RayRescore(0, 0, model)
    _connect(ray, address)
    gpus = float(ray.cluster_resources().get("GPU", 0))
    if gpus_per_actor is None:
        gpus_per_actor = 1.0 if gpus else 0.0
    if actors is None:
        actors = max(1, int(gpus // gpus_per_actor)) if gpus_per_actor else 1
    # Equal stretches of ids, about `stretch` mentions to score in each.
    parts = max(1, math.ceil(pending / stretch))
    bounds = [low - 1 + round((high - low + 1) * i / parts) for i in range(parts + 1)]
    windows = [{"after": a, "upto": b} for a, b in pairwise(bounds)]
    ds = ray.data.from_items(windows).map_batches(
        partial(_read_windows, database=database, model=model),
        batch_size=1,
        batch_format="pyarrow",
    )
    if limit is not None:
        ds = ds.limit(limit)
    ds = ds.map_batches(
        _Scorer,
        fn_constructor_kwargs={"settings": settings, "model": model, "matchers": dict(matchers)},
        batch_size=batch_size,
        batch_format="pyarrow",
        concurrency=actors,
        num_gpus=gpus_per_actor,
    )
    sink = _sink_class()(database, model)
    ds.write_datasink(sink)
    return RayRescore(sink.scored, sink.failed, model)


def _connect(ray: Any, address: str | None) -> None:
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no report to anyone
    if address is None:
        # A Ray of our own for this run, on loopback only: nothing to reach from outside.
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)


def _read_windows(
    batch: Any, database: str, model: tuple[str, str | None]
) -> Iterator[dict[str, list[Any]]]:
    """The unscored mentions in each stretch of ids, page by page, with the brands each one
    names (for per-brand scores)."""
    store = open_store(database, migrate=False)
    try:
        for window in batch.to_pylist():
            after, upto = window["after"], window["upto"]
            while page := store.unscored(*model, PAGE, after=after, upto=upto):
                named = store.brands_of([m.id for m in page])
                yield {
                    "id": [m.id for m in page],
                    "title": [m.title for m in page],
                    "text": [m.text for m in page],
                    "language": [m.language for m in page],
                    "rating": [m.rating for m in page],
                    "brands": [json.dumps(named.get(m.id, [])) for m in page],
                }
                after = page[-1].id
    finally:
        store.close()


class _Scorer:
    """A model actor: loads the model once, then scores the batches Ray hands it."""

    def __init__(
        self, settings: Any, model: tuple[str, str | None], matchers: dict[str, Query]
    ) -> None:
        from listener.pipeline import review_threshold
        from sentiment import load_classifier

        self.classifier = load_classifier(settings)
        got = (self.classifier.name, self.classifier.revision)
        if got != model:
            raise RuntimeError(f"asked for model {model}, the settings loaded {got}")
        self.review_below = review_threshold(settings, self.classifier)
        self.matchers = matchers

    def __call__(self, batch: Any) -> dict[str, list[Any]]:
        rows = batch.to_pylist()
        pending = [
            PendingMention(r["id"], r["title"], r["text"], r["language"], r["rating"]) for r in rows
        ]
        named = {r["id"]: json.loads(r["brands"]) for r in rows}
        chunk = score_chunk(self.classifier, pending, self.review_below, named, self.matchers)
        return {"chunk": [_encode(chunk)]}


class _ScoreSink:
    """Stores each block of scores in one transaction (listener.scoring.save_chunk)."""

    def __init__(self, database: str, model: tuple[str, str | None]) -> None:
        self.database, self.model = database, model
        self.scored = self.failed = 0

    def write(self, blocks: Iterable[Any], ctx: Any) -> tuple[int, int]:
        from ray.data.block import BlockAccessor

        scored = failed = 0
        store = open_store(self.database, migrate=False)
        try:
            for block in blocks:
                for row in BlockAccessor.for_block(block).to_arrow().to_pylist():
                    chunk = _decode(row["chunk"])
                    scored += save_chunk(store, self.model, chunk)
                    failed += len(chunk.failed)
        finally:
            store.close()
        return scored, failed

    def on_write_complete(self, result: Any) -> None:
        self.scored = sum(s for s, _ in result.write_returns)
        self.failed = sum(f for _, f in result.write_returns)


def _sink_class() -> type:
    """_ScoreSink as a ray.data.Datasink (Ray imported only where it is installed)."""
    from ray.data import Datasink

    return type("ScoreSink", (_ScoreSink, Datasink), {"get_name": lambda self: "listener"})


def _encode(chunk: ScoredChunk) -> str:
    """A scored chunk as JSON: it crosses process boundaries inside Arrow blocks."""

    def pred(p: Prediction) -> list[Any]:
        return [p.label, p.scores, p.score]

    return json.dumps(
        {
            "scored": [
                [mid, pred(p), [v.label, v.text_label, v.needs_review]]
                for mid, p, v in chunk.scored
            ],
            "brands": [
                [mid, b, label, pred(p), text] for mid, b, label, p, text in chunk.brand_rows
            ],
            "failed": chunk.failed,
        }
    )


def _decode(data: str) -> ScoredChunk:
    raw = json.loads(data)
    return ScoredChunk(
        scored=[(mid, Prediction(*p), Verdict(*v)) for mid, p, v in raw["scored"]],
        brand_rows=[
            (mid, b, label, Prediction(*p), text) for mid, b, label, p, text in raw["brands"]
        ],
        failed=[(mid, error) for mid, error in raw["failed"]],
    )
