"""Train a sentiment head for the offline e5 model from labelled examples (the public samples we
ship and the user's own corrections), and say honestly whether it beats the current head."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sentiment.base import ModelUnavailable
from sentiment.evaluate import table
from sentiment.heads import LABELS, Head, cross_validated, load_head, predict, train_head
from sentiment.labelled import Example, customer_posts

MIN_PER_LABEL = 5


@dataclass
class Tuned:
    spec: dict[str, Any]
    rows: list[dict[str, Any]]  # evaluate.table: "current" vs "tuned" (out-of-fold)
    better: bool  # macro-F1 higher out-of-fold, and not lower on the held-out customer posts


def tune(
    examples: Sequence[Example],
    embed: Callable[[list[str]], np.ndarray],
    *,
    current: str,
    l2: float = 0.01,
    blend_with: str | None = "logistic-2.0",
) -> Tuned:
    counts = Counter(e.label for e in examples)
    short = [label for label in LABELS if counts[label] < MIN_PER_LABEL]
    if short:
        raise ModelUnavailable(
            f"too few examples to train a head: {dict(counts)}; need at "
            f"least {MIN_PER_LABEL} of each label ({', '.join(short)} short)"
        )
    check = customer_posts()  # never trained on: a check that the head still generalises
    emb = embed([e.text for e in examples] + [e.text for e in check])
    n = len(examples)
    labels = [e.label for e in examples]
    spec = train_head(emb[:n], labels, l2=l2, blend_with=blend_with)
    spec["examples"] = dict(Counter(e.source for e in examples))
    tuned = Head.from_spec("tuned", "new", spec)
    out_of_fold = cross_validated(
        emb[:n], labels, [e.language for e in examples], l2=l2, blend_with=blend_with
    )
    rows = table(
        [*examples, *check],
        {
            "current": _current_fairly(current, emb, examples),
            "tuned": out_of_fold + predict(tuned, emb[n:]),
        },
    )
    trained = [r for r in rows if r["data"] != "customer-posts"]
    held_out = next(r for r in rows if r["data"] == "customer-posts" and r["language"] == "all")
    gain = sum((r["tuned F1"] - r["current F1"]) * r["n"] for r in trained)
    better = gain > 0 and held_out["tuned F1"] >= held_out["current F1"]
    return Tuned(spec, rows, better)


def _current_fairly(current: str, emb: np.ndarray, examples: Sequence[Example]) -> list[str]:
    """The current head's labels, out-of-fold on the examples it was itself trained on (its
    recipe re-run 5-fold): scoring it in-sample there would make any new head look worse."""
    head = load_head(current)
    labels = list(predict(head, emb))
    trained_on = set(head.spec.get("examples") or ())
    seen = [i for i, e in enumerate(examples) if e.source in trained_on]
    if len(seen) >= 5 * len(LABELS):
        redone = cross_validated(
            emb[seen],
            [examples[i].label for i in seen],
            [examples[i].language for i in seen],
            l2=head.spec.get("l2", 0.01),
            blend_with=head.spec.get("blend_with"),
        )
        for i, label in zip(seen, redone, strict=True):
            labels[i] = label
    return labels
