"""An idle `listener run` gives the model's memory back and loads it again when work comes."""

from __future__ import annotations

import time
from datetime import timedelta

from listener.pipeline import ClassifierSlot, classify_pending
from sentiment.base import Prediction
from tests.history import History, Post


class Counting:
    """A classifier that counts how often it was loaded."""

    loads = 0
    name, revision, batch_size = "counting", "1", 32

    def __init__(self) -> None:
        Counting.loads += 1

    def classify(self, texts):
        return [Prediction("neutral", {"neutral": 1.0}, 0.0) for _ in texts]


def test_the_model_is_unloaded_after_the_idle_time_and_loaded_again_for_new_work(
    make_config, store
):
    Counting.loads = 0
    config = make_config("brands: [{name: Acme}]\nsentiment: {unload_after: 5m}")
    slot = ClassifierSlot(config, loader=lambda s: Counting())
    history = History(store)
    history.add(Post("neutral", timedelta(hours=1), text="first"))
    assert classify_pending(store, slot) == 1 and Counting.loads == 1

    soon, later = time.monotonic() + 60, time.monotonic() + 6 * 60
    assert not slot.unload_if_idle(soon)  # used a minute ago: kept
    assert slot.unload_if_idle(later)
    assert not slot.unload_if_idle(later)  # nothing left to unload

    assert classify_pending(store, slot) == 0 and Counting.loads == 1  # no work: not loaded
    history.add(Post("negative", timedelta(minutes=5), text="second"))
    assert classify_pending(store, slot) == 1 and Counting.loads == 2
    assert store.db["scores"].count_where("model = 'counting'") == 2


def test_unload_after_null_keeps_the_model_loaded(make_config, store):
    Counting.loads = 0
    config = make_config("brands: [{name: Acme}]\nsentiment: {unload_after: null}")
    slot = ClassifierSlot(config, loader=lambda s: Counting())
    History(store).add(Post("neutral", timedelta(hours=1), text="first"))
    classify_pending(store, slot)
    assert not slot.unload_if_idle(time.monotonic() + 365 * 86400)


def test_the_default_idle_time_is_half_an_hour(make_config):
    config = make_config("brands: [{name: Acme}]")
    assert config.sentiment.unload_after == timedelta(minutes=30)
