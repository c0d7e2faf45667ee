"""An alert in plain words: what was counted, against what, and by how much. Pure functions of
the alert's rule and the evidence stored with it, so the alert page, the API and anything that
shows an alert say the same thing, and an alert stored long ago reads as it did."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from alerts.causes import describe
from alerts.render import human
from listener.timeutil import parse_iso


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _when(value: Any) -> str:
    at = parse_iso(value) if isinstance(value, str) else None
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else "an unknown time"


def _times(now: float, usual: float) -> str:
    return f"{now / usual:.1f}x" if usual else "far above"


def _streak(e: dict[str, Any], brand: str) -> str:
    where = f" on {e['source']}" if e.get("source") else ""
    n = e.get("count", 0)
    return (
        f"The {n} newest mentions of {brand}{where} were all negative, "
        f"from {_when(e.get('from'))} to {_when(e.get('to'))}."
    )


def _share(e: dict[str, Any], brand: str) -> str:
    about = f" about {e['aspect']}" if e.get("aspect") else ""
    share, usual = e.get("share", 0.0), e.get("usual_share", 0.0)
    return (
        f"{e.get('window_negative', 0)} of {e.get('window_total', 0)} scored mentions of "
        f"{brand}{about} in the last {e.get('window', '?')} were negative ({_pct(share)}), "
        f"{_times(share, usual)} the usual {_pct(usual)} ({e.get('baseline_negative', 0)} of "
        f"{e.get('baseline_total', 0)} in the {e.get('baseline', '?')} before)."
    )


def _volume(e: dict[str, Any], brand: str) -> str:
    count, expected = e.get("count", 0), e.get("expected", 0.0)
    return (
        f"{count} mentions of {brand} in the last {e.get('window', '?')}, "
        f"{_times(count, expected)} the usual {expected:.1f} "
        f"({e.get('baseline_count', 0)} in the {e.get('baseline', '?')} before)."
    )


def _silence(e: dict[str, Any], brand: str) -> str:
    quiet = human(timedelta(seconds=e.get("quiet_s", 0)))
    gap = human(timedelta(seconds=e.get("usual_gap_s", 0)))
    return (
        f"The source {e.get('source', '?')} has given no new mention for {quiet}; it usually "
        f"gives one every {gap} (its last came {_when(e.get('last_mention_at'))}). A source "
        "that stops is more often broken than quiet: `listener sources` shows its fetches."
    )


def _low_rating(e: dict[str, Any], brand: str) -> str:
    stars = e.get("rating")
    return f"A {stars:g}★ review of {brand}, posted {_when(e.get('at'))}." if stars else ""


def _loud(e: dict[str, Any], brand: str) -> str:
    return (
        f"A negative mention of {brand} with a reach of {e.get('reach') or 0:,} "
        f"(its source's count of followers or votes), posted {_when(e.get('at'))}."
    )


def _rating_drop(e: dict[str, Any], brand: str) -> str:
    avg, usual = e.get("average", 0.0), e.get("usual_average", 0.0)
    return (
        f"{e.get('count', 0)} ratings of {brand} in the last {e.get('window', '?')} average "
        f"{avg:.1f}★, {usual - avg:.1f}★ below the usual {usual:.1f}★ "
        f"({e.get('baseline_count', 0)} ratings in the {e.get('baseline', '?')} before)."
    )


def _overdue(e: dict[str, Any], brand: str) -> str:
    what = "reply" if e.get("kind") == "reply" else "thank-you"
    who = f", assigned to {e['assignee']}" if e.get("assignee") else ", assigned to no one"
    return (
        f"A {what} to a mention of {brand} was due {_when(e.get('due_at'))} and is still open{who}."
    )


_SENTENCES: dict[str, Callable[[dict[str, Any], str], str]] = {
    "negative_streak": _streak,
    "negative_share_spike": _share,
    "volume_spike": _volume,
    "silence": _silence,
    "low_rating": _low_rating,
    "high_reach_negative": _loud,
    "rating_drop": _rating_drop,
    "overdue": _overdue,
}


def explain(rule: str, evidence: dict[str, Any], brand: str | None) -> str:
    """A few sentences a marketing user reads without knowing the rule's settings: what was
    counted against what, then what was over-represented (alerts.causes), if anything; ""
    for a rule this version does not know (an alert stored by a newer one)."""
    sentence = _SENTENCES.get(rule)
    try:
        said = sentence(evidence, brand or "the brand") if sentence else ""
    except (TypeError, ValueError):  # evidence of an older shape: the title still says it
        return ""
    why = describe(evidence.get("causes") or {}, str(evidence.get("baseline", "baseline")))
    return f"{said} {why}" if said and why else said


# Evidence keys shown as facts, in words; the rest (ids, raw seconds) stay in the API.
_FACTS = {
    "window": "window",
    "baseline": "compared with",
    "aspect": "aspect",
    "source": "source",
    "count": "mentions",
    "window_total": "scored mentions in the window",
    "window_negative": "negative in the window",
    "share": "negative share",
    "usual_share": "usual negative share",
    "baseline_count": "mentions before",
    "expected": "usual count for the window",
    "average": "average rating",
    "usual_average": "usual average rating",
    "rating": "stars",
    "reach": "reach",
    "kind": "inbox item",
    "assignee": "assigned to",
    "due_at": "due",
    "from": "first",
    "to": "last",
    "at": "posted",
    "last_mention_at": "last mention",
}
_SHARES = {"share", "usual_share"}
_TIMES = {"due_at", "from", "to", "at", "last_mention_at"}


def facts(evidence: dict[str, Any]) -> list[tuple[str, str]]:
    """The evidence as (what, value) rows for a table: known keys in words, empty values and
    internal ids left out."""
    out = []
    for key, label in _FACTS.items():
        value = evidence.get(key)
        if value is None or value == "":
            continue
        if key in _SHARES and isinstance(value, int | float):
            shown = _pct(value)
        elif key == "rating" and isinstance(value, int | float):
            shown = f"{value:g}★"
        elif key in _TIMES:
            shown = _when(value)
        elif isinstance(value, float):
            shown = f"{value:g}"
        elif isinstance(value, int):
            shown = f"{value:,}"
        else:
            shown = str(value)
        out.append((label, shown))
    return out
