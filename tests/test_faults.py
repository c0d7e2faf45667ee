"""Faults a monitor meets in the wild: each bounded, reported on its own source, nothing lost."""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta

import pytest
from werkzeug import Request, Response

from listener.pipeline import ClassifierSlot, classify_pending, collect_due
from listener.timeutil import utcnow
from sentiment.base import Prediction
from sources import http as source_http
from sources.http import make_client
from tests.conftest import rss

LATER = utcnow() + timedelta(days=1)
OK = rss([{"title": f"acme {i}", "guid": str(i)} for i in range(3)])


def feed_source(make_config, store, url, extra=""):
    config = make_config(
        f"brands: [{{name: Acme}}]\n{extra}sources: [{{name: s, type: rss, "
        f"url: '{url}', brand: Acme}}]\n"
    )
    store.sync_sources(config.sources)
    return config


def test_oversized_body_is_refused(make_config, store, httpserver, monkeypatch):
    monkeypatch.setattr(source_http, "MAX_BODY_BYTES", 1024 * 1024)
    httpserver.expect_request("/big.xml").respond_with_data(b"<rss>" + b"x" * 3_000_000)
    config = feed_source(make_config, store, httpserver.url_for("/big.xml"))
    [outcome] = collect_due(config, store, now=LATER)
    assert "larger than 1 MB" in outcome.error


def test_a_body_that_never_ends_is_cut_off(make_config, store, httpserver, monkeypatch):
    monkeypatch.setattr(source_http, "TOTAL_TIMEOUT_S", 1.0)

    def drip(request: Request) -> Response:
        def chunks():
            for _ in range(50):
                yield b"<!-- still here -->\n"
                time.sleep(0.1)

        return Response(chunks(), content_type="application/rss+xml")

    httpserver.expect_request("/drip.xml").respond_with_handler(drip)
    config = feed_source(make_config, store, httpserver.url_for("/drip.xml"))
    start = time.monotonic()
    [outcome] = collect_due(config, store, now=LATER)
    assert "no complete response within 1 s" in outcome.error
    assert time.monotonic() - start < 4


def test_redirect_loop(make_config, store, httpserver):
    httpserver.expect_request("/a").respond_with_data(
        "", status=302, headers={"Location": httpserver.url_for("/b")}
    )
    httpserver.expect_request("/b").respond_with_data(
        "", status=302, headers={"Location": httpserver.url_for("/a")}
    )
    config = feed_source(make_config, store, httpserver.url_for("/a"))
    [outcome] = collect_due(config, store, now=LATER)
    assert "too many redirects" in outcome.error


def test_invalid_utf8_still_yields_entries(make_config, store, httpserver):
    body = OK.replace(b"acme 1", b"acme \xff\xfe broken")
    httpserver.expect_request("/f.xml").respond_with_data(body, content_type="text/xml")
    config = feed_source(make_config, store, httpserver.url_for("/f.xml"))
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.error is None and outcome.counts.new == 3


def test_billion_laughs_is_not_expanded(make_config, store, httpserver):
    lol = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
            for i in range(1, 10)
        )
        + b']><rss version="2.0"><channel><title>t</title><item><title>acme &lol9;</title>'
        b"<guid>1</guid></item></channel></rss>"
    )
    httpserver.expect_request("/lol.xml").respond_with_data(lol, content_type="text/xml")
    config = feed_source(make_config, store, httpserver.url_for("/lol.xml"))
    start = time.monotonic()
    collect_due(config, store, now=LATER)  # an error or an entry, either is fine: bounded
    assert time.monotonic() - start < 10
    row = next(store.db.query("SELECT title FROM mentions"), None)
    assert row is None or len(row["title"]) < 10_000  # never a billion laughs


def test_private_addresses_can_be_refused(make_config, store, httpserver):
    httpserver.expect_request("/f.xml").respond_with_data(OK, content_type="text/xml")
    config = feed_source(
        make_config,
        store,
        httpserver.url_for("/f.xml"),
        "network: {allow_private_addresses: false}\n",
    )
    with make_client(allow_private=False) as client:
        [outcome] = collect_due(config, store, now=LATER, client=client)
    assert "refused: localhost resolves to 127.0.0.1, not a public address" in outcome.error
    [outcome] = collect_due(config, store, now=LATER)  # the config's setting is applied too
    assert "not a public address" in outcome.error


@pytest.mark.sqlite_only  # SQLite's WAL; PostgreSQL's MVCC never lets a reader block a writer
def test_database_locked_by_a_reader_while_collecting(make_config, store, httpserver, tmp_path):
    httpserver.expect_request("/f.xml").respond_with_data(OK, content_type="text/xml")
    config = feed_source(make_config, store, httpserver.url_for("/f.xml"))
    reader = sqlite3.connect(tmp_path / "listener.db")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM mentions").fetchone()  # an export, mid-read
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.counts.new == 3  # WAL: readers never block the writer
    assert reader.execute("SELECT count(*) FROM mentions").fetchone()[0] == 0  # its snapshot
    reader.close()


@pytest.mark.sqlite_only  # a file's size limit stands in for the full disk
def test_disk_full_fails_that_source_and_keeps_what_was_stored(make_config, store, httpserver):
    httpserver.expect_request("/f.xml").respond_with_data(OK, content_type="text/xml")
    config = feed_source(make_config, store, httpserver.url_for("/f.xml"))
    collect_due(config, store, now=LATER)
    big = rss([{"title": "acme " + "y" * 2000, "guid": f"b{i}"} for i in range(300)])
    httpserver.clear()
    httpserver.expect_request("/f.xml").respond_with_data(big, content_type="text/xml")
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages + 5}")  # the disk is now full
    [outcome] = collect_due(config, store, now=LATER)
    assert "full" in outcome.error.lower()
    assert store.db["mentions"].count == 3  # nothing already stored was lost
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_text_the_model_crashes_on_is_marked_and_the_batch_goes_on(make_config, store):
    from tests.history import History, Post

    class Fragile:
        name, revision, batch_size = "fragile", "1", 32

        def classify(self, texts):
            if any("poison" in t for t in texts):
                raise RuntimeError("CUDA error: device-side assert")
            return [Prediction("neutral", {"neutral": 1.0}, 0.0) for _ in texts]

    History(store).add(
        Post("neutral", timedelta(hours=1), text="fine"),
        Post("neutral", timedelta(hours=1), text="poison pill"),
        Post("neutral", timedelta(hours=1), text="also fine"),
    )
    config = make_config("brands: [{name: Acme}]")
    slot = ClassifierSlot(config, loader=lambda s: Fragile())
    assert classify_pending(store, slot) == 2
    failed = list(store.db.query("SELECT * FROM score_failures"))
    assert len(failed) == 1 and "device-side assert" in failed[0]["error"]
    assert classify_pending(store, slot) == 0  # waits for its retry time, not every pass
    # Retried later with backoff, and given up on only after failing alone three times.
    for attempt in (2, 3):
        store.db.execute("UPDATE score_failures SET next_retry_at = '2000-01-01T00:00:00+00:00'")
        assert classify_pending(store, slot) == 0
        row = store.db["score_failures"].get((failed[0]["mention_id"], "fragile", "1"))
        assert row["attempts"] == attempt and row["permanent"] == (attempt == 3)
    store.db.execute("UPDATE score_failures SET next_retry_at = '2000-01-01T00:00:00+00:00'")
    assert classify_pending(store, slot) == 0  # given up: not even at its retry time


def test_a_passing_model_error_is_retried_and_the_mention_scored(make_config, store):
    from tests.history import History, Post

    class OutOfMemoryOnce:
        name, revision, batch_size = "oom", "1", 32
        calls = 0

        def classify(self, texts):
            OutOfMemoryOnce.calls += 1
            if OutOfMemoryOnce.calls <= 2:  # the batch, then the first text alone
                raise RuntimeError("CUDA out of memory")
            return [Prediction("neutral", {"neutral": 1.0}, 0.0) for _ in texts]

    History(store).add(
        Post("neutral", timedelta(hours=1), text="fine"),
        Post("neutral", timedelta(hours=1), text="also fine"),
    )
    config = make_config("brands: [{name: Acme}]")
    slot = ClassifierSlot(config, loader=lambda s: OutOfMemoryOnce())
    assert classify_pending(store, slot) == 1  # one was scored alone after the batch failed
    store.db.execute("UPDATE score_failures SET next_retry_at = '2000-01-01T00:00:00+00:00'")
    assert classify_pending(store, slot) == 1  # and the other at its retry
    assert store.db["scores"].count_where("model = 'oom'") == 2


def test_a_model_output_with_nan_is_an_error_not_a_label(make_config, store):
    from tests.history import History, Post

    class Broken:
        name, revision, batch_size = "nan", "1", 32

        def classify(self, texts):
            nan = float("nan")
            return [
                Prediction("negative", {"negative": nan, "neutral": nan, "positive": nan}, nan)
                for _ in texts
            ]

    History(store).add(Post("neutral", timedelta(hours=1), text="fine"))
    slot = ClassifierSlot(make_config("brands: [{name: Acme}]"), loader=lambda s: Broken())
    assert classify_pending(store, slot) == 0
    assert store.db["scores"].count_where("model = 'nan'") == 0
    [failure] = store.db.query("SELECT * FROM score_failures")
    assert "non-finite" in failure["error"]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_back_off_with_jitter(make_config, store, httpserver, status):
    httpserver.expect_request("/f.xml").respond_with_data("down", status=status)
    config = feed_source(make_config, store, httpserver.url_for("/f.xml"))
    dues = []
    for _ in range(3):
        collect_due(config, store, now=LATER)
        dues.append(store.db["sources"].get("s")["next_due_at"])
    gaps = [d for d in dues]
    assert gaps == sorted(gaps)  # each failure pushes the next try further out
    assert store.db["sources"].get("s")["consecutive_failures"] == 3


def test_rescore_failed_tries_given_up_texts_again(tmp_path, store, database):
    from click.testing import CliRunner

    from listener.cli import cli
    from tests.history import History, Post
    from tests.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "model")
    [mid] = History(store).add(Post("neutral", timedelta(hours=1), text="good service"))
    for _ in range(3):  # the model failed on it alone three times: given up
        store.score_failed(str(model), "local", mid, "RuntimeError: out of memory")
    assert store.db["score_failures"].get((mid, str(model), "local"))["permanent"] == 1
    config = tmp_path / "sources.yaml"
    config.write_text(
        f"database: {database}\nbrands: [{{name: Acme}}]\n"
        f"sentiment: {{model: '{model}', backend: transformers}}\n"
    )
    plain = CliRunner().invoke(cli, ["-c", str(config), "rescore", "--model", str(model)])
    assert "scored 0 mentions" in plain.output  # given up: not retried by itself
    again = CliRunner().invoke(cli, ["-c", str(config), "rescore", "--failed"])
    assert again.exit_code == 0, again.output
    assert "1 mentions the model had failed on are tried again" in again.output
    assert "scored 1 mentions" in again.output
