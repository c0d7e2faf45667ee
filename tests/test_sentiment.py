"""The classifier wrapper on tiny models built here. They say nothing about accuracy."""

from __future__ import annotations

import time

import pytest

from listener.config import Sentiment
from sentiment import ModelUnavailable, load_classifier
from sentiment.base import label_map, normalise_label, prediction_from_probs
from sentiment.preprocess import for_tweet_model, mention_text
from tests.tiny_model import build_tiny_model


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({0: "Negative", 1: "Neutral", 2: "Positive"}, ["negative", "neutral", "positive"]),
        ({0: "NEG", 1: "NEU", 2: "POS"}, ["negative", "neutral", "positive"]),
        ({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, ["negative", "neutral", "positive"]),
        ({0: "LABEL_0", 1: "LABEL_1"}, ["negative", "positive"]),
        (
            {i: f"{i + 1} star{'s' if i else ''}" for i in range(5)},
            ["negative", "negative", "neutral", "positive", "positive"],
        ),
    ],
)
def test_label_schemes_normalise(labels, expected):
    assert label_map(labels) == expected


def test_unknown_label_is_a_clear_error():
    with pytest.raises(ValueError, match="'joy'"):
        normalise_label("joy", 0, 4)


def test_star_probabilities_are_summed_per_label():
    p = prediction_from_probs(
        [0.1, 0.3, 0.2, 0.3, 0.1], ["negative", "negative", "neutral", "positive", "positive"]
    )
    assert p.label == "negative"
    assert p.scores == {"negative": 0.4, "neutral": 0.2, "positive": 0.4}
    assert p.score == 0.0


def test_tweet_preprocessing_masks_users_and_links():
    assert for_tweet_model("@acme_help fix it https://t.co/x now") == "@user fix it http now"
    assert mention_text("Broken", "Broken again, please help") == "Broken again, please help"
    assert mention_text("Title", "") == "Title"


def test_local_model_loads_and_classifies_batches_of_any_length(tmp_path):
    path = build_tiny_model(tmp_path / "tiny")
    clf = load_classifier(Sentiment(model=str(path), batch_size=2))
    assert clf.revision == "local"
    texts = ["good service", "", "bad " * 5000, "😀😀😀", "слабо добре huono جيد"]
    preds = clf.classify(texts)
    assert len(preds) == len(texts)
    for p in preds:
        assert p.label in ("negative", "neutral", "positive")
        assert abs(sum(p.scores.values()) - 1) < 1e-4
        assert -1 <= p.score <= 1
    # order is kept although batches are sorted by length
    assert clf.classify([texts[4], texts[0]]) == [preds[4], preds[0]]


def test_forced_tiny_model_gives_that_label(tmp_path):
    path = build_tiny_model(tmp_path / "neg", force="negative")
    [p] = load_classifier(Sentiment(model=str(path))).classify(["good"])
    assert p.label == "negative" and p.score < -0.99


def test_missing_model_fails_fast_with_a_message_naming_it(tmp_path):
    start = time.monotonic()
    with pytest.raises(ModelUnavailable) as info:
        load_classifier(
            Sentiment(model="example-org/no-such-model", revision="abc123", backend="transformers")
        )
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "'example-org/no-such-model' (revision abc123)" in message
    assert "sentiment.model" in message


def test_broken_local_directory_is_a_clear_error(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(ModelUnavailable, match="could not be loaded"):
        load_classifier(Sentiment(model=str(tmp_path / "broken"), backend="transformers"))


def test_empty_text_is_neutral_without_the_model(tmp_path):
    path = build_tiny_model(tmp_path / "neg", force="negative")
    clf = load_classifier(Sentiment(model=str(path)))
    empty, emoji = clf.classify(["   ", "😡"])
    assert empty.label == "neutral" and empty.scores["neutral"] == 1.0
    assert emoji.label == "negative"  # emoji-only text is scored by the model


def test_long_texts_can_be_scored_by_chunks(tmp_path):
    path = build_tiny_model(tmp_path / "tiny", max_len=16)
    truncating = load_classifier(Sentiment(model=str(path), dtype="float32"))
    chunking = load_classifier(
        Sentiment(model=str(path), dtype="float32", long_texts="chunks", max_chunks=3)
    )
    pieces = chunking._encode(["good " * 100, "bad"])
    assert [owner for owner, _ in pieces] == [0, 0, 0, 1]  # capped at max_chunks
    assert all(len(ids) <= 16 for _, ids in pieces)
    long_text = "good service " * 3 + "bad price " * 30
    [head] = truncating.classify([long_text])
    [whole] = chunking.classify([long_text])
    assert head.scores != whole.scores  # the rest of the text now counts
    short = "good service"
    assert truncating.classify([short]) == chunking.classify([short])


def test_token_ids_from_the_rust_backend_match_transformers(tmp_path):
    """Classify asks the fast tokenizer's backend directly (for speed); it must give the very
    ids transformers would, special tokens and truncation included, in every script."""
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    from sentiment.e5_offline import xlmr_tokenizer, xlmr_tokenizer_file
    from sentiment.transformers_classifier import TransformersClassifier

    tok = xlmr_tokenizer(xlmr_tokenizer_file())
    config = XLMRobertaConfig(
        vocab_size=len(tok),
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=514,
        pad_token_id=1,
        num_labels=3,
    )
    XLMRobertaForSequenceClassification(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    clf = TransformersClassifier(str(tmp_path), max_length=64, dtype="float32")
    texts = [
        "Delivery late again 😡 @acme",
        "Обслужването беше ужасно",
        "Palvelu oli hyvää",
        "الخدمة ممتازة",
        "Teenindus oli aeglane",
        "слишком дорого " * 100,
        "a",
    ]
    expected = tok(texts, truncation=True, max_length=64)["input_ids"]
    assert clf._token_ids(texts) == expected
    assert len(expected[5]) == 64 and expected[5][-1] == tok.eos_token_id
    # and padding a batch changes nothing: each text scores as it does alone
    together = clf.classify(texts)
    for text, prediction in zip(texts, together, strict=True):
        [alone] = clf.classify([text])
        assert alone.label == prediction.label
        assert all(abs(alone.scores[k] - prediction.scores[k]) < 1e-5 for k in alone.scores)
