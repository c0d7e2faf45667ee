"""Accuracy of sentiment heads per data set and language, shared by bench/sentiment_accuracy.py
and `listener model tune-head` so both report the same figures the same way."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from listener.tables import format_table
from sentiment.heads import macro_f1
from sentiment.labelled import Example


def majority(examples: Sequence[Example]) -> list[str]:
    """The baseline to beat: every example of a (source, language) gets its most common label."""
    common = {
        key: Counter(e.label for e in examples if (e.source, e.language) == key).most_common(1)[0][
            0
        ]
        for key in {(e.source, e.language) for e in examples}
    }
    return [common[(e.source, e.language)] for e in examples]


def table(
    examples: Sequence[Example], predictions: Mapping[str, Sequence[str]]
) -> list[dict[str, Any]]:
    """One row per (source, language) and one per source: n, then accuracy and macro-F1 of
    each method's predictions."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, e in enumerate(examples):
        groups.setdefault((e.source, e.language), []).append(i)
        groups.setdefault((e.source, "all"), []).append(i)
    rows = []
    for (source, language), idx in sorted(groups.items()):
        if language == "all" and len({examples[i].language for i in idx}) == 1:
            continue
        row: dict[str, Any] = {"data": source, "language": language, "n": len(idx)}
        gold = [examples[i].label for i in idx]
        for method, predicted in predictions.items():
            got = [predicted[i] for i in idx]
            row[f"{method} acc"] = sum(g == p for g, p in zip(gold, got, strict=True)) / len(idx)
            row[f"{method} F1"] = macro_f1(got, gold)
        rows.append(row)
    return rows


def paired(
    examples: Sequence[Example], before: Sequence[str], after: Sequence[str]
) -> tuple[int, int]:
    """(examples `after` gets right that `before` got wrong, and the reverse)."""
    fixed = sum(b != e.label == a for e, b, a in zip(examples, before, after, strict=True))
    broken = sum(a != e.label == b for e, b, a in zip(examples, before, after, strict=True))
    return fixed, broken


def render(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    return format_table(
        keys,
        [[f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys] for r in rows],
    )
