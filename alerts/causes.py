"""Why a spike happened: the words, sources, authors and aspects found more often in the alert's
window than in its baseline. Pure functions of the two sets of mentions.

Each candidate is scored by the weighted log-odds ratio with an informative Dirichlet prior
(Monroe, Colaresi & Quinn 2008, "Fightin' Words"), over how many mentions carry it: a word in
3 of 10 mentions against 0 of 2,000 before counts, a word in every mention both times does not,
and small counts are shrunk toward the pooled rate instead of producing huge ratios from noise.
Only those seen at least MIN_COUNT times in the window and above Z_MIN are kept.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from alerts.render import neutralise
from listener.metrics import Aspect
from listener.storage import LabelledMention
from listener.textnorm import words

MIN_COUNT = 3
Z_MIN = 1.96  # about 95 % one-sided that the word is not just as common as before
TOP = 5
PRIOR = 10.0  # how many pseudo-mentions at the pooled rate each side starts from
# Each kind of cause and what one of it is called, in the order they are shown.
KINDS = {"terms": "word", "aspects": "aspect", "sources": "source", "authors": "author"}


def over_represented(
    window: Counter[str],
    window_total: int,
    baseline: Counter[str],
    baseline_total: int,
    *,
    min_count: int = MIN_COUNT,
    top: int = TOP,
) -> list[dict[str, Any]]:
    """The values (mention counts per value, out of each side's number of mentions) that are
    significantly more frequent in the window, strongest first."""
    if window_total <= 0 or baseline_total <= 0:
        return []
    found: list[dict[str, Any]] = []
    pooled_total = window_total + baseline_total
    for value, y_w in window.items():
        y_b = baseline.get(value, 0)
        if y_w < min_count or y_w / window_total <= y_b / baseline_total:
            continue
        a = PRIOR * (y_w + y_b) / pooled_total  # prior mentions carrying it, per side
        rest = PRIOR - a  # prior mentions not carrying it
        delta = math.log((y_w + a) / (window_total - y_w + rest)) - math.log(
            (y_b + a) / (baseline_total - y_b + rest)
        )
        variance = (
            1 / (y_w + a)
            + 1 / (window_total - y_w + rest)
            + 1 / (y_b + a)
            + 1 / (baseline_total - y_b + rest)
        )
        z = delta / math.sqrt(variance)
        if z >= Z_MIN:
            found.append(
                {
                    "value": value,
                    "window": y_w,
                    "window_total": window_total,
                    "baseline": y_b,
                    "baseline_total": baseline_total,
                    "z": round(z, 2),
                }
            )
    found.sort(key=lambda c: (-c["z"], -c["window"], c["value"]))
    return found[:top]


def _document_counts(
    mentions: Sequence[LabelledMention], features: Callable[[LabelledMention], Iterable[str]]
) -> Counter[str]:
    counts: Counter[str] = Counter()
    for m in mentions:
        counts.update(set(features(m)))
    return counts


def causes(
    window: Sequence[LabelledMention],
    baseline: Sequence[LabelledMention],
    *,
    brand_words: Iterable[str] = (),
    aspects: Sequence[Aspect] = (),
    skip_aspect: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """{kind: over-represented values} for terms, aspects, sources and authors; kinds with
    nothing significant are left out. `brand_words` (the brand's own name) are never a cause:
    every mention has them."""
    skip = set(brand_words)
    text_of: dict[int, list[str]] = {}

    def terms(m: LabelledMention) -> list[str]:
        if m.id not in text_of:
            text_of[m.id] = words(f"{m.title} {m.text}")
        return [w for w in text_of[m.id] if len(w) > 2 and not w.isdigit() and w not in skip]

    def aspect_names(m: LabelledMention) -> list[str]:
        terms(m)  # tokenises once; phrases need the words in order, the brand's included
        said = text_of[m.id]
        return [a.name for a in aspects if a.name != skip_aspect and a.matches(said)]

    features: dict[str, Callable[[LabelledMention], Iterable[str]]] = {
        "terms": terms,
        "aspects": aspect_names,
        "sources": lambda m: [m.source_id] if m.source_id else [],
        "authors": lambda m: [neutralise(m.author)[:80]] if m.author else [],
    }
    out = {}
    for kind in KINDS:
        found = over_represented(
            _document_counts(window, features[kind]),
            len(window),
            _document_counts(baseline, features[kind]),
            len(baseline),
        )
        if found:
            out[kind] = found
    return out


def describe(found: dict[str, Any], baseline: str) -> str:
    """The causes as one sentence per kind: "More often than in the 14 d before: words
    “refund” (12 of 31, 1% before), “twice” (9 of 31, 0% before)." "" when there are none."""
    parts = []
    for kind in KINDS:
        rows = found.get(kind) if isinstance(found, dict) else None
        if not rows or not isinstance(rows, list):
            continue
        shown = []
        for r in rows:
            try:
                before = r["baseline"] / r["baseline_total"]
                shown.append(
                    f"“{r['value']}” ({r['window']} of {r['window_total']}, {before:.0%} before)"
                )
            except (KeyError, TypeError, ZeroDivisionError):
                continue
        if shown:
            parts.append(f"{KINDS[kind]}s {', '.join(shown)}")
    if not parts:
        return ""
    return f"More often than in the {baseline} before: " + "; ".join(parts) + "."
