"""The X collector replaying real tweepy cassettes and hand-made ones (fields, paging, errors)."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from listener.pipeline import collect_due
from listener.timeutil import parse_iso, utcnow
from tests.cassettes import CASSETTES, SENT, replay, write_cassette
from tests.history import stored_text

LATER = utcnow() + timedelta(days=1)
SEARCH = "https://api.twitter.com/2/tweets/search/recent"


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", "test-token")


@pytest.fixture
def setup(one_source):
    def make(**keys):
        return one_source(
            "Tweepy", name="x", type="x", **(keys or {"query": "Tweepy", "max_pages": 1})
        )

    return make


def mentions(store):
    return list(store.db.query("SELECT * FROM mentions ORDER BY external_id DESC"))


def cursor(store):
    return json.loads(store.db["sources"].get("x")["cursor"])


def test_recent_search_from_a_real_cassette(setup, store):
    config = setup()
    with replay(CASSETTES / "x" / "test_client_search_recent_tweets.yaml", allow_repeats=True):
        [first] = collect_due(config, store, now=LATER)
        [second] = collect_due(config, store, now=LATER)
    assert first.error is None and first.counts.new == 10
    assert second.counts.new == 0  # the since_id run returns nothing new; nothing stored twice
    assert "since_id=1578516068309794817" in SENT[-1].uri
    rows = mentions(store)
    assert rows[0]["external_id"] == "1578516068309794817"
    assert rows[0]["text"] == "2022-10-07 22:42:12.637103 tweepy"
    assert rows[0]["url"] == "https://x.com/i/web/status/1578516068309794817"
    assert cursor(store)["since_id"] == "1578516068309794817"
    assert cursor(store)["reads"] == {utcnow().strftime("%Y-%m"): 20}


def test_user_mentions_from_a_real_cassette(setup, store):
    config = setup(mentions_of="783214", max_pages=1)
    with replay(CASSETTES / "x" / "test_client_get_users_mentions.yaml"):
        [outcome] = collect_due(config, store, now=LATER)
    assert outcome.counts.new == 10
    assert "respond to my ticket" in mentions(store)[0]["text"]


def _tweet(i: int, author: str = "1", lang: str = "en", **extra):
    return {
        "id": str(i),
        "text": f"tweepy post {i}",
        "author_id": author,
        "lang": lang,
        "created_at": f"2026-11-20T10:00:{i % 60:02d}.000Z",
        **extra,
    }


def test_paging_fields_and_retweets_folded(setup, store, tmp_path):
    """Hand-made cassette (X API v2 response format): two pages, expansions, a retweet."""
    users = [
        {
            "id": "1",
            "username": "anna",
            "name": "Anna",
            "public_metrics": {"followers_count": 1200},
        },
        {"id": "2", "username": "boris", "name": "Boris", "public_metrics": {"followers_count": 5}},
    ]
    page1 = {
        "data": [
            _tweet(105, lang="fi"),
            _tweet(
                104,
                author="2",
                text="RT @anna: tweepy post 90",
                referenced_tweets=[{"type": "retweeted", "id": "90"}],
            ),
        ],
        "includes": {"users": users, "tweets": [_tweet(90, lang="ru")]},
        "meta": {"newest_id": "105", "oldest_id": "104", "result_count": 2, "next_token": "page2"},
    }
    page2 = {
        "data": [_tweet(103, author="2", lang="und")],
        "includes": {"users": users},
        "meta": {"newest_id": "103", "oldest_id": "103", "result_count": 1},
    }
    path = write_cassette(
        tmp_path / "paging.yaml",
        [
            {"uri": f"{SEARCH}?query=Tweepy&next_token=page2", "status": 200, "body": page2},
            {"uri": f"{SEARCH}?query=Tweepy", "status": 200, "body": page1},
        ],
    )
    config = setup(query="Tweepy")
    with replay(path) as cassette:
        [outcome] = collect_due(config, store, now=LATER)
    assert cassette.all_played and outcome.counts.new == 3
    sent = SENT[0]
    assert "since_id" not in sent.uri and "start_time" in sent.uri  # first run: 7-day window
    assert "tweet.fields" in sent.uri and "expansions" in sent.uri
    assert "next_token=page2" in SENT[-1].uri
    rows = {r["external_id"]: r for r in mentions(store)}
    assert set(rows) == {"105", "103", "90"}  # the retweet itself is not stored
    assert (rows["105"]["author"], rows["105"]["language"], rows["105"]["reach"]) == (
        "anna",
        "fi",
        1200,
    )
    assert rows["105"]["published_at"] == "2026-11-20T10:00:45+00:00"
    assert rows["105"]["url"] == "https://x.com/anna/status/105"
    assert rows["103"]["language_source"] != "hint"  # 'und' is no hint
    assert json.loads(rows["90"]["raw"])["retweets_seen"] == 1
    assert cursor(store)["since_id"] == "105"


def test_429_pushes_next_due_to_the_rate_limit_reset_and_keeps_the_cursor(setup, store, tmp_path):
    reset = int(time.time()) + 900
    path = write_cassette(
        tmp_path / "429.yaml",
        [
            {
                "uri": f"{SEARCH}?query=Tweepy",
                "status": 429,
                "headers": {"x-rate-limit-reset": str(reset)},
                "body": {"title": "Too Many Requests", "status": 429},
            }
        ],
    )
    config = setup()
    with replay(path):
        [outcome] = collect_due(config, store, now=LATER)
    assert "429" in outcome.error
    due = parse_iso(store.db["sources"].get("x")["next_due_at"])
    assert due.timestamp() >= reset - 2
    assert cursor(store) == {}


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (
            403,
            {
                "client_id": "1",
                "required_enrollment": "Appropriate Level of API Access",
                "reason": "client-not-enrolled",
                "title": "Client Forbidden",
                "type": "https://api.twitter.com/2/problems/client-forbidden",
                "errors": [
                    {
                        "code": 453,
                        "message": "You currently have access to a subset of X API V2 endpoints",
                    }
                ],
            },
            "access tier",
        ),
        (
            401,
            {
                "title": "Unauthorized",
                "type": "about:blank",
                "status": 401,
                "detail": "Unauthorized",
            },
            "token was refused",
        ),
    ],
)
def test_no_access_disables_the_source_with_a_message(setup, store, tmp_path, status, body, words):
    path = write_cassette(
        tmp_path / "denied.yaml",
        [{"uri": f"{SEARCH}?query=Tweepy", "status": status, "body": body}],
    )
    config = setup()
    with replay(path):
        [outcome] = collect_due(config, store, now=LATER)
    assert f"HTTP {status}" in outcome.error
    row = store.db["sources"].get("x")
    assert row["enabled"] == 0 and words in row["disabled_reason"]


def test_monthly_read_budget_stops_before_it_is_spent(setup, store):
    config = setup(query="Tweepy", max_pages=1, monthly_read_budget=25, max_results=10)
    with replay(CASSETTES / "x" / "test_client_search_recent_tweets.yaml", allow_repeats=True):
        collect_due(config, store, now=LATER)  # 10 read
        collect_due(config, store, now=LATER)  # 20 read
        [third] = collect_due(config, store, now=LATER)  # another 10 would pass 25
    assert "monthly read budget used (20 of 25 posts)" in third.error
    assert cursor(store)["reads"][utcnow().strftime("%Y-%m")] == 20


def test_missing_token_names_the_variable(setup, store, monkeypatch):
    monkeypatch.delenv("X_BEARER_TOKEN")
    config = setup()
    [outcome] = collect_due(config, store, now=LATER)
    assert "set the environment variable X_BEARER_TOKEN" in outcome.error


def test_the_bearer_token_is_never_logged_or_stored(setup, store, caplog, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", "SECRET-xyz")
    caplog.set_level(logging.DEBUG)
    config = setup()
    with replay(CASSETTES / "x" / "test_client_search_recent_tweets.yaml"):
        collect_due(config, store, now=LATER)
    assert "SECRET-xyz" not in caplog.text
    dump = stored_text(store)
    assert "SECRET-xyz" not in dump and "tweepy" in dump


def test_listener_sources_shows_reads_used(tmp_path, database):
    from click.testing import CliRunner

    from listener.cli import cli

    (tmp_path / "sources.yaml").write_text(
        f"database: {database}\n"
        "brands: [{name: Tweepy}]\n"
        "sources: [{name: x, type: x, query: Tweepy, max_pages: 1, brand: Tweepy,\n"
        "           monthly_read_budget: 1000}]\n"
        "sentiment: {model: ./no-model, offline: true, backend: transformers}\n"
    )
    run = CliRunner().invoke
    with replay(CASSETTES / "x" / "test_client_search_recent_tweets.yaml"):
        done = run(cli, ["-c", str(tmp_path / "sources.yaml"), "collect", "--once"])
    assert done.exit_code == 3  # stored; the (absent) model is what cron should hear about
    out = run(cli, ["-c", str(tmp_path / "sources.yaml"), "sources", "--json"]).output
    assert json.loads(out)[0]["reads"] == 10


def test_cassette_discipline(tmp_path):
    """Recording needs a real token; a cassette that plays nothing fails its test."""
    from tests.cassettes import record_mode

    assert record_mode({}) == "none"
    with pytest.raises(RuntimeError, match="recording refused"):
        record_mode({"LISTENER_RECORD": "1", "X_BEARER_TOKEN": "test-token"})
    path = write_cassette(
        tmp_path / "unused.yaml",
        [{"uri": f"{SEARCH}?query=Tweepy", "status": 200, "body": {"data": []}}],
    )
    with pytest.raises(AssertionError, match="played nothing"), replay(path):
        pass


def test_a_page_that_fails_keeps_what_was_read_and_resumes_there(setup, store, tmp_path):
    """Hand-made cassettes (X API v2 format): page 1 read and billed, page 2 rate limited;
    the posts of page 1 are stored, both pages' reads counted, and the next fetch goes on at
    page 2 under the old since_id, then moves since_id to the newest post."""
    reset = int(time.time()) + 900
    page1 = {
        "data": [_tweet(205), _tweet(204)],
        "includes": {"users": []},
        "meta": {"newest_id": "205", "result_count": 2, "next_token": "p2"},
    }
    page2 = {
        "data": [_tweet(203)],
        "includes": {"users": []},
        "meta": {"newest_id": "203", "result_count": 1},
    }
    config = setup(query="Tweepy", max_pages=5)
    store.db["sources"].update("x", {"cursor": json.dumps({"since_id": "100"})})
    first = write_cassette(
        tmp_path / "first.yaml",
        [
            {
                "uri": f"{SEARCH}?query=Tweepy&since_id=100&next_token=p2",
                "status": 429,
                "headers": {"x-rate-limit-reset": str(reset)},
                "body": {"title": "Too Many Requests"},
            },
            {"uri": f"{SEARCH}?query=Tweepy&since_id=100", "status": 200, "body": page1},
        ],
    )
    with replay(first):
        [outcome] = collect_due(config, store, now=LATER)
    assert outcome.error is None and outcome.counts.new == 2  # page 1 kept
    c = cursor(store)
    assert c["since_id"] == "100" and c["resume"]["token"] == "p2"
    assert c["reads"] == {utcnow().strftime("%Y-%m"): 2}
    row = store.db["sources"].get("x")
    assert "stopped after 1 pages: page 2 failed" in row["last_warning"]
    assert row["next_due_at"] >= datetime.fromtimestamp(reset - 5, UTC).isoformat()
    second = write_cassette(
        tmp_path / "second.yaml",
        [
            {
                "uri": f"{SEARCH}?query=Tweepy&since_id=100&next_token=p2",
                "status": 200,
                "body": page2,
            }
        ],
    )
    with replay(second) as cassette:
        [outcome] = collect_due(config, store, now=LATER + timedelta(hours=1))
    assert cassette.all_played and outcome.counts.new == 1
    c = cursor(store)
    assert c["since_id"] == "205" and "resume" not in c
    assert c["reads"] == {utcnow().strftime("%Y-%m"): 3}


def test_a_since_id_older_than_the_window_restarts_inside_it(setup, store, tmp_path):
    """Hand-made (X's documented 400 for a since_id older than 7 days): the fetch starts
    again at the window's start, stores what it reads, and records the gap."""
    config = setup(query="Tweepy", max_pages=1)
    store.db["sources"].update("x", {"cursor": json.dumps({"since_id": "42"})})
    invalid = {
        "errors": [
            {
                "parameters": {"since_id": ["42"]},
                "message": "Invalid 'since_id':'42'. 'since_id' must be a tweet id created "
                "after 2026-11-16T00:00Z.",
            }
        ],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }
    page = {
        "data": [_tweet(301)],
        "includes": {"users": []},
        "meta": {"newest_id": "301", "result_count": 1},
    }
    path = write_cassette(
        tmp_path / "stale.yaml",
        [
            {"uri": f"{SEARCH}?query=Tweepy&since_id=42", "status": 400, "body": invalid},
            {"uri": f"{SEARCH}?query=Tweepy", "status": 200, "body": page},
        ],
    )
    with replay(path) as cassette:
        [outcome] = collect_due(config, store, now=LATER)
    assert cassette.all_played and outcome.error is None and outcome.counts.new == 1
    assert "start_time" in SENT[-1].uri and "since_id" not in SENT[-1].uri
    assert cursor(store)["since_id"] == "301"
    warning = store.db["sources"].get("x")["last_warning"]
    assert warning.startswith("coverage gap: X would not go on from the last fetch")


def test_text_is_unescaped_and_long_posts_are_whole(setup, store, tmp_path):
    """Hand-made (X API v2 format): X escapes &, < and > in `text`; a long post's full text
    is in `note_tweet`."""
    long_text = "AT&amp;T and Tweepy: " + "word " * 80
    page = {
        "data": [
            _tweet(401, text="NYC &lt; London, AT&amp;T &gt; all, Tweepy"),
            _tweet(402, text=long_text[:280] + "…", note_tweet={"text": long_text + "the end"}),
        ],
        "includes": {"users": []},
        "meta": {"newest_id": "402", "result_count": 2},
    }
    path = write_cassette(
        tmp_path / "entities.yaml", [{"uri": f"{SEARCH}?query=Tweepy", "status": 200, "body": page}]
    )
    config = setup(query="Tweepy", max_pages=1)
    with replay(path):
        collect_due(config, store, now=LATER)
    rows = {r["external_id"]: r for r in mentions(store)}
    assert rows["401"]["text"] == "NYC < London, AT&T > all, Tweepy"
    assert rows["402"]["text"].endswith("the end") and "&amp;" not in rows["402"]["text"]
    assert "note_tweet" in SENT[0].uri  # asked for
