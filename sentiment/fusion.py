"""One final label per mention: the model's text label combined with the star rating, if any.

| stars | text negative | text neutral | text positive |
|-------|---------------|--------------|---------------|
| 1-2   | negative      | negative     | negative      |
| 3     | negative      | neutral      | neutral       |
| 4-5   | neutral       | positive     | positive      |

A 1-star review is never positive however polite its words, a 5-star review with a complaint
is mixed (neutral), and 3 stars caps praise at neutral. Both labels are stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from sentiment.base import Prediction


@dataclass(frozen=True)
class Verdict:
    label: str  # final
    text_label: str  # the model's, before the rating
    needs_review: bool


def fuse(text_label: str, rating: float | None) -> str:
    if rating is None:
        return text_label
    if rating <= 2:
        return "negative"
    if rating < 4:
        return "negative" if text_label == "negative" else "neutral"
    return "neutral" if text_label == "negative" else "positive"


def verdict(prediction: Prediction, rating: float | None, review_below: float) -> Verdict:
    """Needs review: the model is unsure (top probability under the threshold), or the stars
    and the words disagree outright (sarcasm, a mis-tapped star, or a model error)."""
    unsure = max(prediction.scores.values()) < review_below
    clash = rating is not None and (
        (rating <= 2 and prediction.label == "positive")
        or (rating >= 4 and prediction.label == "negative")
    )
    return Verdict(fuse(prediction.label, rating), prediction.label, unsure or clash)
