"""Metrics on constructed data with known answers, and exports that read back equal."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from listener.cli import cli
from listener.export import mention_batches, mention_rows, write_jsonl, write_parquet, write_rows
from listener.metrics import (
    DEFAULT_ASPECTS,
    aspect_matchers,
    key_drivers,
    sentiment_table,
    share_of_voice,
)
from listener.storage import ExportFilter
from listener.timeutil import parse_iso
from sentiment.base import Prediction
from sentiment.fusion import Verdict
from tests.history import MODEL, NOW, History, Post

D, H = timedelta(days=1), timedelta(hours=1)


@pytest.fixture
def data(store):
    hist = History(store, sources=("general",), tied={"acme-app": "Acme"})
    # Day 1 (2 days ago): Acme 2 negative, 1 positive; ratings 1, 5, 4
    hist.add(
        Post("negative", 2 * D, rating=1, source="acme-app", text="delivery late again"),
        Post("positive", 2 * D, rating=5, source="acme-app", text="great service"),
        Post("negative", 2 * D, rating=4, source="general", text="price too high", language="en"),
    )
    # Day 2 (yesterday): Acme 1 positive, 1 neutral; Globex 3 on the general source
    hist.add(
        Post("positive", D, source="general", text="love the price", language="fi"),
        Post("neutral", D, source="general", text="store opens at 9"),
        *[
            Post("negative", D, source="general", brand="Globex", text="globex delivery")
            for _ in range(3)
        ],
    )
    return store


def test_daily_sentiment_table(data):
    rows = {(r["period"], r["brand"]): r for r in sentiment_table(data, MODEL, period="day")}
    day1 = rows[("2026-11-18", "Acme")]
    assert (day1["volume"], day1["negative"], day1["positive"]) == (3, 2, 1)
    assert day1["net_sentiment"] == round((1 - 2) / 3, 4)
    assert day1["csat"] == round(2 / 3, 4)  # 5 and 4 of three ratings
    assert day1["avg_rating"] == round(10 / 3, 3)
    assert day1["nps"] == 0.0  # one 5 (promoter), one 1 (detractor), one 4 (passive)
    day2 = rows[("2026-11-19", "Acme")]
    assert (day2["volume"], day2["net_sentiment"], day2["csat"]) == (2, 0.5, None)
    assert rows[("2026-11-19", "Globex")]["net_sentiment"] == -1.0


def test_weekly_by_language_and_brand_filter(data):
    rows = sentiment_table(data, MODEL, period="week", by="language", brands=["Acme"])
    assert {r["period"] for r in rows} == {"2026-11-16"}  # the Monday of that week
    assert {r["language"]: r["volume"] for r in rows} == {None: 3, "en": 1, "fi": 1}


def test_share_of_voice_counts_only_general_sources(data):
    rows = share_of_voice(data, "Acme", ["Globex"], period="month")
    sov = {r["brand"]: (r["volume"], r["share_of_voice"]) for r in rows}
    # Acme's two app reviews are left out: the app source is collected for Acme only
    assert sov == {"Acme": (3, 0.5), "Globex": (3, 0.5)}


def test_key_drivers(data):
    drivers = {
        d["aspect"]: d
        for d in key_drivers(data, MODEL, aspect_matchers(DEFAULT_ASPECTS), brand="Acme")
    }
    assert drivers["delivery"]["negative_share"] == 0.5  # 1 of Acme's 2 negatives
    assert drivers["delivery"]["positive_share"] == 0.0
    assert drivers["price"]["negative_share"] == 0.5 and drivers["price"]["positive_share"] == 0.5
    assert drivers["delivery"]["avg_rating_with"] == 1.0
    assert drivers["delivery"]["rating_impact"] == round(1.0 - 4.5, 3)


def test_csv_jsonl_and_parquet_exports_read_back_equal(data, tmp_path):
    rows = list(mention_rows(data, MODEL, ExportFilter(brand="Acme")))
    assert [r["label"] for r in rows][:3] == ["negative", "positive", "negative"]
    assert rows[0]["published_at"] == (NOW - 2 * D).isoformat()
    jsonl = io.StringIO()
    write_jsonl(iter(rows), jsonl)
    assert [json.loads(line) for line in jsonl.getvalue().splitlines()] == rows
    write_rows(iter(rows), "csv", str(tmp_path / "m.csv"))
    with open(tmp_path / "m.csv", encoding="utf-8") as f:
        back = list(csv.DictReader(f))
    assert [(r["id"], r["label"], r["text"]) for r in back] == [
        (str(r["id"]), r["label"], r["text"]) for r in rows
    ]
    write_rows(iter(rows), "parquet", str(tmp_path / "m.parquet"))
    table = pq.read_table(tmp_path / "m.parquet").to_pylist()
    for got, want in zip(table, rows, strict=True):
        assert got["published_at"] == parse_iso(want["published_at"])
        assert {k: v for k, v in got.items() if k not in ("published_at", "fetched_at")} == {
            k: v for k, v in want.items() if k not in ("published_at", "fetched_at")
        }


def test_parquet_from_storage_batches_holds_what_the_rows_hold(data, tmp_path):
    """The Parquet export is built a column at a time from storage batches, not from the
    dict rows CSV and JSON Lines use: both must say the same, corrections, flags,
    probabilities and brand labels included."""
    data.add_correction(2, "negative", by="ana")
    neutral = Prediction("neutral", {"neutral": 0.5, "negative": 0.3, "positive": 0.2}, 0.0)
    data.save_scores(
        *MODEL,
        [(3, neutral, Verdict("neutral", "neutral", needs_review=True))],
        brand_rows=[(3, "Acme", "negative", neutral, "price too high")],
    )
    late = History(data, sources=("backfill",))  # stored last, published before the rest
    late.add(Post("negative", 9 * D, source="backfill", url="https://example.com/backfill"))
    rows = list(mention_rows(data, MODEL))
    assert [r["id"] for r in rows] == [9, 1, 2, 3, 4, 5, 6, 7, 8]  # CSV, JSON Lines: oldest first
    row = {r["id"]: r for r in rows}
    assert row[2]["corrected"] is True and row[2]["label"] == "negative"
    assert row[3]["needs_review"] is True and row[3]["p_neutral"] == 0.5
    assert row[3]["brand_labels"] == "Acme:negative"
    stored_order = mention_batches(data, MODEL, time_order=False)  # as `listener export` does
    assert write_parquet(stored_order, tmp_path / "m.parquet") == 9
    table = pq.read_table(tmp_path / "m.parquet")
    assert table.schema.field("published_at").type.tz == "UTC"  # a time, not text
    got = table.to_pylist()
    assert [r["id"] for r in got] == list(range(1, 10))  # Parquet: the order they were stored
    for back in got:
        want = row[back["id"]] | {
            k: parse_iso(row[back["id"]][k]) for k in ("published_at", "fetched_at")
        }
        assert back == want


def test_corrections_export_to_parquet_keeps_their_own_columns(data, tmp_path):
    data.add_correction(1, "positive", by="ana", note="sarcasm")
    write_rows(data.corrections(), "parquet", str(tmp_path / "c.parquet"))
    [row] = pq.read_table(tmp_path / "c.parquet").to_pylist()
    assert (row["mention_id"], row["label"], row["by"], row["note"]) == (
        1,
        "positive",
        "ana",
        "sarcasm",
    )


def test_export_filters_and_streams(data, tmp_path):
    assert [r["id"] for r in mention_rows(data, MODEL, ExportFilter(label="positive"))] == [2, 4]
    assert [r["id"] for r in mention_rows(data, MODEL, ExportFilter(language="fi"))] == [4]
    assert len(list(mention_rows(data, MODEL, ExportFilter(since=NOW - 1.5 * D)))) == 5
    assert len(list(mention_rows(data, MODEL, ExportFilter(source="acme-app")))) == 2
    assert not isinstance(mention_rows(data, MODEL), list)  # a generator: streamed


def test_export_and_metrics_commands(tmp_path, data, database):
    data.close()
    config = tmp_path / "sources.yaml"
    config.write_text(
        f"database: {database}\nbrands: [{{name: Acme, "
        "competitors: [Globex]}, {name: Globex}]\n"
        "sentiment: {model: m, revision: '1'}\n"
    )
    run = lambda *a: CliRunner().invoke(cli, ["-c", str(config), *a])  # noqa: E731
    result = run(
        "export",
        "--format",
        "parquet",
        "-o",
        str(tmp_path / "x.parquet"),
        "--brand",
        "Acme",
        "--since",
        "2026-11-19",
    )
    assert result.exit_code == 0 and "wrote 2 rows" in result.output
    assert "give a file with -o" in run("export", "--format", "parquet").output
    out = run("metrics", "--period", "month", "--format", "jsonl").output
    assert {json.loads(x)["brand"] for x in out.splitlines()} == {"Acme", "Globex"}
    assert "share_of_voice" in run("sov", "--brand", "Acme").output
    assert "delivery" in run("drivers", "--brand", "Acme").output
    assert "no brand named 'Nope'" in run("sov", "--brand", "Nope").output


def test_views_show_the_model_that_actually_scored(data):
    """With `backend: auto` the offline fallback may have scored everything: views then show
    its labels instead of nothing."""
    assert data.scored_model(MODEL) == MODEL
    assert data.scored_model(("cardiffnlp/never-loaded", "abc")) == MODEL
    rows = sentiment_table(data, data.scored_model(("cardiffnlp/never-loaded", "abc")))
    assert sum(r["negative"] for r in rows) == 5
