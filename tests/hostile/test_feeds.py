"""Hostile and careless responses, served from a local server through the real collection path.

Each test: what the server sends -> what listener stores or refuses. The rule throughout: one
bad entry never costs the others, and no response can take unbounded memory or time.
"""

from __future__ import annotations

import gzip
import json
import re
import time
import tracemalloc
import zlib
from datetime import timedelta

import pytest

import sources.hackernews
from listener.pipeline import collect_due
from listener.timeutil import utcnow
from sources import http as source_http
from tests.hostile.servers import dribbling_server

LATER = utcnow() + timedelta(days=1)


def rss_with(bad_item: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t'
        f"</title><item><title>acme one</title><guid>1</guid></item>{bad_item}"
        "<item><title>acme three</title><guid>3</guid></item></channel></rss>"
    ).encode()


def atom_with(bad_entry: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>t</title><entry><id>1</id><title>acme one</title></entry>"
        f"{bad_entry}<entry><id>3</id><title>acme three</title></entry></feed>"
    ).encode()


@pytest.fixture
def serve_feed(make_config, store, httpserver):
    """Serve body at /feed.xml as the only source; returns (config, stored titles)."""

    def make(body: bytes, headers: dict[str, str] | None = None):
        httpserver.clear()
        httpserver.expect_request("/feed.xml").respond_with_data(
            body, content_type="application/rss+xml", headers=headers or {}
        )
        config = make_config(
            "brands: [{name: Acme}]\nsources: [{name: s, type: rss, "
            f"url: '{httpserver.url_for('/feed.xml')}', brand: Acme}}]\n"
        )
        store.sync_sources(config.sources)
        return config

    return make


def titles(store) -> list[str]:
    return sorted(r["title"] for r in store.db.query("SELECT title FROM mentions"))


@pytest.mark.parametrize(
    "body",
    [
        rss_with(
            "<item><title>acme two</title><guid>2</guid>"
            "<pubDate>Fri, 31 Dec 9999 23:30:00 -0100</pubDate></item>"
        ),
        rss_with(
            "<item><title>acme two</title><guid>2</guid>"
            "<pubDate>0000-01-01T00:00:00Z</pubDate></item>"
        ),
        atom_with(
            "<entry><id>2</id><title>acme two</title>"
            "<updated>9999-12-31T23:30:00-01:00</updated></entry>"
        ),
        atom_with(
            "<entry><id>2</id><title>acme two</title>"
            "<updated>0001-01-01T00:30:00+01:00</updated></entry>"
        ),
        atom_with(
            "<entry><id>2</id><title>acme two</title>"
            "<updated>0000-01-01T00:00:00Z</updated></entry>"
        ),
    ],
    ids=["rss-9999", "rss-0000", "atom-9999", "atom-0001", "atom-0000"],
)
def test_a_date_out_of_range_becomes_missing_and_every_entry_is_stored(serve_feed, store, body):
    [outcome] = collect_due(serve_feed(body), store, now=LATER)
    assert outcome.error is None
    assert titles(store) == ["acme one", "acme three", "acme two"]
    two = next(store.db.query("SELECT published_at FROM mentions WHERE title = 'acme two'"))
    assert two["published_at"] is None  # shown at its fetch time instead


@pytest.mark.parametrize(
    "ref",
    ["&#xD800;", "&#xDFFF;", "&#x110000;", "&#99999999999;", "&#0;", "&#x0000000000000000000D800;"],
)
@pytest.mark.parametrize("shape", ["rss", "atom"])
def test_an_impossible_character_reference_becomes_a_replacement_character(
    serve_feed, store, ref, shape
):
    body = (
        rss_with(
            f"<item><title>acme {ref} two</title><guid>2</guid>"
            f"<description>broken {ref} text</description></item>"
        )
        if shape == "rss"
        else atom_with(f"<entry><id>2</id><title>acme {ref} two</title></entry>")
    )
    [outcome] = collect_due(serve_feed(body), store, now=LATER)
    assert outcome.error is None
    assert titles(store) == ["acme one", "acme three", "acme \ufffd two"]


def test_a_post_cut_inside_an_emoji_costs_nothing(serve_feed, store):
    """A JSON Feed (as hnrss.org serves) whose item ends in half an emoji: JSON escapes it as
    \\ud83d, which no UTF-8 store accepts; it was 0 of 50 stored."""
    items = [
        {
            "id": str(i),
            "url": f"https://example.com/{i}",
            "title": f"acme {i}",
            "content_text": f"post {i}",
        }
        for i in range(50)
    ]
    items[7]["content_text"] = "great app \ud83d"
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": items})
    assert "\\ud83d" in body
    [outcome] = collect_due(
        serve_feed(body.encode(), {"Content-Type": "application/feed+json"}), store, now=LATER
    )
    assert outcome.error is None and outcome.counts.new == 50
    cut = next(store.db.query("SELECT text FROM mentions WHERE external_id = '7'"))
    assert cut["text"] == "great app \ufffd"


def test_an_unreadable_entry_is_skipped_and_counted_on_its_fetch(
    make_config, store, httpserver, monkeypatch
):
    hits = [
        {
            "objectID": str(i),
            "title": f"acme {i}",
            "created_at_i": 1_700_000_000 + i,
            "author": "a",
            "points": 1,
        }
        for i in range(3)
    ]
    hits.insert(1, {"title": "acme without an id", "created_at_i": 1_700_000_001})
    hits.insert(2, "not even an object")
    httpserver.expect_request(re.compile(".*")).respond_with_json({"hits": hits, "nbPages": 1})
    monkeypatch.setattr(sources.hackernews, "API", httpserver.url_for("/search_by_date"))
    config = make_config(
        "brands: [{name: Acme}]\nsources: [{name: hn, type: hackernews, "
        "query: acme, brand: Acme}]\n"
    )
    store.sync_sources(config.sources)
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.error is None
    assert outcome.counts.new == 3 and outcome.counts.rejected == 2
    run = next(store.db.query("SELECT * FROM fetch_runs"))
    assert run["status"] == "ok" and run["rejected"] == 2
    reasons = json.loads(run["rejected_detail"])
    assert "hit 2" in reasons[0] and "objectID" in reasons[0]


def nested_gzip(payload_mb: int, layers: int) -> bytes:
    """payload_mb MB of spaces, gzipped `layers` times (built without holding the payload)."""
    inner = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b" " * (1 << 20)
    body = b"".join(inner.compress(chunk) for _ in range(payload_mb)) + inner.flush()
    for _ in range(layers - 1):
        body = gzip.compress(body, 9)
    return body


def test_stacked_gzip_is_bounded_by_the_decoded_size(serve_feed, store):
    body = nested_gzip(4096, 2)  # 4 GB of spaces in a few kilobytes
    assert len(body) < 50_000
    config = serve_feed(body, {"Content-Encoding": "gzip, gzip"})
    tracemalloc.start()
    try:
        [outcome] = collect_due(config, store, now=LATER)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "larger than 20 MB" in outcome.error
    assert peak < 64 * 1024 * 1024  # the cap and a few decoding buffers, not gigabytes


def test_more_than_two_compression_layers_are_refused(serve_feed, store):
    config = serve_feed(nested_gzip(1, 3), {"Content-Encoding": "gzip, gzip, gzip"})
    [outcome] = collect_due(config, store, now=LATER)
    assert "Content-Encoding stacks 3 layers (gzip, gzip, gzip)" in outcome.error


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "gzip, deflate"])
def test_ordinary_compressed_feeds_still_read(serve_feed, store, encoding):
    body = rss_with("<item><title>acme two</title><guid>2</guid></item>")
    for layer in [e.strip() for e in encoding.split(",")]:
        body = gzip.compress(body) if layer == "gzip" else zlib.compress(body)
    [outcome] = collect_due(serve_feed(body, {"Content-Encoding": encoding}), store, now=LATER)
    assert outcome.error is None and outcome.counts.new == 3


def test_a_server_that_dribbles_its_headers_is_given_up_on(make_config, store, monkeypatch):
    monkeypatch.setattr(source_http, "TOTAL_TIMEOUT_S", 2.0)
    with dribbling_server(every=0.1) as url:
        config = make_config(
            f"brands: [{{name: Acme}}]\nsources: [{{name: s, type: rss, url: '{url}'}}]\n"
        )
        store.sync_sources(config.sources)
        start = time.monotonic()
        [outcome] = collect_due(config, store, now=LATER)
        took = time.monotonic() - start
    # A byte every 0.1 s never trips a 20 s read timeout: only the total deadline ends it.
    assert "no complete response within 2 s" in outcome.error
    assert took < 10
