"""Alert rules: pure functions of stored data and time. They decide; they never send or store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from listener.storage import LabelledMention

SNIPPET_CHARS = 160


@dataclass(frozen=True)
class Alert:
    rule: str
    brand: str
    dedupe_key: str  # one alert per key, ever: the store refuses a second
    title: str
    message: str
    mention_ids: list[int]
    evidence: dict[str, Any] = field(default_factory=dict)


def _snippet(m: LabelledMention) -> str:
    text = " ".join(f"{m.title} {m.text}".split())
    text = text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"
    return f"- {text}" + (f"\n  {m.url}" if m.url else "")


def negative_streak(
    rule_id: str,
    brand: str,
    count: int,
    newest: Sequence[LabelledMention],
    last_break: LabelledMention | None,
) -> Alert | None:
    """Fires when the brand's `count` newest scored mentions are all negative.

    `newest` is newest first; `last_break` is the newest non-negative mention, if any. The streak
    is named after it, so a streak that keeps growing fires once, and a new streak (after a
    non-negative mention broke the last one) fires again.
    """
    if count < 1 or len(newest) < count:
        return None
    streak = list(newest[:count])
    if any(m.label != "negative" for m in streak):
        return None
    after = last_break.id if last_break else 0
    return Alert(
        rule="negative_streak",
        brand=brand,
        dedupe_key=f"{rule_id}:{brand}:after:{after}",
        title=f"{brand}: {count} negative mention{'s' if count != 1 else ''} in a row",
        message="\n".join(_snippet(m) for m in streak),
        mention_ids=[m.id for m in streak],
        evidence={"count": count, "from": streak[-1].when, "to": streak[0].when,
                  "after_mention_id": after or None},
    )
