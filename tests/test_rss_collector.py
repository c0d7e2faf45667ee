"""The RSS/Atom collector against a real local HTTP server serving real and hand-made feeds."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from werkzeug import Request, Response

from listener.pipeline import collect_due
from listener.timeutil import parse_iso, utcnow
from sentiment.base import Prediction
from sources.http import make_client
from tests.conftest import feed_bytes, rss

LATER = utcnow() + timedelta(days=1)  # every source is due by then


@pytest.fixture
def setup(make_config, store, httpserver):
    def make(path: str = "/feed.xml", brand: str | None = "Acme", query: str = "acme"):
        config = make_config(f"""
            brands:
              - name: Acme
                query: '{query}'
            sources:
              - name: feed
                type: rss
                url: {httpserver.url_for(path)}
                {"brand: " + brand if brand else ""}
                interval: 10m
        """)
        store.sync_sources(config.sources)
        return config

    return make


def collect(config, store, timeout_s: float = 5.0):
    with make_client(timeout_s) as client:
        return collect_due(config, store, now=LATER, client=client)


def source_row(store):
    return store.db["sources"].get("feed")


def mention_rows(store):
    return list(store.db.query("SELECT * FROM mentions ORDER BY id"))


def test_conditional_get_second_fetch_stores_nothing_new(setup, store, httpserver):
    body = feed_bytes("large_atom_feed_that_needs_css_sanitisation.xml")
    etag, modified = '"v1"', "Wed, 08 Apr 2009 14:25:12 GMT"

    def handler(request: Request) -> Response:
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304)
        return Response(
            body,
            headers={"ETag": etag, "Last-Modified": modified},
            content_type="application/atom+xml",
        )

    httpserver.expect_request("/feed.xml").respond_with_handler(handler)
    config = setup()
    [first] = collect(config, store)
    assert first.counts.new == 15
    [second] = collect(config, store)
    assert second.not_modified and second.counts.new == 0
    sent = httpserver.log[1][0].headers
    assert sent["If-None-Match"] == etag
    assert sent["If-Modified-Since"] == modified
    assert "listener/" in sent["User-Agent"]
    assert len(mention_rows(store)) == 15
    runs = [r["status"] for r in store.db.query("SELECT status FROM fetch_runs ORDER BY id")]
    assert runs == ["ok", "not_modified"]


def test_entries_are_normalised_with_text_html_language_and_times(setup, store, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(
        feed_bytes("large_atom_feed_that_needs_css_sanitisation.xml"),
        content_type="application/atom+xml",
    )
    collect(setup(), store)
    first = mention_rows(store)[0]
    assert first["external_id"] == "tag:touchnokia.ru,2009://1.666"
    assert first["title"] == "Невидимая броня для Вашего Nokia 5800"
    assert first["language"] == "ru"
    assert first["author"] == "iPod"
    assert first["published_at"] == "2009-09-09T14:19:45+00:00"
    assert "<h2>" in first["html"] and "<" not in first["text"]
    assert first["text"].startswith("Невидимая броня для Вашего девайса.")
    # searchable in Russian regardless of case
    assert [m["id"] for m in store.latest_mentions(search="БРОНЯ")][:1] == [first["id"]]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("koi8r.xml", "Как пережить новогоднюю ночь"),
        ("windows1255.xml", "האם תדפיס נייר של אתר אינטרנט"),
    ],
)
def test_legacy_encoded_illformed_feeds_still_yield_entries(
    setup, store, httpserver, name, expected
):
    httpserver.expect_request("/feed.xml").respond_with_data(
        feed_bytes(name), content_type="text/xml"
    )
    [outcome] = collect(setup(), store)
    assert outcome.error is None and outcome.counts.new == 1
    row = mention_rows(store)[0]
    assert expected in f"{row['title']} {row['text']}"


def test_empty_feed_is_not_an_error(setup, store, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(
        feed_bytes("channel_language.xml"), content_type="application/rss+xml"
    )
    [outcome] = collect(setup(), store)
    assert outcome.error is None and outcome.counts.entries == 0


def test_html_page_instead_of_a_feed_is_an_error_on_that_source(setup, store, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(
        "<html><body><h1>Login</h1></body></html>", content_type="text/html"
    )
    [outcome] = collect(setup(), store)
    assert "not an RSS/Atom feed" in outcome.error
    assert httpserver.url_for("/feed.xml") in outcome.error
    assert source_row(store)["consecutive_failures"] == 1


def test_429_retry_after_pushes_next_due_time(setup, store, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "7200"}
    )
    [outcome] = collect(setup(), store)
    assert "HTTP 429" in outcome.error
    due = parse_iso(source_row(store)["next_due_at"])
    assert due - utcnow() > timedelta(minutes=119)  # not the 10-minute interval


def test_500_backs_off_and_other_sources_are_unaffected(make_config, store, httpserver):
    httpserver.expect_request("/broken.xml").respond_with_data("oops", status=500)
    httpserver.expect_request("/good.xml").respond_with_data(
        rss([{"title": "acme is great", "guid": "1"}]), content_type="application/rss+xml"
    )
    config = make_config(f"""
        brands: [{{name: Acme}}]
        sources:
          - {{name: broken, type: rss, url: '{httpserver.url_for("/broken.xml")}', brand: Acme}}
          - {{name: good, type: rss, url: '{httpserver.url_for("/good.xml")}', brand: Acme}}
    """)
    store.sync_sources(config.sources)
    outcomes = {o.source: o for o in collect(config, store)}
    assert outcomes["broken"].error.endswith("HTTP 500 INTERNAL SERVER ERROR")
    assert outcomes["good"].counts.new == 1
    outcomes = {o.source: o for o in collect(config, store)}
    assert store.db["sources"].get("broken")["consecutive_failures"] == 2


def test_301_updates_the_stored_url(setup, store, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(
        "", status=301, headers={"Location": httpserver.url_for("/moved.xml")}
    )
    httpserver.expect_request("/moved.xml").respond_with_data(
        rss([{"title": "acme", "guid": "a"}]), content_type="application/rss+xml"
    )
    config = setup()
    collect(config, store)
    assert source_row(store)["url"] == httpserver.url_for("/moved.xml")
    httpserver.clear_log()
    collect(config, store)
    assert [r.path for r, _ in httpserver.log] == ["/moved.xml"]


def test_302_does_not_update_the_stored_url(setup, store, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(
        "", status=302, headers={"Location": httpserver.url_for("/tmp.xml")}
    )
    httpserver.expect_request("/tmp.xml").respond_with_data(
        rss([]), content_type="application/rss+xml"
    )
    collect(setup(), store)
    assert source_row(store)["url"] == httpserver.url_for("/feed.xml")


def test_410_disables_the_source_with_a_clear_message(setup, store, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data("gone", status=410)
    config = setup()
    [outcome] = collect(config, store)
    assert "HTTP 410 Gone" in outcome.error
    row = source_row(store)
    assert row["enabled"] == 0
    assert "410" in row["disabled_reason"] and "disabled" in row["disabled_reason"]
    assert collect(config, store) == []  # not fetched again
    store.sync_sources(config.sources)
    assert source_row(store)["enabled"] == 0  # stays off until its url changes...
    store.enable_source("feed")  # ...or the user turns it back on (`listener sources enable`)
    store.sync_sources(config.sources)
    assert source_row(store)["enabled"] == 1 and source_row(store)["disabled_reason"] is None
    with pytest.raises(KeyError, match="no source 'nope'"):
        store.enable_source("nope")


def test_timeout_is_an_error_on_that_source(setup, store, httpserver):
    released = threading.Event()

    def slow(request: Request) -> Response:
        released.wait(5.0)
        return Response(rss([]), content_type="application/rss+xml")

    httpserver.expect_request("/feed.xml").respond_with_handler(slow)
    [outcome] = collect(setup(), store, timeout_s=0.2)
    assert "timed out" in outcome.error
    # Let the server finish this request now: left sleeping, it would still be busy when the
    # next test starts, and a request queued behind it would be answered by that test's handler.
    released.set()
    deadline = time.monotonic() + 5.0
    while not httpserver.log and time.monotonic() < deadline:
        time.sleep(0.01)


def test_unreachable_host_is_an_error_naming_the_url(make_config, store):
    config = make_config("""
        brands: [{name: Acme}]
        sources: [{name: feed, type: rss, url: 'http://127.0.0.1:9/feed.xml', brand: Acme}]
    """)
    store.sync_sources(config.sources)
    [outcome] = collect(config, store)
    assert outcome.error.startswith("http://127.0.0.1:9/feed.xml: ConnectError")


def test_edited_entry_updates_its_row_and_is_not_new(setup, store, httpserver):
    versions = iter(
        [
            rss([{"title": "acme ok", "guid": "g1"}, {"title": "acme fine", "guid": "g2"}]),
            rss([{"title": "acme ok", "guid": "g1"}, {"title": "acme edited", "guid": "g2"}]),
        ]
    )
    httpserver.expect_request("/feed.xml").respond_with_handler(
        lambda r: Response(next(versions), content_type="application/rss+xml")
    )
    config = setup()
    [first] = collect(config, store)
    store.save_scores("m", "r", [(2, Prediction("positive", {"positive": 1.0}, 1.0), None)])
    [second] = collect(config, store)
    assert (first.counts.new, second.counts.new, second.counts.updated) == (2, 0, 1)
    rows = mention_rows(store)
    assert [r["title"] for r in rows] == ["acme ok", "acme edited"]
    assert rows[1]["updated_at"] is not None
    assert store.unscored("m", "r", 10)[-1].id == rows[1]["id"]  # its old score was dropped
    assert store.latest_mentions(search="edited")[0]["id"] == rows[1]["id"]
    assert store.latest_mentions(search="fine") == []


def test_duplicate_entries_in_one_feed_are_stored_once(setup, store, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(
        rss([{"title": "acme", "guid": "same"}, {"title": "acme again", "guid": "same"}]),
        content_type="application/rss+xml",
    )
    [outcome] = collect(setup(), store)
    assert outcome.counts.new == 1 and len(mention_rows(store)) == 1


def test_entry_identity_falls_back_to_link_then_content_hash(setup, store, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(
        rss(
            [
                {"title": "acme linked", "link": "http://example.com/a"},
                {"title": "acme bare", "description": "no id, no link"},
            ]
        ),
        content_type="application/rss+xml",
    )
    collect(setup(), store)
    ids = [r["external_id"] for r in mention_rows(store)]
    assert ids[0] == "http://example.com/a"
    assert ids[1].startswith("sha256:")


def test_google_alerts_links_are_unwrapped(setup, store, httpserver):
    atom = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Google Alert - acme</title>
<entry><id>tag:google.com,2013:googlealerts/feed:1</id>
<title type="html">&lt;b&gt;Acme&lt;/b&gt; recalls toasters</title>
<link href="https://www.google.com/url?rct=j&amp;sa=t&amp;url=https://news.example.com/acme-recall&amp;ct=ga&amp;cd=x"/>
<published>2026-11-20T10:00:00Z</published>
<content type="html">The &lt;b&gt;Acme&lt;/b&gt; recall affects 2 models</content></entry></feed>"""
    httpserver.expect_request("/feed.xml").respond_with_data(
        atom, content_type="application/atom+xml"
    )
    collect(setup(), store)
    row = mention_rows(store)[0]
    assert row["url"] == "https://news.example.com/acme-recall"
    assert row["title"] == "Acme recalls toasters"
    assert row["text"] == "The Acme recall affects 2 models"
    assert "<b>Acme</b>" in row["html"]


def test_general_feed_keeps_only_entries_matching_a_brand(setup, store, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(
        rss([{"title": "Acme down again", "guid": "1"}, {"title": "weather", "guid": "2"}]),
        content_type="application/rss+xml",
    )
    [outcome] = collect(setup(brand=None), store)
    assert (outcome.counts.new, outcome.counts.skipped) == (1, 1)
    links = list(store.db.query("SELECT brand FROM mention_brands"))
    assert links == [{"brand": "Acme"}]


def test_raw_payload_is_kept_as_json(setup, store, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(
        feed_bytes("entry_content_xml_lang.xml"), content_type="application/atom+xml"
    )
    collect(setup(query="example"), store)
    row = mention_rows(store)[0]
    assert json.loads(row["raw"])["content"][0]["language"] == "en"
    assert row["language"] == "en"
