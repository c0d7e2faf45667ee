"""Mastodon, replayed from real recordings: `tests/cassettes/mastodon/` holds vcrpy cassettes
of Mastodon.py's test suite (halcy/Mastodon.py, MIT, commit b9f2eff), recorded against a real
Mastodon server: a hashtag timeline, an account's mention notifications, a search.
A local server answers each recorded GET with its recorded body."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from werkzeug import Request, Response

from listener.pipeline import collect_due
from listener.timeutil import utcnow

CASSETTES = Path(__file__).parent / "cassettes" / "mastodon"
LATER = utcnow() + timedelta(days=1)


def recorded(cassette: str, path: str) -> str:
    """The body of the recorded GET of `path`."""
    doc = yaml.safe_load((CASSETTES / f"{cassette}.yaml").read_text(encoding="utf-8"))
    for i in doc["interactions"]:
        if i["request"]["method"] == "GET" and i["request"]["uri"].split("?")[0].endswith(path):
            return str(i["response"]["body"]["string"])
    raise KeyError(path)


@pytest.fixture
def instance(httpserver):
    asked: list[Request] = []
    answers = {
        "/api/v1/timelines/tag/hoot": recorded("test_hashtag_tl", "/api/v1/timelines/tag/hoot"),
        "/api/v1/notifications": recorded(
            "test_notifications_mentions_only", "/api/v1/notifications"
        ),
    }

    def handler(request: Request) -> Response:
        asked.append(request)
        if request.path == "/api/v1/notifications" and (
            request.headers.get("Authorization") != "Bearer token-1"
        ):
            return Response('{"error": "The access token is invalid"}', status=401)
        body = answers.get(request.path)
        if body is None:
            return Response("[]", content_type="application/json")
        items = json.loads(body)
        after = request.args.get("min_id")
        # min_id as Mastodon applies it: only items with a larger id.
        items = [i for i in items if after is None or int(i["id"]) > int(after)]
        return Response(json.dumps(items), content_type="application/json")

    httpserver.expect_request("").respond_with_handler(handler)
    return httpserver.url_for("").rstrip("/"), asked


def test_a_hashtag_timeline_without_a_key(instance, make_config, store):
    base, asked = instance
    config = make_config(
        "brands: [{name: Hoot, query: hoot}]\n"
        f"sources: [{{name: masto, type: mastodon, instance: '{base}', hashtags: ['#hoot']}}]\n"
    )
    store.sync_sources(config.sources)
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.error is None, outcome.error
    assert outcome.counts.new == 1
    row = dict(next(store.db.query("SELECT * FROM mentions")))
    assert row["external_id"] == (
        "http://localhost:3000/ap/users/117020566092212359/statuses/117020593741189701"
    )
    assert row["text"] == "#hoot (hashtag toot)"  # from its HTML
    assert row["author"] == "mastodonpy_test_2" and row["reach"] == 0
    assert row["url"] == "http://localhost:3000/@mastodonpy_test_2/117020593741189701"
    assert row["published_at"] == "2026-08-01T13:55:55+00:00"
    assert "Authorization" not in asked[0].headers
    asked.clear()
    [again] = collect_due(config, store, now=LATER + timedelta(hours=1))
    assert again.counts.new == 0 and asked[0].args["min_id"] == "117020593741189701"


def test_mentions_of_your_account_with_a_token(instance, make_config, store, monkeypatch):
    base, asked = instance
    config = make_config(
        "brands: [{name: Acme, query: mastodonpy_test}]\n"
        f"sources: [{{name: masto, type: mastodon, instance: '{base}', mentions: true}}]\n"
    )
    store.sync_sources(config.sources)
    [unset] = collect_due(config, store, now=LATER)
    assert "set MASTODON_ACCESS_TOKEN" in (unset.error or "")
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", "token-1")
    [outcome] = collect_due(config, store, now=LATER + timedelta(hours=1))
    assert outcome.error is None, outcome.error
    assert outcome.counts.new == 1
    row = dict(next(store.db.query("SELECT * FROM mentions")))
    assert row["author"] == "admin" and row["language"] == "en"
    note = next(r for r in asked if r.path == "/api/v1/notifications")
    assert note.args["types[]"] == "mention"
    asked.clear()
    [again] = collect_due(config, store, now=LATER + timedelta(hours=2))
    assert again.counts.new == 0 and asked[0].args["min_id"] == "21"  # the notification's id
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", "revoked")
    [refused] = collect_due(config, store, now=LATER + timedelta(hours=3))
    assert "HTTP 401" in (refused.error or "") and "revoked" not in (refused.error or "")


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ("instance: 'https://m.example'", "give `hashtags`, or `mentions: true`"),
        ("instance: 'm.example', hashtags: [x]", "an http(s) address"),
    ],
)
def test_config_mistakes_are_named(make_config, keys, says):
    from listener.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        make_config(f"brands: [{{name: Acme}}]\nsources: [{{name: m, type: mastodon, {keys}}}]\n")
    assert says in str(caught.value)


def test_a_search_as_far_as_the_instance_allows(
    instance, make_config, store, httpserver, monkeypatch
):
    """Mastodon's v2 search: the recorded answer of an instance without full-text search
    (test_search.yaml: no statuses) stores nothing and is no error; where the instance finds
    posts (here the recorded hashtag post, in the search answer's recorded shape) they are
    stored once, and the next search asks only for newer ones."""
    base, asked = instance
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", "token-1")
    empty = recorded("test_search", "/api/v2/search")
    post = json.loads(recorded("test_hashtag_tl", "/api/v1/timelines/tag/hoot"))[0]
    answers = [empty, json.dumps({**json.loads(empty), "statuses": [post]})]

    def search(request: Request) -> Response:
        asked.append(request)
        assert request.headers.get("Authorization") == "Bearer token-1"
        assert request.args["type"] == "statuses" and request.args["q"] == "hoot"
        doc = json.loads(answers[0] if len(answers) == 1 else answers.pop(0))
        after = request.args.get("min_id")
        doc["statuses"] = [s for s in doc["statuses"] if after is None or int(s["id"]) > int(after)]
        return Response(json.dumps(doc), content_type="application/json")

    httpserver.clear()
    httpserver.expect_request("/api/v2/search").respond_with_handler(search)
    config = make_config(
        "brands: [{name: Hoot, query: hoot}]\n"
        f"sources: [{{name: masto, type: mastodon, instance: '{base}', query: hoot}}]\n"
    )
    store.sync_sources(config.sources)
    [nothing] = collect_due(config, store, now=LATER)
    assert nothing.error is None and nothing.counts.new == 0
    [found] = collect_due(config, store, now=LATER + timedelta(hours=1))
    assert found.error is None and found.counts.new == 1
    [again] = collect_due(config, store, now=LATER + timedelta(hours=2))
    assert again.error is None and again.counts.new == 0
    assert asked[-1].args["min_id"] == post["id"]  # only newer posts are asked for


def test_a_search_needs_a_token(make_config, store, monkeypatch):
    monkeypatch.delenv("MASTODON_ACCESS_TOKEN", raising=False)
    config = make_config(
        "brands: [{name: Hoot, query: hoot}]\n"
        "sources: [{name: masto, type: mastodon, instance: 'https://m.example', query: hoot}]\n"
    )
    store.sync_sources(config.sources)
    [outcome] = collect_due(config, store, now=LATER)
    assert "set MASTODON_ACCESS_TOKEN to an access token" in outcome.error
    assert "read:search" in outcome.error
