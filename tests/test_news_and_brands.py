"""News apart from opinion, and sentiment toward each brand a mention names."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts import engine
from alerts.inbox import sync_inbox
from listener.config import ConfigError, parse_config
from listener.metrics import news_volume, sentiment_table
from listener.pipeline import score_unscored
from listener.query import parse_query
from sentiment.base import Prediction
from sentiment.targets import brand_label, passages
from tests.history import MODEL, NOW, History, Post

H = timedelta(hours=1)


def kinds(yaml_sources: str) -> dict[str, str]:
    config = parse_config(f"brands: [{{name: Acme}}]\nsources: {yaml_sources}\n")
    return {s.name: s.effective_kind() for s in config.sources}


def test_each_source_type_has_a_sensible_kind():
    assert kinds("""
  - {name: gnews, type: rss, url: 'https://news.google.com/rss/search?q=acme', brand: Acme}
  - {name: alerts, type: rss, url: 'https://www.google.com/alerts/feeds/1/2'}
  - {name: blog, type: rss, url: 'https://blog.example.com/feed'}
  - {name: hn, type: rss, url: 'https://hnrss.org/newest?q=acme'}
  - {name: reddit-rss, type: rss, url: 'https://www.reddit.com/search.rss?q=acme'}
  - {name: app-xml, type: rss, url: 'https://itunes.apple.com/us/rss/customerreviews/id=1/xml'}
  - {name: ios, type: appstore, app_id: 1}
  - {name: x, type: x, query: acme}
  - {name: forum, type: rss, url: 'https://forum.example.com/rss', kind: social}
""") == {
        "gnews": "news",
        "alerts": "news",
        "blog": "news",
        "hn": "social",
        "reddit-rss": "social",
        "app-xml": "reviews",
        "ios": "reviews",
        "x": "social",
        "forum": "social",
    }


def test_an_unknown_kind_is_a_config_error_with_its_line():
    with pytest.raises(ConfigError, match=r"sources.yaml:3: sources\[0\]\.kind"):
        parse_config(
            "brands: [{name: Acme}]\nsources:\n"
            "  - {name: s, type: rss, url: 'https://x.example/f', kind: blogs}\n"
        )


@pytest.fixture
def history(store):
    hist = History(store, sources=("social", "news"))
    store.db["sources"].update("news", {"kind": "news"})
    store.db["sources"].update("social", {"kind": "social"})
    return hist


def test_news_never_enters_the_inbox(store, history):
    [news] = history.add(Post("negative", H, source="news", text="Robbery at an Acme store"))
    [post] = history.add(Post("negative", H, source="social", text="Acme lost my parcel"))
    config = parse_config("brands: [{name: Acme}]\n")
    sync_inbox(config, store, MODEL, NOW)
    assert [i["mention_id"] for i in store.inbox()] == [post]
    assert news not in [i["mention_id"] for i in store.inbox(status=None)]


@pytest.mark.parametrize("include_news", [False, True])
def test_streaks_and_spikes_skip_news_unless_asked(store, history, include_news):
    history.add(*[Post("negative", H + i * timedelta(minutes=5), source="news") for i in range(3)])
    history.add(Post("positive", 2 * H, source="social"))
    config = parse_config(
        "brands: [{name: Acme}]\nalerts:\n"
        f"  - {{rule: negative_streak, count: 3, include_news: {str(include_news).lower()}}}\n"
    )
    fired = engine.evaluate(config, store, MODEL, NOW)
    assert bool(fired) == include_news


def test_metrics_show_news_apart(store, history):
    history.add(*[Post("negative", H, source="news") for _ in range(3)])
    history.add(Post("positive", H, source="social"), Post("negative", H, source="social"))
    [opinion] = sentiment_table(store, MODEL, period="all")
    assert (opinion["volume"], opinion["net_sentiment"]) == (2, 0.0)  # news left out
    by_kind = {r["kind"]: r for r in sentiment_table(store, MODEL, period="all", by="kind")}
    assert by_kind["news"]["negative"] == 3 and by_kind["social"]["volume"] == 2
    [everything] = sentiment_table(store, MODEL, period="all", include_news=True)
    assert everything["volume"] == 5
    assert news_volume(store) == {"Acme": 3}


MATCHERS = {"Orvia": parse_query("orvi*"), "Zentra": parse_query("zentr*")}


@pytest.mark.parametrize(
    ("text", "orvia", "zentra"),
    [
        ("Орвия в сто раз лучше Зентры", +1, -1),  # ru: Orvia is a hundred times better
        ("Zentra is way worse than Orvia", +1, -1),
        ("Orvia on palju parem kui Zentra", +1, -1),  # et
        ("Zentra on parempi kuin Orvia", -1, +1),  # fi
        ("Zentra is not better than Orvia", +1, -1),
        ("Orvia e по-добра от Zentra", +1, -1),  # bg
    ],
)
def test_a_comparison_decides_each_brand(text, orvia, zentra):
    matchers = {"Orvia": parse_query("orvi* OR орви*"), "Zentra": parse_query("zentr* OR зентр*")}
    got = {p.brand: p.comparison for p in passages(text, matchers)}
    assert got == {"Orvia": orvia, "Zentra": zentra}


def test_each_brand_gets_the_sentences_that_name_it():
    text = "Zentra charged me twice again. Orvia refunded everything the same day!"
    got = {p.brand: p.text for p in passages(text, MATCHERS)}
    assert got == {
        "Zentra": "Zentra charged me twice again.",
        "Orvia": "Orvia refunded everything the same day!",
    }
    assert brand_label("negative", 0) == "negative" and brand_label("neutral", 1) == "positive"


class KeywordModel:
    """Stands in for a real model: labels a text by its words (tests the plumbing only)."""

    name, revision, batch_size = "m", "1", 32

    def classify(self, texts):
        out = []
        for t in texts:
            low = t.lower()
            label = (
                "negative"
                if any(w in low for w in ("twice", "awful"))
                else "positive"
                if any(w in low for w in ("refund", "better", "love"))
                else "neutral"
            )
            p = {x: 0.1 for x in ("negative", "neutral", "positive")} | {label: 0.8}
            out.append(Prediction(label, p, p["positive"] - p["negative"]))
        return out


def test_a_two_brand_post_is_scored_per_brand_and_metrics_use_it(store):
    hist = History(store, sources=("s",))
    text = "Zentra charged me twice again. Orvia refunded everything the same day!"
    [mid] = hist.add(Post("neutral", H, text=text, brand="Zentra"))
    store.db["mention_brands"].insert({"mention_id": mid, "brand": "Orvia"})
    store.db.execute("DELETE FROM scores")  # scored below, by the pipeline
    assert score_unscored(store, KeywordModel(), 0.5, 32, matchers=MATCHERS) == 1
    rows = {r["brand"]: r for r in store.db.query("SELECT * FROM brand_scores")}
    assert rows["Zentra"]["label"] == "negative" and rows["Orvia"]["label"] == "positive"
    assert rows["Orvia"]["text"] == "Orvia refunded everything the same day!"
    table = {r["brand"]: r for r in sentiment_table(store, MODEL, period="all")}
    assert table["Zentra"]["negative"] == 1 and table["Orvia"]["positive"] == 1
    # One-brand mentions are not scored twice.
    [single] = hist.add(Post("neutral", H, text="I love Orvia", brand="Orvia"))
    store.db.execute("DELETE FROM scores WHERE mention_id = ?", [single])
    score_unscored(store, KeywordModel(), 0.5, 32, matchers=MATCHERS)
    assert store.db["brand_scores"].count_where("mention_id = ?", [single]) == 0
