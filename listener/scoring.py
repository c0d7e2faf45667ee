"""Scoring one chunk of mentions: the model's predictions, the star-rating verdicts and the
per-brand passages, with the texts the model fails on set apart. The same two steps serve
`listener run`, `listener rescore` and the re-scoring on Ray (listener.rescore_ray): the model
runs in `score_chunk`, which needs no database, and `save_chunk` stores what it produced."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from listener.query import Query
from listener.storage import PendingMention, Storage
from sentiment import Classifier, Prediction
from sentiment.fusion import Verdict, verdict
from sentiment.preprocess import mention_text
from sentiment.targets import Passage, brand_label, passages

log = logging.getLogger(__name__)


@dataclass
class ScoredChunk:
    scored: list[tuple[int, Prediction, Verdict]] = field(default_factory=list)
    # (mention id, brand, label, prediction, passage) for mentions naming several brands
    brand_rows: list[tuple[int, str, str, Prediction, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)  # (mention id, error)


def score_chunk(
    classifier: Classifier,
    pending: Sequence[PendingMention],
    review_below: float,
    named: Mapping[int, Sequence[str]],
    matchers: Mapping[str, Query],
) -> ScoredChunk:
    """Score a chunk; if the model fails on it, score one by one, so one text it cannot take
    never stops the rest. `named`: the brands each mention names (per-brand scores where two
    or more of them have a matcher)."""
    chunk = ScoredChunk()
    ok: list[tuple[PendingMention, Prediction]] = []
    texts = [mention_text(m.title, m.text) for m in pending]
    try:
        ok = list(zip(pending, _checked(classifier.classify(texts)), strict=True))
    except Exception:
        log.warning("the model failed on a batch of %d; scoring them one by one", len(texts))
        for m, text in zip(pending, texts, strict=True):
            try:
                [prediction] = _checked(classifier.classify([text]))
            except Exception as exc:
                chunk.failed.append((m.id, f"{type(exc).__name__}: {exc}"))
            else:
                ok.append((m, prediction))
    chunk.scored = [(m.id, p, verdict(p, m.rating, review_below)) for m, p in ok]
    chunk.brand_rows = _brand_scores(classifier, ok, named, matchers)
    return chunk


def save_chunk(
    store: Storage,
    classifier: tuple[str, str | None],
    chunk: ScoredChunk,
    worker: str | None = None,
) -> int:
    """Store a scored chunk: the scores, the per-brand scores and the end of `worker`'s claims
    in one transaction; each text the model failed on is recorded and retried later with
    backoff (a passing out-of-memory is not final), given up on only after repeated
    failures. Returns how many mentions were scored."""
    name, revision = classifier
    for mention_id, error in chunk.failed:
        attempts, gave_up = store.score_failed(name, revision, mention_id, error)
        what = (
            f"given up after {attempts} tries; `listener rescore --failed` tries again"
            if gave_up
            else f"try {attempts}, retried later"
        )
        log.error("mention %d cannot be scored by %s (%s): %s", mention_id, name, what, error)
    return store.save_scores(
        name, revision, chunk.scored, brand_rows=chunk.brand_rows, worker=worker
    )


def _brand_scores(
    classifier: Classifier,
    scored: list[tuple[PendingMention, Prediction]],
    named: Mapping[int, Sequence[str]],
    matchers: Mapping[str, Query],
) -> list[tuple[int, str, str, Prediction, str]]:
    todo: list[tuple[int, Passage]] = []
    for m, _ in scored:
        brands = {b: matchers[b] for b in named.get(m.id, ()) if b in matchers}
        if len(brands) >= 2:
            todo += [(m.id, p) for p in passages(mention_text(m.title, m.text), brands)]
    if not todo:
        return []
    try:
        predictions = _checked(classifier.classify([p.text for _, p in todo]))
    except Exception as exc:  # the mention-level scores still stand
        log.warning("per-brand scoring failed for %d passages: %s", len(todo), exc)
        return []
    return [
        (mid, p.brand, brand_label(pred.label, p.comparison), pred, p.text)
        for (mid, p), pred in zip(todo, predictions, strict=True)
    ]


def _checked(predictions: list[Prediction]) -> list[Prediction]:
    """A model output with NaN or infinite probabilities is an error, not a label."""
    for p in predictions:
        if not all(math.isfinite(v) for v in p.scores.values()):
            raise ValueError(f"the model returned non-finite probabilities {p.scores}")
    return predictions
