"""Alert rules: pure functions of stored facts and time. They decide; they never send or store.

Each returns Alerts whose `dedupe_key` names exactly what they are about (a streak, a window, a
mention), so storing the same alert twice is refused and a retry or a crash never re-alerts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alerts.render import human, link_line, snippet
from listener.storage import LabelCounts, LabelledMention
from listener.timeutil import iso

EXAMPLES = 5


@dataclass(frozen=True)
class Alert:
    rule: str
    brand: str | None
    dedupe_key: str  # one alert per key, ever: the store refuses a second
    title: str
    message: str
    mention_ids: list[int]
    evidence: dict[str, Any] = field(default_factory=dict)
    rule_id: str = ""
    scope: str = ""  # what the cooldown counts per: a brand or a source


def _lines(mentions: Sequence[LabelledMention]) -> str:
    out = []
    for m in mentions[:EXAMPLES]:
        stars = f"{m.rating:g}★ " if m.rating is not None else ""
        who = f" — {snippet('', m.author, 40)}" if m.author else ""
        out.append(f"- {stars}{snippet(m.title, m.text)}{who}{link_line(m.url)}")
    return "\n".join(out)


def _bucket(now: datetime, size: timedelta) -> str:
    """The window a time falls in: a spike alerts once per window, not once per pass."""
    seconds = int(size.total_seconds())
    return iso(datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, now.tzinfo))


def in_cooldown(last_alert: datetime | None, cooldown: timedelta, now: datetime) -> bool:
    return last_alert is not None and now - last_alert < cooldown


def negative_streak(
    rule_id: str,
    brand: str,
    count: int,
    newest: Sequence[LabelledMention],
    last_break: LabelledMention | None,
    scope: str | None = None,
) -> Alert | None:
    """Fires when the `count` newest labelled mentions are all negative. The streak is named
    after the newest non-negative mention before it, so a streak that keeps growing fires
    once, and a new streak fires again."""
    if count < 1 or len(newest) < count:
        return None
    streak = list(newest[:count])
    if any(m.label != "negative" for m in streak):
        return None
    after = last_break.id if last_break else 0
    plural = "s" if count != 1 else ""
    where = f" on {scope}" if scope else ""
    return Alert(
        rule="negative_streak",
        brand=brand,
        rule_id=rule_id,
        scope=scope or brand,
        dedupe_key=f"{rule_id}:{scope or brand}:after:{after}",
        title=f"{brand}: {count} negative mention{plural} in a row{where}",
        message=_lines(streak),
        mention_ids=[m.id for m in streak],
        evidence={
            "count": count,
            "from": streak[-1].when,
            "to": streak[0].when,
            "after_mention_id": after or None,
            "source": scope,
        },
    )


def _window_alert(
    rule: Any,
    brand: str,
    now: datetime,
    title: str,
    figures: str,
    examples: Sequence[LabelledMention],
    **evidence: Any,
) -> Alert:
    """A recent window compared with its baseline: keyed by the window it falls in."""
    aspect = getattr(rule, "aspect", None)
    scope = f"{brand} / {aspect}" if aspect else brand
    if aspect:
        evidence["aspect"] = aspect
    return Alert(
        rule=rule.rule,
        brand=brand,
        rule_id=rule.id,
        scope=scope,
        dedupe_key=f"{rule.id}:{scope}:{_bucket(now, rule.window)}",
        title=title,
        message=f"{figures}\n" + _lines(examples),
        mention_ids=[m.id for m in examples],
        evidence={"window": human(rule.window), "baseline": human(rule.baseline), **evidence},
    )


def negative_share_spike(
    rule: Any,
    brand: str,
    window: LabelCounts,
    baseline: LabelCounts,
    examples: Sequence[LabelledMention],
    now: datetime,
) -> Alert | None:
    """The share of negatives in the recent window against the brand's own baseline (among
    mentions naming rule.aspect, when set). A small window (under min_sample) never fires: one
    angry post is not '100 % negative'."""
    if window.total < rule.min_sample:
        return None
    share = window.negative / window.total
    usual = baseline.negative / baseline.total if baseline.total else 0.0
    if share < rule.factor * usual or share - usual < rule.min_increase:
        return None
    about = f" about {rule.aspect}" if rule.aspect else ""
    return _window_alert(
        rule,
        brand,
        now,
        f"{brand}: {share:.0%} negative{about} in the last {human(rule.window)} "
        f"(usually {usual:.0%})",
        f"{window.negative} of {window.total} scored mentions{about} negative in the last "
        f"{human(rule.window)}; {baseline.negative} of {baseline.total} in the "
        f"{human(rule.baseline)} before.",
        examples,
        window_negative=window.negative,
        window_total=window.total,
        baseline_negative=baseline.negative,
        baseline_total=baseline.total,
        share=round(share, 4),
        usual_share=round(usual, 4),
    )


def volume_spike(
    rule: Any,
    brand: str,
    count: int,
    baseline_count: int,
    examples: Sequence[LabelledMention],
    now: datetime,
) -> Alert | None:
    expected = baseline_count * (rule.window / rule.baseline)
    if count < rule.min_sample or count < rule.factor * expected:
        return None
    return _window_alert(
        rule,
        brand,
        now,
        f"{brand}: {count} mentions in the last {human(rule.window)} (usually {expected:.1f})",
        f"{count} mentions in the last {human(rule.window)} against {baseline_count} in the "
        f"{human(rule.baseline)} before.",
        examples,
        count=count,
        baseline_count=baseline_count,
        expected=round(expected, 2),
    )


def silence(
    rule: Any, source: str, last_mention_at: datetime | None, baseline_count: int, now: datetime
) -> Alert | None:
    """A source that used to yield mentions and has gone quiet for far longer than usual: a
    dead collector must not look like good news."""
    if last_mention_at is None or baseline_count < rule.min_history:
        return None
    usual_gap = rule.baseline / baseline_count
    quiet = now - last_mention_at
    if quiet <= max(rule.factor * usual_gap, rule.min_silence):
        return None
    return Alert(
        rule=rule.rule,
        brand=rule.brand,
        rule_id=rule.id,
        scope=source,
        dedupe_key=f"{rule.id}:{source}:{iso(last_mention_at)}",
        title=(
            f"{source}: no new mentions for {human(quiet)} (usually one every {human(usual_gap)})"
        ),
        message=(
            f"The source {source} yielded {baseline_count} mentions in the "
            f"{human(rule.baseline)} before {iso(last_mention_at)} and none since. "
            "Check `listener sources` for fetch errors."
        ),
        mention_ids=[],
        evidence={
            "source": source,
            "last_mention_at": iso(last_mention_at),
            "baseline_count": baseline_count,
            "usual_gap_s": usual_gap.total_seconds(),
            "quiet_s": quiet.total_seconds(),
        },
    )


def _per_mention(
    rule: Any, brand: str, mentions: Sequence[LabelledMention], title: str
) -> list[Alert]:
    return [
        Alert(
            rule=rule.rule,
            brand=brand,
            rule_id=rule.id,
            scope=brand,
            dedupe_key=f"{rule.id}:{m.id}",
            title=title.format(m=m, brand=brand),
            message=_lines([m]),
            mention_ids=[m.id],
            evidence={"rating": m.rating, "reach": m.reach, "at": m.when},
        )
        for m in mentions
    ]


def low_ratings(rule: Any, brand: str, reviews: Sequence[LabelledMention]) -> list[Alert]:
    low = [m for m in reviews if m.rating is not None and m.rating <= rule.max_stars]
    return _per_mention(rule, brand, low, "{brand}: {m.rating:g}★ review")


def high_reach_negatives(rule: Any, brand: str, mentions: Sequence[LabelledMention]) -> list[Alert]:
    loud = [m for m in mentions if m.label == "negative" and (m.reach or 0) >= rule.min_reach]
    return _per_mention(rule, brand, loud, "{brand}: negative mention with reach {m.reach:,}")


def rating_drop(
    rule: Any,
    brand: str,
    window: tuple[float | None, int],
    baseline: tuple[float | None, int],
    examples: Sequence[LabelledMention],
    now: datetime,
) -> Alert | None:
    (avg, n), (usual, base_n) = window, baseline
    if avg is None or usual is None or n < rule.min_sample or base_n < rule.min_sample:
        return None
    if usual - avg < rule.drop:
        return None
    return _window_alert(
        rule,
        brand,
        now,
        f"{brand}: average rating {avg:.1f}★ in the last {human(rule.window)} "
        f"(usually {usual:.1f}★)",
        f"{n} ratings averaging {avg:.2f} against {base_n} averaging {usual:.2f} in the "
        f"{human(rule.baseline)} before.",
        examples,
        average=round(avg, 3),
        count=n,
        usual_average=round(usual, 3),
        baseline_count=base_n,
    )


def overdue_items(rule: Any, items: Sequence[dict[str, Any]], now: datetime) -> list[Alert]:
    """Inbox items past their due time and still open: one alert per item."""
    out = []
    for item in items:
        late = now - datetime.fromisoformat(item["due_at"])
        what = "reply" if item["kind"] == "reply" else "thank-you"
        out.append(
            Alert(
                rule=rule.rule,
                brand=item["brand"],
                rule_id=rule.id,
                scope=item["brand"] or "",
                dedupe_key=f"{rule.id}:{item['mention_id']}",
                title=f"{item['brand']}: {what} overdue by {human(late)}",
                message=f"- {snippet(item['title'] or '', item['text'] or '')}"
                + link_line(item["url"])
                + f"\n  `listener inbox show {item['mention_id']}`",
                mention_ids=[item["mention_id"]],
                evidence={
                    "due_at": item["due_at"],
                    "kind": item["kind"],
                    "assignee": item["assignee"],
                },
            )
        )
    return out


def report_key(rule_id: str, period_name: str) -> str:
    return f"{rule_id}:report:{period_name}"


def report(rule: Any, period_name: str, title: str, summary: str) -> Alert:
    """The period's report summary, once per period (`period_name`: 2026-W47, 2026-11)."""
    return Alert(
        rule="report",
        brand=rule.brand,
        rule_id=rule.id,
        scope=rule.brand or "",
        dedupe_key=report_key(rule.id, period_name),
        title=f"listener report: {title}",
        message=summary,
        mention_ids=[],
        evidence={"period": period_name},
    )
