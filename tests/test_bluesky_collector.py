"""Bluesky, replayed from real responses: `tests/fixtures/bluesky/` holds searchPosts,
getAuthorFeed and getProfiles answers recorded by the atproto.dart client's test suite
(myConsciousness/atproto.dart, BSD-3-Clause, commit d009b04). The sign-in answers
(createSession, refreshSession) are built from the AT Protocol lexicon's schema: no recording
of them is public, and they carry nothing but tokens."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from werkzeug import Request, Response

import sources.bluesky
from listener.pipeline import collect_due
from listener.timeutil import utcnow

RECORDED = Path(__file__).parent / "fixtures" / "bluesky"
LATER = utcnow() + timedelta(days=1)


def recorded(name: str) -> str:
    return (RECORDED / f"{name}.json").read_text(encoding="utf-8")


@pytest.fixture
def bluesky(httpserver, monkeypatch):
    """A local XRPC service answering with the recordings; what it was asked, in order."""
    sources.bluesky.SESSIONS = sources.bluesky._Sessions()  # no session from another test
    asked: list[Request] = []
    state = {"search": [recorded("searchPosts")], "expire_once": False, "refuse": False}

    def handler(request: Request) -> Response:
        asked.append(request)
        method = request.path.rsplit("/", 1)[1]
        if method == "com.atproto.server.createSession":
            body = json.loads(request.get_data())
            if state["refuse"] or body != {"identifier": "brand.bsky.social", "password": "app-pw"}:
                return Response('{"error": "AuthenticationRequired"}', status=401)
            return Response(json.dumps(_session(1)), content_type="application/json")
        if method == "com.atproto.server.refreshSession":
            assert request.headers["Authorization"] == "Bearer refresh-1"
            return Response(json.dumps(_session(2)), content_type="application/json")
        if method == "app.bsky.feed.searchPosts":
            if not request.headers.get("Authorization", "").startswith("Bearer access-"):
                return Response('{"error": "AuthMissing"}', status=403)  # as the AppView does
            if state["expire_once"]:
                state["expire_once"] = False
                return Response('{"error": "ExpiredToken"}', status=400)
            pages = state["search"]
            return Response(
                pages.pop(0) if pages else '{"posts": []}', content_type="application/json"
            )
        if method == "app.bsky.feed.getAuthorFeed":
            assert "Authorization" not in request.headers  # keyless
            return Response(recorded("getAuthorFeed"), content_type="application/json")
        if method == "app.bsky.actor.getProfiles":
            return Response(recorded("getProfiles"), content_type="application/json")
        return Response("not found", status=404)

    httpserver.expect_request("", method="GET").respond_with_handler(handler)
    httpserver.expect_request("", method="POST").respond_with_handler(handler)
    return httpserver.url_for("").rstrip("/"), asked, state


def _session(n: int) -> dict[str, str]:
    return {
        "accessJwt": f"access-{n}",
        "refreshJwt": f"refresh-{n}",
        "handle": "brand.bsky.social",
        "did": "did:plc:brandbrandbrandbrandbran",
    }


def test_an_accounts_posts_without_a_key(bluesky, make_config, store):
    base, asked, _ = bluesky
    config = make_config(
        "brands: [{name: Acme}]\n"
        "sources: [{name: sky, type: bluesky, accounts: [shinyakato.dev], brand: Acme,"
        f" appview: '{base}'}}]\n"
    )
    store.sync_sources(config.sources)
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.error is None, outcome.error
    assert outcome.counts.new == 23  # 25 in the feed, 2 of them reposts (not its words)
    row = dict(
        next(
            store.db.query(
                "SELECT * FROM mentions WHERE external_id = "
                "'at://did:plc:iijrtk7ocored6zuziwmqq3c/app.bsky.feed.post/3jukterj4bp2j'"
            )
        )
    )
    assert row["text"] == "Thx, yes he is! 😆" and row["author"] == "shinyakato.dev"
    assert row["url"] == "https://bsky.app/profile/shinyakato.dev/post/3jukterj4bp2j"
    assert row["published_at"] == "2023-04-30T04:42:29+00:00"
    assert row["reach"] == 4945  # the author's followers, from getProfiles
    assert json.loads(row["raw"])["likeCount"] == 1
    feeds = [r for r in asked if r.path.endswith("getAuthorFeed")]
    assert len(feeds) == 2  # the recording's cursor leads back to itself: read once more, stop
    assert any(r.path.endswith("getProfiles") for r in asked)
    asked.clear()
    [again] = collect_due(config, store, now=LATER + timedelta(hours=1))
    assert again.counts.new == 0 and again.counts.updated == 0
    assert [r.path.rsplit("/", 1)[1] for r in asked] == ["app.bsky.feed.getAuthorFeed"]


def test_search_signs_in_once_and_reads_from_where_it_stopped(
    bluesky, make_config, store, monkeypatch
):
    base, asked, state = bluesky
    config = make_config(
        "brands: [{name: Samsung}]\n"
        "sources: [{name: sky, type: bluesky, query: samsung, lang: pt,"
        f" service: '{base}', appview: '{base}'}}]\n"
    )
    store.sync_sources(config.sources)
    [unset] = collect_due(config, store, now=LATER)
    assert "set BLUESKY_HANDLE and BLUESKY_APP_PASSWORD" in (unset.error or "")
    monkeypatch.setenv("BLUESKY_HANDLE", "brand.bsky.social")
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", "app-pw")
    asked.clear()
    [outcome] = collect_due(config, store, now=LATER + timedelta(hours=1))
    assert outcome.error is None, outcome.error
    assert outcome.counts.new == 1
    row = dict(next(store.db.query("SELECT * FROM mentions")))
    assert row["author"] == "luy.gay" and "samsung" in row["text"]
    assert row["url"] == "https://bsky.app/profile/luy.gay/post/3ju4p6u2i3a2g"
    search = next(r for r in asked if r.path.endswith("searchPosts"))
    first_since = search.args["since"]  # a new source looks back two days
    assert first_since[:10] == f"{utcnow() - timedelta(days=2):%Y-%m-%d}"
    assert search.args["q"] == "samsung" and search.args["lang"] == "pt"
    assert search.args["sort"] == "latest" and search.headers["Authorization"] == "Bearer access-1"
    # The next pass asks only for what is newer, with the same session (no second sign-in:
    # Bluesky limits sign-ins per account and day).
    asked.clear()
    state["expire_once"] = True
    [again] = collect_due(config, store, now=LATER + timedelta(hours=2))
    assert again.error is None and again.counts.new == 0
    methods = [r.path.rsplit("/", 1)[1] for r in asked]
    assert "com.atproto.server.createSession" not in methods
    assert methods[:3] == [
        "app.bsky.feed.searchPosts",  # ExpiredToken
        "com.atproto.server.refreshSession",
        "app.bsky.feed.searchPosts",
    ]
    # From the newest post seen (the recording's is older than the first look-back: kept).
    assert asked[2].args["since"] == first_since
    assert asked[2].headers["Authorization"] == "Bearer access-2"


def test_a_refused_app_password_switches_the_source_off(bluesky, make_config, store, monkeypatch):
    base, _, state = bluesky
    state["refuse"] = True
    monkeypatch.setenv("BLUESKY_HANDLE", "brand.bsky.social")
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", "wrong")
    config = make_config(
        "brands: [{name: Acme}]\n"
        f"sources: [{{name: sky, type: bluesky, mentions_of: acme.com, service: '{base}'}}]\n"
    )
    store.sync_sources(config.sources)
    [outcome] = collect_due(config, store, now=LATER)
    assert "refused BLUESKY_HANDLE / BLUESKY_APP_PASSWORD (HTTP 401)" in (outcome.error or "")
    assert "wrong" not in (outcome.error or "")
    assert store.db["sources"].get("sky")["enabled"] == 0


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        (
            "query: acme, accounts: [acme.com]",
            "exactly one of `query`, `mentions_of` or `accounts`",
        ),
        ("accounts: [acme.com], appview: 'ftp://x'", "an http(s) address"),
    ],
)
def test_config_mistakes_are_named(make_config, keys, says):
    from listener.config import ConfigError

    with pytest.raises(ConfigError, match="sources") as caught:
        make_config(f"brands: [{{name: Acme}}]\nsources: [{{name: sky, type: bluesky, {keys}}}]\n")
    assert says in str(caught.value)


def test_the_cursor_moves_to_the_newest_post_seen_and_never_back():
    posts = [{"indexedAt": "2026-11-20T10:00:00.000Z"}, {"indexedAt": "2026-11-21T08:00:00.000Z"}]
    assert sources.bluesky._newest(posts, "2026-11-19T00:00:00Z") == "2026-11-21T08:00:00.000Z"
    assert sources.bluesky._newest([], "2026-11-19T00:00:00Z") == "2026-11-19T00:00:00Z"
    assert sources.bluesky._newest([{"indexedAt": "not a time"}], None) is None
