"""Language, rating fusion, review flags, corrections and rescoring: the issue-3 behaviours."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from listener.changes import cli_actor
from listener.cli import cli
from listener.config import Sentiment
from listener.storage import open_store
from sentiment import load_classifier
from sentiment.base import Prediction
from sentiment.fusion import fuse, verdict
from sentiment.language import LanguageDetector
from tests.tiny_model import build_tiny_model

SENTENCES = {
    "en": "The delivery was late again and nobody from customer support answered my emails.",
    "bg": "Доставката отново закъсня и никой от обслужването на клиенти не отговори.",
    "et": "Tarne hilines jälle ja keegi klienditoest ei vastanud minu kirjadele.",
    "fi": "Toimitus myöhästyi taas eikä kukaan asiakaspalvelusta vastannut viesteihini.",
    "ar": "تأخر التوصيل مرة أخرى ولم يرد أحد من خدمة العملاء على رسائلي.",
    "ru": "Доставка снова опоздала, и никто из службы поддержки не ответил на мои письма.",
}


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


def test_language_detection_in_six_languages(detector):
    assert detector.detect(list(SENTENCES.values())) == list(SENTENCES)


def test_too_short_to_tell_is_unknown_not_a_guess(detector):
    assert detector.detect(["ok", "😍😍", ""]) == [None, None, None]


def test_a_few_words_are_read_by_lingua_not_by_the_fast_model(detector):
    # fastText reads these as Swedish with 0.86-0.93 confidence; only longer texts are its.
    assert detector.detect(["Tänan väga", "Väga hea"]) == ["et", "et"]


def test_a_broken_character_does_not_stop_detection(detector):
    text = "\ud800 Toimitus myöhästyi taas eikä kukaan vastannut viesteihini."
    assert detector.detect([text]) == ["fi"]


def test_only_configured_languages_are_answered():
    german = "Die Lieferung kam wieder zu spät und niemand vom Kundendienst hat geantwortet."
    assert LanguageDetector(["de", "en"]).detect([german]) == ["de"]
    assert LanguageDetector(["en", "fi"]).detect([german])[0] in ("en", "fi", None)


@pytest.mark.parametrize(
    ("text_label", "rating", "final"),
    [
        ("positive", 1, "negative"),
        ("neutral", 2, "negative"),
        ("negative", 2, "negative"),
        ("positive", 3, "neutral"),
        ("neutral", 3, "neutral"),
        ("negative", 3, "negative"),
        ("negative", 5, "neutral"),
        ("neutral", 4, "positive"),
        ("positive", 5, "positive"),
        ("negative", None, "negative"),
        ("positive", None, "positive"),
    ],
)
def test_rating_fusion(text_label, rating, final):
    assert fuse(text_label, rating) == final


def _p(neg: float, neu: float, pos: float) -> Prediction:
    scores = {"negative": neg, "neutral": neu, "positive": pos}
    return Prediction(max(scores, key=scores.__getitem__), scores, pos - neg)


def test_needs_review_when_unsure_or_when_stars_and_words_clash():
    assert verdict(_p(0.4, 0.3, 0.3), None, 0.5).needs_review  # unsure
    assert not verdict(_p(0.8, 0.1, 0.1), None, 0.5).needs_review
    polite_one_star = verdict(_p(0.05, 0.05, 0.9), 1, 0.5)
    assert polite_one_star.needs_review
    assert (polite_one_star.label, polite_one_star.text_label) == ("negative", "positive")


def test_quantized_path_runs_and_says_so(tmp_path):
    path = build_tiny_model(tmp_path / "m")
    fp32 = load_classifier(Sentiment(model=str(path), dtype="float32"))
    int8 = load_classifier(Sentiment(model=str(path), quantize=True))
    assert (fp32.dtype, int8.dtype) == ("float32", "int8 (dynamic)")
    texts = ["good service", "bad price", "huono hyvä"]
    assert len(int8.classify(texts)) == 3


@pytest.fixture
def project(tmp_path, httpserver, database):
    """Reviews with ratings and a hint-less Finnish post; a local model forcing 'positive'."""
    model = build_tiny_model(tmp_path / "pos", force="positive")
    feed = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:im="http://itunes.apple.com/rss">
<entry><id>urn:review:r1</id><title>Thanks</title><im:rating>1</im:rating>
<content type="text">Thank you so much for nothing, the app deleted my playlists.</content></entry>
<entry><id>urn:review:r2</id><title>Great</title><im:rating>5</im:rating>
<content type="text">Works well and the new design is lovely to use every day.</content></entry>
<entry><id>urn:review:r3</id><title>Huono</title>
<content type="text">Sovellus kaatuu joka kerta kun yritan kuunnella musiikkia autossa.
</content></entry>
<entry xml:lang="de"><id>urn:review:r4</id><title>Gut</title>
<content type="text">Alles gut.</content></entry>
</feed>"""
    httpserver.expect_request("/reviews.xml").respond_with_data(
        feed, content_type="application/atom+xml"
    )
    (tmp_path / "sources.yaml").write_text(f"""
database: {database}
brands: [{{name: Acme}}]
sources: [{{name: reviews, type: rss, kind: social, url: '{httpserver.url_for("/reviews.xml")}',
            brand: Acme}}]
alerts: [{{rule: negative_streak, count: 2}}]
sentiment: {{model: '{model}'}}
""")
    return tmp_path


def invoke(project, *args):
    return CliRunner().invoke(
        cli, ["-c", str(project / "sources.yaml"), *args], catch_exceptions=False
    )


def rows(project, sql):
    from listener.config import load_config

    store = open_store(load_config(project / "sources.yaml").database_url())
    try:
        return list(store.db.query(sql))
    finally:
        store.close()


def test_pipeline_stores_language_rating_fusion_and_review_flags(project):
    assert invoke(project, "collect", "--once").exit_code == 0
    got = {
        r["external_id"].removeprefix("urn:review:"): r
        for r in rows(
            project,
            (
                "SELECT m.external_id, m.language, m.language_source, m.rating, s.label, "
                "s.text_label, s.needs_review FROM mentions m JOIN scores s ON s.mention_id = m.id"
            ),
        )
    }
    assert (got["r1"]["rating"], got["r1"]["label"], got["r1"]["text_label"]) == (
        1.0,
        "negative",
        "positive",
    )
    assert got["r1"]["needs_review"] == 1  # one star, "positive" words
    assert (got["r2"]["label"], got["r2"]["needs_review"]) == ("positive", 0)
    assert (got["r3"]["language"], got["r3"]["language_source"]) == ("fi", "detected")
    assert (got["r4"]["language"], got["r4"]["language_source"]) == ("de", "hint")


def test_corrections_override_the_model_and_export_as_training_data(project):
    invoke(project, "collect", "--once")
    ids = {
        r["external_id"].removeprefix("urn:review:"): r["id"]
        for r in rows(project, "SELECT id, external_id FROM mentions")
    }
    assert rows(project, "SELECT count(*) AS n FROM alerts")[0]["n"] == 0
    out = invoke(project, "label", str(ids["r3"]), "negative", "--by", "maria").output
    assert "is now negative" in out
    invoke(project, "label", str(ids["r4"]), "negative")
    invoke(project, "collect", "--once")  # the streak now sees two human negatives
    assert rows(project, "SELECT count(*) AS n FROM alerts")[0]["n"] == 1
    mentions = [json.loads(x) for x in invoke(project, "mentions", "--json").output.splitlines()]
    assert {m["id"]: m["label"] for m in mentions}[ids["r3"]] == "negative"

    out = invoke(project, "export", "--corrections", "--format", "jsonl").output
    exported = [json.loads(x) for x in out.splitlines()]
    assert [(e["mention_id"], e["label"], e["by"]) for e in exported] == [
        (ids["r3"], "negative", "maria"),
        (ids["r4"], "negative", cli_actor()),  # who ran the command, when no --by
    ]
    assert "kaatuu" in exported[0]["text"] and exported[0]["language"] == "fi"
    assert "=positive" in exported[0]["model_labels"]
    as_csv = list(
        csv.DictReader(
            io.StringIO(invoke(project, "export", "--corrections", "--format", "csv").output)
        )
    )
    assert [r["label"] for r in as_csv] == ["negative", "negative"]


def test_label_unknown_mention_is_a_clear_error(project):
    result = CliRunner().invoke(
        cli, ["-c", str(project / "sources.yaml"), "label", "999", "negative"]
    )
    assert result.exit_code == 1 and "no mention with id 999" in result.output


def test_rescore_keeps_both_models_scores(project, tmp_path):
    invoke(project, "collect", "--once")
    other = build_tiny_model(tmp_path / "neg", force="negative")
    out = invoke(project, "rescore", "--model", str(other)).output
    assert "scored 4 mentions" in out
    models = rows(project, "SELECT DISTINCT model, mention_id, text_label FROM scores")
    by_model: dict[str, list[str]] = {}
    for m in models:
        by_model.setdefault(m["model"], []).append(m["text_label"])
    assert sorted(by_model.values()) == [["negative"] * 4, ["positive"] * 4]
    assert "scored 0 mentions" in invoke(project, "rescore", "--model", str(other)).output


def test_model_info_shows_what_is_loaded(project):
    out = invoke(project, "model", "info").output
    assert "Negative -> negative, Neutral -> neutral, Positive -> positive" in out
    assert "device:     cpu" in out
    assert "dtype:      float32" in out or "dtype:      bfloat16" in out  # bf16 if native
    assert "revision:   local" in out


def test_model_download_offline_fails_fast_and_clearly(project, monkeypatch):
    monkeypatch.setattr("sentiment.transformers_classifier.hub_reachable", lambda: False)
    result = CliRunner().invoke(
        cli, ["-c", str(project / "sources.yaml"), "model", "download", str(project / "dl")]
    )
    assert result.exit_code == 1 and "cannot reach the Hugging Face Hub" in result.output
