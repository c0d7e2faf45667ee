"""The Reddit collector against praw's own recorded responses, served on loopback."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

import sources.reddit
from listener.pipeline import collect_due
from listener.timeutil import utcnow
from tests.reddit_replay import RedditReplay

LATER = utcnow() + timedelta(days=1)


@pytest.fixture
def serve(httpserver, monkeypatch):
    monkeypatch.setenv("REDDIT_CLIENT_ID", "id")
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", "secret")
    base = httpserver.url_for("").rstrip("/")
    monkeypatch.setattr(sources.reddit, "ENDPOINTS", {"oauth_url": base, "reddit_url": base})

    def serve_(*names: str, extra=None) -> RedditReplay:
        replay = RedditReplay(*names, extra=extra)
        httpserver.expect_request(re.compile(".*")).respond_with_handler(replay)
        return replay

    return serve_


@pytest.fixture
def setup(one_source):
    return lambda **keys: one_source(name="reddit", type="reddit", **keys)


def rows(store):
    return list(store.db.query("SELECT * FROM mentions ORDER BY published_at DESC"))


def test_new_submissions_of_a_subreddit(setup, store, httpserver, serve):
    replay = serve("TestSubredditListings.test_new.json")
    config = setup(subreddits=["askreddit"], watch=["submissions"])
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.error is None, outcome.error
    assert outcome.counts.new == 100
    assert any(p.startswith("/r/askreddit/new") for p in replay.played)
    first = rows(store)[0]
    assert first["external_id"] == "t3_48fbm9"
    assert first["author"] == "RedHeadQc"
    assert first["title"].startswith("[Serious] Parents of Reddit")
    assert first["published_at"] == "2016-03-01T08:37:38+00:00"
    assert first["url"].startswith("https://www.reddit.com/r/AskReddit/comments/48fbm9/")
    cursor = json.loads(store.db["sources"].get("reddit")["cursor"])
    assert cursor["newest"] == "t3_48fbm9"
    # User-Agent in Reddit's required form
    ua = httpserver.log[-1][0].headers["User-Agent"]
    assert ua.startswith("python:listener:") and "(by /u/listener-bot)" in ua
    [again] = collect_due(config, store, now=LATER)
    assert again.counts.new == 0  # overlap is harmless: the key dedupes


def test_comments_of_a_subreddit(setup, store, serve):
    serve("TestSubredditListings.test_comments.json")
    config = setup(subreddits=["askreddit"], watch=["comments"])
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.counts.new == 100
    comment = next(r for r in rows(store) if r["external_id"] == "t1_d4y8bdp")
    assert comment["author"] == "preppypuppy"
    assert comment["text"].startswith("great, life is so much better")
    assert comment["title"].startswith('[Serious] To anyone who "followed their dreams"')


def test_search_across_reddit(setup, store, serve):
    replay = serve("TestSubreddit.test_search.json")
    config = setup(query="praw oauth search")
    # praw's recording asked for sort=relevance; ours asks for sort=new, so answer that too
    replay.interactions[1]["request"]["uri"] = (
        replay.interactions[1]["request"]["uri"]
        .replace("sort=relevance", "sort=new")
        .replace("t=all", "t=week")
        .replace("&syntax=cloudsearch", "")
        .replace("&limit=1024", "")
    )
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.error is None, outcome.error
    assert outcome.counts.new > 0
    assert all(r["external_id"].startswith("t3_") for r in rows(store))


def test_removed_items_are_kept_as_first_seen_and_flagged(setup, store, serve):
    replay = serve("TestSubredditListings.test_new.json")
    config = setup(subreddits=["askreddit"], watch=["submissions"])
    collect_due(config, store, now=LATER)
    body = json.loads(replay.interactions[1]["response"]["body"]["string"])
    body["data"]["children"][0]["data"].update(selftext="[removed]", author="[deleted]")
    replay.interactions[1]["response"]["body"]["string"] = json.dumps(body)
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.counts.updated == 0
    first = rows(store)[0]
    assert first["author"] == "RedHeadQc" and first["removed_at"] is not None


def test_429_backs_off(setup, store, serve):
    token = {
        "request": {"method": "POST", "uri": "https://www.reddit.com/api/v1/access_token"},
        "response": {
            "status": {"code": 200},
            "headers": {"content-type": ["application/json"]},
            "body": {
                "string": json.dumps(
                    {"access_token": "t", "token_type": "bearer", "expires_in": 3600, "scope": "*"}
                )
            },
        },
    }
    limited = {
        "request": {"method": "GET", "uri": "https://oauth.reddit.com/r/askreddit/new"},
        "response": {
            "status": {"code": 429},
            "headers": {"x-ratelimit-reset": ["120"]},
            "body": {"string": "{}"},
        },
    }
    serve(extra=[token, limited])
    config = setup(subreddits=["askreddit"], watch=["submissions"])
    [outcome] = collect_due(config, store, now=LATER)
    assert "429" in outcome.error
    row = store.db["sources"].get("reddit")
    assert (
        row["enabled"] == 1 and row["next_due_at"] > (utcnow() + timedelta(seconds=100)).isoformat()
    )


def test_refused_credentials_disable_the_source(setup, store, serve):
    refused = {
        "request": {"method": "POST", "uri": "https://www.reddit.com/api/v1/access_token"},
        "response": {
            "status": {"code": 401},
            "headers": {"content-type": ["application/json"]},
            "body": {"string": '{"message": "Unauthorized", "error": 401}'},
        },
    }
    serve(extra=[refused])
    config = setup(subreddits=["askreddit"], watch=["submissions"])
    [outcome] = collect_due(config, store, now=LATER)
    row = store.db["sources"].get("reddit")
    assert row["enabled"] == 0 and "check the app's id and secret" in row["disabled_reason"]
    assert "401" in outcome.error


def test_missing_credentials_name_the_variables(setup, store, monkeypatch):
    monkeypatch.delenv("REDDIT_CLIENT_ID", raising=False)
    config = setup(query="acme")
    [outcome] = collect_due(config, store, now=LATER)
    assert "set REDDIT_CLIENT_ID and REDDIT_CLIENT_SECRET" in outcome.error


def test_a_new_post_below_older_ones_is_still_read(setup, store, serve):
    """praw's real `new` listing, read twice; the second time a post written after the first
    read sits below older posts, as real listings do (praw's TestMultiredditListings.test_new
    has one above a post 4.9 h older). A time cut-off stopped at the older posts."""
    replay = serve("TestSubredditListings.test_new.json")
    config = setup(subreddits=["askreddit"], watch=["submissions"])
    collect_due(config, store, now=LATER)
    body = json.loads(replay.interactions[1]["response"]["body"]["string"])
    children = body["data"]["children"]
    late = json.loads(json.dumps(children[0]))
    late["data"].update(
        id="zzlate",
        name="t3_zzlate",
        title="A late post",
        created_utc=children[0]["data"]["created_utc"] + 60,
        permalink="/r/AskReddit/comments/zzlate/a_late_post/",
    )
    children.insert(12, late)  # below posts more than 5 minutes older than the newest
    replay.interactions[1]["response"]["body"]["string"] = json.dumps(body)
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.counts.new == 1
    assert store.db["mentions"].count_where("external_id = 't3_zzlate'") == 1
    assert outcome.error is None


def test_a_fetch_that_may_have_missed_posts_says_so(setup, store, serve):
    serve("TestSubredditListings.test_new.json")
    config = setup(subreddits=["askreddit"], watch=["submissions"])
    store.db["sources"].update(
        "reddit", {"cursor": json.dumps({"seen": ["t3_old1"], "newest_utc": 1456000000.0})}
    )  # long before the listing
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.counts.new == 100
    row = store.db["sources"].get("reddit")
    assert "coverage gap: 100 new items" in row["last_warning"]


def test_comments_are_stored_as_people_read_them_not_as_markdown(setup, store, serve):
    """praw's real recording of r/all comments: Markdown source ("[Yuri!!! on Ice](/s ...",
    "* Already Submitted", `code`) is stored as the rendered text; the Markdown is kept."""
    serve("TestSubredditStreams.test_comments.json")
    config = setup(subreddits=["all"], watch=["comments"])
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.error is None and outcome.counts.new >= 90
    texts = [r["text"] for r in rows(store)]
    assert not [t for t in texts if "](" in t or "&amp;" in t or "&gt;" in t]
    markdown = [json.loads(r["raw"])["markdown"] for r in rows(store)]
    assert sum("](" in m for m in markdown) >= 2  # the source had links in Markdown
    spoiler = next(
        r for r in rows(store) if json.loads(r["raw"])["markdown"].startswith("[Yuri!!! on Ice]")
    )
    assert spoiler["text"].startswith("Yuri!!! on Ice")
