"""Every rule on constructed histories with a fixed clock: fires, does not fire, cooldown,
minimum sample, exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts import engine
from listener.config import parse_config
from tests.history import MODEL, NOW, History, Post

H, M, D = timedelta(hours=1), timedelta(minutes=1), timedelta(days=1)


def config_with(rule: str, tmp_path, sources: str = "[]"):
    return parse_config(
        f"brands: [{{name: Acme}}]\nsources: {sources}\nalerts: [{rule}]\n", base_dir=tmp_path
    )


def fire(config, store, now=NOW):
    return engine.evaluate(config, store, MODEL, now)


@pytest.fixture
def hist(store):
    return History(store)


def test_streak_per_source_counts_only_that_source(store, hist, tmp_path):
    cfg = config_with(
        "{rule: negative_streak, count: 2, source: s}",
        tmp_path,
        "[{name: s, type: rss, url: 'http://x/'}, {name: t, type: rss, kind: social, "
        "url: 'http://y/'}]",
    )
    hist.add(
        Post("negative", 3 * M, source="s"),
        Post("positive", 2 * M, source="t"),
        Post("negative", 1 * M, source="s"),
    )
    [alert] = fire(cfg, store)
    assert alert.title == "Acme: 2 negative mentions in a row on s"


def spike_history(hist, window_neg: int, window_total: int, base_neg: int, base_total: int):
    for i in range(base_total):
        hist.add(Post("negative" if i < base_neg else "positive", 2 * H + i * M))
    for i in range(window_total):
        hist.add(Post("negative" if i < window_neg else "neutral", (i + 1) * M))


SPIKE = "{rule: negative_share_spike, window: 1h, baseline: 12h, min_sample: 10, factor: 2}"


def test_share_spike_fires_with_its_evidence(store, hist, tmp_path):
    spike_history(hist, window_neg=8, window_total=12, base_neg=5, base_total=50)
    [alert] = fire(config_with(SPIKE, tmp_path), store)
    assert alert.title == "Acme: 67% negative in the last 1 h (usually 10%)"
    ev = alert.evidence
    assert (ev["window_negative"], ev["window_total"]) == (8, 12)
    assert (ev["baseline_negative"], ev["baseline_total"]) == (5, 50)
    assert len(alert.mention_ids) == 5 and "https://example.com/" in alert.message


def test_share_spike_needs_a_minimum_sample(store, hist, tmp_path):
    spike_history(hist, window_neg=3, window_total=3, base_neg=5, base_total=50)
    assert fire(config_with(SPIKE, tmp_path), store) == []  # 100 % of 3 is not a spike


def test_share_spike_is_relative_to_the_brands_own_baseline(store, hist, tmp_path):
    spike_history(hist, window_neg=7, window_total=12, base_neg=30, base_total=50)
    assert fire(config_with(SPIKE, tmp_path), store) == []  # 58 % against a usual 60 %


def test_cooldown_and_once_per_window(store, hist, tmp_path):
    cfg = config_with(SPIKE.replace("}", ", cooldown: 3h}"), tmp_path)
    spike_history(hist, window_neg=8, window_total=12, base_neg=5, base_total=50)
    assert len(fire(cfg, store)) == 1
    assert fire(cfg, store, NOW + 5 * M) == []  # same window
    hist.add(
        *[
            Post(
                "negative",
                i * M,
            )
            for i in range(1, 12)
        ],
        now=NOW + 2 * H,
    )
    assert fire(cfg, store, NOW + 2 * H) == []  # still spiking, but inside the cooldown
    hist.add(*[Post("negative", i * M) for i in range(1, 12)], now=NOW + 4 * H)
    assert len(fire(cfg, store, NOW + 4 * H)) == 1


def test_share_spike_about_one_aspect_counts_only_mentions_naming_it(store, hist, tmp_path):
    """Complaints about delivery doubling are news even when the brand's overall share of
    negatives barely moves, in any language the aspect lists keywords for."""
    rule = SPIKE.replace("}", ", aspect: delivery, min_sample: 5, name: delivery-spike}")
    cfg = config_with(f"{rule}, {SPIKE}", tmp_path)
    for i in range(40):  # baseline: happy about delivery, some other gripes
        text = "quick delivery, thanks" if i < 10 else ("bad price" if i < 15 else "fine")
        hist.add(Post("negative" if 10 <= i < 15 else "positive", 2 * H + i * M, text=text))
    for i, text in enumerate(
        [
            "delivery late again",
            "toimitus myöhässä taas",
            "доставка опоздала на неделю",
            "the package never came",
            "куриерът не дойде",
        ]
    ):
        hist.add(Post("negative", (i + 1) * M, text=text))
    for i in range(15):
        hist.add(Post("positive", (10 + i) * M, text="love the product"))
    [alert] = fire(cfg, store)  # the brand-wide spike does not fire: 25% against 12%
    assert alert.rule_id == "delivery-spike" and alert.scope == "Acme / delivery"
    assert alert.title == "Acme: 100% negative about delivery in the last 1 h (usually 0%)"
    assert alert.evidence["aspect"] == "delivery"
    assert (alert.evidence["window_negative"], alert.evidence["window_total"]) == (5, 5)
    assert (alert.evidence["baseline_negative"], alert.evidence["baseline_total"]) == (0, 10)
    assert len(alert.mention_ids) == 5 and "package never came" in alert.message
    assert fire(cfg, store, NOW + 5 * M) == []  # once per window


def test_an_unknown_aspect_is_a_config_error_naming_the_rule(tmp_path):
    from listener.config import ConfigError

    with pytest.raises(ConfigError, match=r"alerts\[0\]\.aspect.*no aspect named 'shipping'"):
        config_with(SPIKE.replace("}", ", aspect: shipping}"), tmp_path)


def test_volume_spike(store, hist, tmp_path):
    cfg = config_with(
        "{rule: volume_spike, window: 1h, baseline: 12h, min_sample: 5, factor: 3}", tmp_path
    )
    hist.add(*[Post("neutral", 2 * H + i * H) for i in range(10)])  # ~1 an hour usually
    assert fire(cfg, store) == []
    hist.add(*[Post("neutral", i * M) for i in range(1, 7)])
    [alert] = fire(cfg, store)
    assert alert.evidence["count"] == 6 and alert.title.startswith("Acme: 6 mentions")


def test_silence_of_a_source_that_used_to_yield(store, hist, tmp_path):
    cfg = config_with(
        "{rule: silence, baseline: 1d, factor: 2, min_silence: 2h, min_history: 5}",
        tmp_path,
        "[{name: s, type: rss, url: 'http://x/'}, {name: t, type: rss, kind: social, "
        "url: 'http://y/'}]",
    )
    hist.add(*[Post("neutral", 10 * H + i * H) for i in range(12)])  # every hour, then quiet
    hist.add(Post("neutral", 30 * M), Post("neutral", 20 * M, source="t"))
    alerts = fire(cfg, store)
    assert alerts == []  # s yielded 30 min ago; t has too little history
    alerts = fire(cfg, store, NOW + 5 * H)
    assert [a.scope for a in alerts] == ["s"]
    assert alerts[0].title.startswith("s: no new mentions for 5.5 h")


def test_low_rating_and_high_reach_fire_once_per_mention(store, hist, tmp_path):
    cfg = parse_config(
        "brands: [{name: Acme}]\nalerts: [{rule: low_rating, max_stars: 2}, "
        "{rule: high_reach_negative, min_reach: 1000}]\n",
        base_dir=tmp_path,
    )
    hist.add(
        Post("negative", H, rating=1),
        Post("positive", H, rating=5),
        Post("negative", H, reach=50_000),
        Post("negative", H, reach=10),
        Post("negative", 5 * D, rating=1),
    )  # too old to be news
    titles = sorted(a.title for a in fire(cfg, store))
    assert titles == ["Acme: 1★ review", "Acme: negative mention with reach 50,000"]
    assert fire(cfg, store) == []  # once


def test_rating_drop(store, hist, tmp_path):
    cfg = config_with(
        "{rule: rating_drop, window: 1d, baseline: 14d, min_sample: 3, drop: 0.5}", tmp_path
    )
    hist.add(*[Post("positive", 2 * D + i * H, rating=5) for i in range(10)])
    hist.add(Post("positive", H, rating=5), Post("negative", 2 * H, rating=2))
    assert fire(cfg, store) == []  # only 2 ratings in the window
    hist.add(Post("negative", 3 * H, rating=1))
    [alert] = fire(cfg, store)
    assert alert.title == "Acme: average rating 2.7★ in the last 1 d (usually 5.0★)"


def test_exactly_once_across_a_crash_and_a_retry(store, hist, tmp_path, monkeypatch):
    """A pass that dies after storing an alert, before delivering it: the retry delivers it
    once and fires nothing new."""
    from alerts.notifiers import build_notifier
    from listener.pipeline import deliver_pending

    cfg = config_with("{rule: negative_streak, count: 2}", tmp_path)
    hist.add(Post("negative", 2 * M), Post("negative", M))
    assert len(fire(cfg, store)) == 1  # ...and the process dies here
    assert fire(cfg, store) == []  # the retried pass
    sent = []

    class Recorder:
        name = "console"

        def send(self, title, body):
            sent.append(title)

    monkeypatch.setattr("alerts.notifiers.NOTIFIERS", {"console": lambda n, u: Recorder()})
    channels = {"console": build_notifier("console", "console://")}
    assert deliver_pending(store, channels) == (1, [])
    assert deliver_pending(store, channels) == (0, [])
    assert sent == ["Acme: 2 negative mentions in a row"]


def test_unknown_rule_and_duplicate_names_are_config_errors(tmp_path):
    from listener.config import ConfigError

    with pytest.raises(ConfigError, match=r"alerts\[0\].rule: unknown rule 'gut_feeling'"):
        config_with("{rule: gut_feeling}", tmp_path)
    with pytest.raises(ConfigError, match="two rules named 'low_rating'"):
        parse_config("brands: [{name: A}]\nalerts: [{rule: low_rating}, {rule: low_rating}]\n")
