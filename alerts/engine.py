"""Runs every configured rule over the stored facts and stores the alerts that fire.

Fetching facts is here; deciding is in alerts.rules (pure). Each alert is stored with one pending
delivery per channel in one transaction, unless its dedupe key exists already.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from alerts import rules
from alerts.causes import causes
from alerts.explain import explain
from alerts.rules import Alert
from listener import report as reports
from listener.metrics import Aspect, aspect_matchers
from listener.storage import LabelCounts, LabelledMention, MentionFilter, Storage
from listener.textnorm import words
from listener.timeutil import iso, utcnow

log = logging.getLogger("listener")

# Per-mention rules look back this far (by published time): an old review imported for the
# first time is history, not news.
LOOKBACK = timedelta(days=2)
LATELY_SCAN_LIMIT = 1000  # per brand and pass
# Mentions an aspect rule reads per brand and pass (window + baseline), newest first.
ASPECT_SCAN_LIMIT = 50_000
# Mentions read to say why a spike fired (newest first), in its window and in its baseline.
WHY_WINDOW_LIMIT = 2_000
WHY_BASELINE_LIMIT = 5_000
# Which mentions of the window and baseline a spike's causes are looked for in.
WHY_AMONG = {
    "negative_share_spike": MentionFilter(label="negative"),  # what the complaints say now
    "volume_spike": MentionFilter(),
    "rating_drop": MentionFilter(rated=True),
}


def _brands(rule: Any, config: Any) -> list[str]:
    return [rule.brand] if rule.brand else [b.name for b in config.brands]


def candidates(
    rule: Any, config: Any, store: Storage, model: tuple[str, str | None], now: datetime
) -> Iterator[Alert]:
    name, rev = model
    kind = rule.rule
    if kind == "silence":
        watched = (
            [rule.source]
            if rule.source
            else [
                s.name
                for s in config.sources
                if s.enabled and (not rule.brand or s.brand in (None, rule.brand))
            ]
        )
        for source in watched:
            last, n = store.source_activity(source, rule.baseline)
            if alert := rules.silence(rule, source, last, n, now):
                yield alert
        return
    if kind == "overdue":
        yield from rules.overdue_items(rule, store.overdue_inbox(now, rule.brand), now)
        return
    if kind == "report":
        span = reports.last_closed(rule.period, now)
        if not store.known_alerts([rules.report_key(rule.id, span.name)]):  # built once
            brands = [
                (b.name, b.competitors) for b in config.brands if rule.brand in (None, b.name)
            ]
            data = reports.build(store, model, brands, aspect_matchers(config.aspects), span)
            yield rules.report(rule, span.name, span.title, reports.summary(data, rule.link_base))
        return
    aspect = (
        aspect_matchers({rule.aspect: config.aspects[rule.aspect]})[0]
        if getattr(rule, "aspect", None)
        else None
    )  # parsed once, not per brand
    for brand in _brands(rule, config):
        if kind == "negative_streak":
            news = rule.include_news
            alert = rules.negative_streak(
                rule.id,
                brand,
                rule.count,
                store.recent_labelled(brand, name, rev, rule.count, rule.source, include_news=news),
                store.last_non_negative(brand, name, rev, rule.source, include_news=news),
                rule.source,
            )
        elif kind == "negative_share_spike" and aspect is not None:
            alert = _aspect_share_spike(rule, aspect, store, brand, model, now)
        elif kind == "negative_share_spike":
            start, news = now - rule.window, rule.include_news
            alert = rules.negative_share_spike(
                rule,
                brand,
                store.label_counts(brand, name, rev, start, now, include_news=news),
                store.label_counts(
                    brand, name, rev, start - rule.baseline, start, include_news=news
                ),
                store.mentions_between(
                    brand,
                    name,
                    rev,
                    start,
                    now,
                    MentionFilter(label="negative", include_news=news, limit=rules.EXAMPLES),
                ),
                now,
            )
        elif kind == "volume_spike":
            start = now - rule.window
            alert = rules.volume_spike(
                rule,
                brand,
                store.mention_count(brand, start, now),
                store.mention_count(brand, start - rule.baseline, start),
                store.mentions_between(
                    brand, name, rev, start, now, MentionFilter(limit=rules.EXAMPLES)
                ),
                now,
            )
        elif kind == "rating_drop":
            start = now - rule.window
            alert = rules.rating_drop(
                rule,
                brand,
                store.rating_stats(brand, start, now),
                store.rating_stats(brand, start - rule.baseline, start),
                store.mentions_between(
                    brand,
                    name,
                    rev,
                    start,
                    now,
                    MentionFilter(rated=True, order="lowest_rating", limit=rules.EXAMPLES),
                ),
                now,
            )
        elif kind == "low_rating":
            yield from rules.low_ratings(
                rule,
                brand,
                _lately(store, brand, model, now, MentionFilter(max_rating=float(rule.max_stars))),
            )
            continue
        elif kind == "high_reach_negative":
            yield from rules.high_reach_negatives(
                rule,
                brand,
                _lately(
                    store,
                    brand,
                    model,
                    now,
                    MentionFilter(label="negative", min_reach=int(rule.min_reach)),
                ),
            )
            continue
        else:  # pragma: no cover - the config refuses unknown rules
            raise ValueError(f"unknown rule {kind!r}")
        if alert:
            yield alert


def _lately(
    store: Storage, brand: str, model: tuple[str, str | None], now: datetime, where: MentionFilter
) -> list[LabelledMention]:
    """Up to LATELY_SCAN_LIMIT of a brand's mentions from LOOKBACK ago to now (a minute ahead:
    a post stamped by a clock slightly fast), for rules that alert on each mention."""
    return store.mentions_between(
        brand,
        *model,
        now - LOOKBACK,
        now + timedelta(minutes=1),
        replace(where, limit=LATELY_SCAN_LIMIT),
    )


def _aspect_share_spike(
    rule: Any,
    aspect: Aspect,
    store: Storage,
    brand: str,
    model: tuple[str, str | None],
    now: datetime,
) -> Alert | None:
    """negative_share_spike among the mentions that name one aspect. Aspects are keyword
    queries matched in Python (as key drivers does), over the window and its baseline only."""
    start = now - rule.window
    rows = store.mentions_between(
        brand,
        *model,
        start - rule.baseline,
        now,
        MentionFilter(labelled=True, include_news=rule.include_news, limit=ASPECT_SCAN_LIMIT),
    )
    about = [m for m in rows if aspect.matches(words(f"{m.title} {m.text}"))]
    cut = iso(start)
    recent = [m for m in about if m.when >= cut]
    older = [m for m in about if m.when < cut]
    return rules.negative_share_spike(
        rule,
        brand,
        _counts(recent),
        _counts(older),
        [m for m in recent if m.label == "negative"][: rules.EXAMPLES],
        now,
    )


def explained(
    rule: Any,
    alert: Alert,
    config: Any,
    store: Storage,
    model: tuple[str, str | None],
    now: datetime,
) -> Alert:
    """The alert with its causes in the evidence (for a spike) and, at the top of the message
    every channel receives, the same plain-words explanation its web page shows."""
    evidence = dict(alert.evidence)
    among = WHY_AMONG.get(rule.rule)
    if among is not None and alert.brand:
        found = _why(rule, among, alert.brand, config, store, model, now)
        if found:
            evidence["causes"] = found
    said = explain(alert.rule, evidence, alert.brand)
    message = "\n\n".join(p for p in (said, alert.message) if p)
    return replace(alert, evidence=evidence, message=message)


def _why(
    rule: Any,
    among: MentionFilter,
    brand: str,
    config: Any,
    store: Storage,
    model: tuple[str, str | None],
    now: datetime,
) -> dict[str, list[dict[str, Any]]]:
    start = now - rule.window
    where = replace(among, include_news=getattr(rule, "include_news", True))
    window = store.mentions_between(
        brand, *model, start, now, replace(where, limit=WHY_WINDOW_LIMIT)
    )
    baseline = store.mentions_between(
        brand, *model, start - rule.baseline, start, replace(where, limit=WHY_BASELINE_LIMIT)
    )
    aspects = aspect_matchers(config.aspects)
    about = next((a for a in aspects if a.name == getattr(rule, "aspect", None)), None)
    if about is not None:  # an aspect's spike: its causes among the mentions naming it
        window, baseline = (
            [m for m in ms if about.matches(words(f"{m.title} {m.text}"))]
            for ms in (window, baseline)
        )
    return causes(
        window,
        baseline,
        brand_words=words(brand),
        aspects=aspects,
        skip_aspect=about.name if about else None,
    )


def _counts(mentions: list[LabelledMention]) -> LabelCounts:
    labels = [m.label for m in mentions]
    return LabelCounts(labels.count("negative"), labels.count("neutral"), labels.count("positive"))


def evaluate(
    config: Any, store: Storage, model: tuple[str, str | None], now: datetime | None = None
) -> list[Alert]:
    """Every rule, every brand or source it covers; cooldown per rule and scope."""
    now = now or utcnow()
    fired: list[Alert] = []
    for rule in config.alerts:
        quiet = rule.quiet_for()
        proposed = list(candidates(rule, config, store, model, now))
        # Most candidates of a standing condition (an overdue reply) fired on an earlier pass.
        known = store.known_alerts([a.dedupe_key for a in proposed])
        for alert in proposed:
            if alert.dedupe_key in known:
                continue
            if quiet and rules.in_cooldown(store.last_alert_at(rule.id, alert.scope), quiet, now):
                continue
            alert = explained(rule, alert, config, store, model, now)
            if store.add_alert(alert, rule.notify, now):
                log.warning("alert: %s", alert.title)
                fired.append(alert)
    return fired
