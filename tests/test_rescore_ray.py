"""Re-scoring on Ray Data: a local Ray instance (loopback only) and a tiny model on CPU. The
scores it stores are the ones `listener rescore` stores without Ray, each mention once."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from click.testing import CliRunner

from listener.cli import cli
from listener.config import Sentiment
from listener.pipeline import score_unscored
from listener.query import parse_query
from listener.storage import open_store
from sentiment import load_classifier
from tests.history import History, Post
from tests.tiny_model import build_tiny_model

ray = pytest.importorskip("ray", reason="Ray is an extra: pip install 'listener[ray]'")

TEXTS = [
    "Acme lost my parcel again",
    "Globex is fine, Acme is terrible",
    "great support from Acme today",
    "Acme app opens",
    "Acme, you charged me twice",
] * 30  # 150 mentions: several read stretches and batches
MATCHERS = {"Acme": parse_query("acme"), "Globex": parse_query("globex")}


@pytest.fixture(scope="module")
def local_ray():
    """One Ray instance for the module: starting one takes seconds."""
    import os

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("ray") / "model")  # varied, text-dependent


def history(store) -> list[int]:
    ids = History(store).add(
        *[
            Post("neutral", timedelta(minutes=i + 1), text=f"{t} ({i})", title="")
            for i, t in enumerate(TEXTS)
        ]
    )
    # The mentions that name Globex too get a score per brand, each on its own passage.
    store.db["mention_brands"].insert_all(
        {"mention_id": mid, "brand": "Globex"}
        for mid, t in zip(ids, TEXTS, strict=True)
        if "Globex" in t
    )
    return ids


def scores(store, model_name: str) -> dict[int, tuple[str, str, float]]:
    return {
        r["mention_id"]: (r["label"], r["text_label"], r["score"])
        for r in store.db.query(
            "SELECT mention_id, label, text_label, score FROM scores WHERE model = ?", [model_name]
        )
    }


def brand_scores(store) -> dict[tuple[int, str], tuple[str, str]]:
    return {
        (r["mention_id"], r["brand"]): (r["label"], r["text"])
        for r in store.db.query("SELECT mention_id, brand, label, text FROM brand_scores")
    }


def test_ray_stores_what_the_local_rescore_stores_each_mention_once(
    local_ray, model, database, tmp_path
):
    from listener.rescore_ray import rescore_on_ray

    settings = Sentiment(backend="transformers", model=str(model))
    store = open_store(database)
    ids = history(store)
    reference = open_store(tmp_path / "reference.db")
    assert history(reference) == ids
    classifier = load_classifier(settings)
    score_unscored(reference, classifier, 0.5, 32, matchers=MATCHERS)

    done = rescore_on_ray(
        database, settings, MATCHERS, actors=2, batch_size=16, stretch=40, limit=None
    )
    assert (done.scored, done.failed) == (len(ids), 0)
    got, want = scores(store, str(model)), scores(reference, str(model))
    assert got.keys() == want.keys() == set(ids)
    assert brand_scores(store) == brand_scores(reference) and len(brand_scores(store)) == 60
    for mid, (label, text_label, score) in got.items():
        assert (label, text_label) == want[mid][:2]
        assert math.isclose(score, want[mid][2], abs_tol=1e-4)
    # Nothing left: a second run scores nothing and stores no second copy.
    again = rescore_on_ray(database, settings, MATCHERS, actors=1)
    assert again.scored == 0
    assert len(list(store.db.query("SELECT 1 FROM scores WHERE model = ?", [str(model)]))) == len(
        ids
    )
    store.close()
    reference.close()


def test_rescore_cli_on_ray_with_a_limit(local_ray, model, database, tmp_path):
    store = open_store(database)
    ids = history(store)
    store.close()
    config = tmp_path / "sources.yaml"
    config.write_text(f"database: {database}\nbrands: [{{name: Acme}}]\n")
    run = CliRunner().invoke(
        cli, ["-c", str(config), "rescore", "--model", str(model), "--ray", "--limit", "50"]
    )
    assert run.exit_code == 0, run.output
    assert f"scored 50 mentions with {model} (local) on Ray" in run.output
    rest = CliRunner().invoke(cli, ["-c", str(config), "rescore", "--model", str(model), "--ray"])
    assert f"scored {len(ids) - 50} mentions" in rest.output
    missing = CliRunner().invoke(
        cli, ["-c", str(config), "rescore", "--model", str(tmp_path / "nowhere"), "--ray"]
    )
    assert missing.exit_code == 1 and "nowhere" in missing.output
