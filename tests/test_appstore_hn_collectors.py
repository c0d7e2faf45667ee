"""App Store reviews and Hacker News, against a local server serving hand-made responses written
from the documented formats (Apple's customer-reviews JSON feed; the HN Algolia search API)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from werkzeug import Request, Response

import sources.appstore
import sources.hackernews
from listener.pipeline import collect_due
from listener.timeutil import utcnow

LATER = utcnow() + timedelta(days=1)


def review(i: int, stars: int, title: str, text: str, version: str = "8.9.1") -> str:
    """One entry of Apple's customer-review XML feed (hand-made, in the structure of a real
    response: a bare numeric id, two content elements, im:rating, im:version, updated)."""
    return (
        f"<entry><updated>2026-11-{10 + i % 10:02d}T08:00:00-07:00</updated>"
        f"<id>{10_000 + i}</id><title>{title}</title>"
        f'<content type="text">{text}</content><im:voteSum>0</im:voteSum>'
        f'<im:contentType term="Application" label="Application"/>'
        f"<im:rating>{stars}</im:rating><im:version>{version}</im:version>"
        f"<author><name>user{i}</name><uri>https://itunes.apple.com/us/reviews/id{i}"
        f'</uri></author><content type="html">&lt;b&gt;{title}&lt;/b&gt;</content>'
        "</entry>"
    )


def feed(entries: list[str]) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns:im="http://itunes.apple.com/'
        'rss" xmlns="http://www.w3.org/2005/Atom" xml:lang="en"><id>https://itunes.apple'
        ".com/us/rss/customerreviews/id=324684580/sortBy=mostRecent/xml</id><title>iTunes "
        "Store: Customer Reviews</title><updated>2026-11-20T10:00:00-07:00</updated>"
        + "".join(entries)
        + "</feed>"
    )


@pytest.fixture
def appstore(make_config, store, httpserver, monkeypatch):
    pages = {
        1: [review(i, 5 - i % 5, f"title {i}", f"review text {i}") for i in range(60, 10, -1)],
        2: [review(9, 1, "Crashes", "Crashes at start since 8.9.1")],
        3: [],
    }  # no more reviews
    served = []

    def handler(request: Request) -> Response:
        page = int(request.path.split("/page=")[1].split("/")[0])
        served.append(page)
        return Response(feed(pages.get(page, [])), content_type="text/xml; charset=UTF-8")

    httpserver.expect_request(re.compile(".*")).respond_with_handler(handler)
    monkeypatch.setattr(
        sources.appstore,
        "FEED",
        httpserver.url_for("/")
        + "{country}/rss/customerreviews/page={page}/id={app_id}/sortby=mostrecent"
        "/xml",
    )
    config = make_config(
        "brands: [{name: Acme}]\nsources: [{name: ios, type: appstore, "
        "app_id: 324684580, country: fi, brand: Acme}]\n"
    )
    store.sync_sources(config.sources)
    return config, served, pages


def test_app_store_reviews_with_ratings_versions_and_dates(appstore, store):
    config, served, _ = appstore
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.error is None, outcome.error
    assert outcome.counts.new == 51 and served == [1, 2, 3]
    row = next(store.db.query("SELECT * FROM mentions WHERE external_id = '10009'"))
    assert (row["rating"], row["title"], row["author"]) == (1.0, "Crashes", "user9")
    assert row["text"] == "Crashes at start since 8.9.1"
    assert row["published_at"] == "2026-11-19T15:00:00+00:00"  # every review has its date
    assert store.db["mentions"].count_where("published_at IS NULL") == 0
    assert json.loads(row["raw"])["app_version"] == "8.9.1"
    assert row["url"] == "https://apps.apple.com/fi/app/id324684580?see-all=reviews"


def test_app_store_stops_paging_at_reviews_already_seen(appstore, store):
    config, served, pages = appstore
    collect_due(config, store, now=LATER)
    served.clear()
    pages[1].insert(0, review(61, 2, "new", "a new complaint"))
    [again] = collect_due(config, store, now=LATER)
    assert again.counts.new == 1 and served == [1]


def hit(i: int, comment: bool = False) -> dict:
    """One hit of the HN Algolia API (hand-made, in its documented format)."""
    base = {
        "objectID": str(i),
        "author": f"hn{i}",
        "created_at_i": 1_763_600_000 + i,
        "created_at": "2026-11-20T00:00:00Z",
        "points": i,
        "_tags": [],
    }
    if comment:
        return {
            **base,
            "comment_text": "<p>Acme&#x27;s support <i>never</i> answers</p>",
            "story_title": "Ask HN: Acme outage?",
            "story_id": 1,
            "title": None,
        }
    return {
        **base,
        "title": f"Acme launches thing {i}",
        "url": f"https://acme.example/{i}",
        "story_text": None,
        "comment_text": None,
    }


def test_hacker_news_stories_and_comments_with_a_time_cursor(
    make_config, store, httpserver, monkeypatch
):
    asked = []

    def handler(request: Request) -> Response:
        asked.append(dict(request.args))
        page = int(request.args["page"])
        since = int(request.args["numericFilters"].split(">")[1])
        hits = [
            h
            for h in ([hit(5), hit(4, comment=True)] if page == 0 else [hit(3)])
            if h["created_at_i"] > since
        ]
        return Response(
            json.dumps({"hits": hits, "nbPages": 2, "page": page, "hitsPerPage": 100}),
            content_type="application/json",
        )

    httpserver.expect_request("/api/v1/search_by_date").respond_with_handler(handler)
    monkeypatch.setattr(sources.hackernews, "API", httpserver.url_for("/api/v1/search_by_date"))
    config = make_config(
        "brands: [{name: Acme}]\nsources: [{name: hn, type: hackernews, query: acme}]\n"
    )
    store.sync_sources(config.sources)
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.counts.new == 3
    assert asked[0]["numericFilters"] == "created_at_i>0" and asked[0]["query"] == "acme"
    comment = dict(next(store.db.query("SELECT * FROM mentions WHERE external_id = '4'")))
    assert comment["text"] == "Acme's support never answers"
    assert comment["title"] == "Ask HN: Acme outage?"
    assert comment["url"] == "https://news.ycombinator.com/item?id=4"
    assert comment["reach"] == 4
    cursor = json.loads(store.db["sources"].get("hn")["cursor"])
    assert cursor["created_at_i"] == 1_763_600_005
    asked.clear()
    [again] = collect_due(config, store, now=LATER)
    assert again.counts.new == 0 and asked[0]["numericFilters"] == "created_at_i>1763600005"
