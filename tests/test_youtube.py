"""YouTube comments, replayed from real YouTube Data API v3 answers recorded by python-youtube's
test suite (sns-sdks/python-youtube, MIT; tests/fixtures/youtube). The refusals (comments
turned off, quota used up, a bad key) are the error documents of YouTube's published error
reference, marked where they are built."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from werkzeug import Request, Response

from listener.pipeline import collect_due
from listener.timeutil import utcnow
from sources import youtube

FIXTURES = Path(__file__).parent / "fixtures" / "youtube"
KEY = "AIzaSyLocalTestKey0123456789abcdefghij"
LATER = utcnow() + timedelta(days=1)
CHANNEL = "UCa-vrCLQHviTOVnEKDOdetQ"  # the recorded channel
VIDEO = "F1UP7wRCPH8"  # the recorded video, two pages
NO_COMMENTS = "xxxxxxxxxxx"


def recorded(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text()


def google_error(status: int, message: str, reason: str, domain: str) -> Response:
    """An error document in the shape of YouTube's error reference (built, not recorded)."""
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
        }
    }
    return Response(json.dumps(body), status=status, content_type="application/json")


class YouTube:
    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.quota_left = True
        self.channel_asks: list[list[str]] = []

    def handle(self, request: Request) -> Response:
        self.calls.append({"path": request.path, **request.args})
        if request.headers.get("X-Goog-Api-Key") != KEY:
            return google_error(
                400, "API key not valid. Please pass a valid API key.", "badRequest", "global"
            )
        assert "key" not in request.args  # the key never travels in a URL
        if not self.quota_left:
            return google_error(
                403,
                "The request cannot be completed because you have exceeded your "
                '<a href="/youtube/v3/getting-started#quota">quota</a>.',
                "quotaExceeded",
                "youtube.quota",
            )
        if request.path == "/youtube/v3/search":
            assert request.args["type"] == "video" and request.args["order"] == "date"
            assert request.args["publishedAfter"]
            return Response(recorded("search_by_keywords_p1"), content_type="application/json")
        if request.path == "/youtube/v3/channels":
            # The recorded channels.list answer, its two channels renamed to the first two
            # asked for (built from the recording, so the statistics are real ones).
            self.channel_asks.append(request.args["id"].split(","))
            doc = json.loads(recorded("channels_info_multiple"))
            wanted = request.args["id"].split(",")
            doc["items"] = [dict(c, id=i) for c, i in zip(doc["items"], wanted, strict=False)]
            return Response(json.dumps(doc), content_type="application/json")
        if request.path != "/youtube/v3/commentThreads":
            return google_error(404, "Not Found", "notFound", "global")
        assert request.args["order"] == "time"
        if request.args.get("allThreadsRelatedToChannelId") == CHANNEL:
            doc = json.loads(recorded("comment_threads_all_to_me"))
            if "replies" in request.args["part"]:
                # The replies part, as the reference shapes it, holding the recorded replies
                # to this thread (comments.list?parentId=, recorded a little later).
                replies = json.loads(recorded("comments_by_parent_paged_1"))["items"]
                for thread in doc["items"]:
                    if thread["id"] == replies[0]["snippet"]["parentId"]:
                        thread["replies"] = {"comments": replies}
                        thread["snippet"]["totalReplyCount"] = len(replies)
            return Response(json.dumps(doc), content_type="application/json")
        video = request.args.get("videoId")
        if video == VIDEO:
            page = "2" if request.args.get("pageToken") else "1"
            body = recorded(f"comment_threads_by_video_paged_{page}")
            return Response(body, content_type="application/json")
        if video == NO_COMMENTS:
            return google_error(
                403,
                'The video identified by the <code><a href="/youtube/v3/docs/commentThreads/'
                'list#videoId">videoId</a></code> parameter has disabled comments.',
                "commentsDisabled",
                "youtube.commentThread",
            )
        empty = {"kind": "youtube#commentThreadListResponse", "items": []}
        return Response(json.dumps(empty), content_type="application/json")


@pytest.fixture
def yt(httpserver, monkeypatch):
    monkeypatch.setenv("YOUTUBE_API_KEY", KEY)
    server = YouTube()
    httpserver.expect_request("").respond_with_handler(server.handle)
    return httpserver.url_for("").rstrip("/"), server


def yt_config(make_config, base: str, **keys: object):
    extra = "".join(f", {k}: {json.dumps(v)}" for k, v in keys.items())
    return make_config(
        "brands: [{name: Acme}]\n"
        f"sources: [{{name: yt, type: youtube, brand: Acme, api: '{base}'{extra}}}]\n"
    )


def source_row(store) -> dict:
    [row] = [s for s in store.sources() if s["id"] == "yt"]
    return dict(row)


def test_comments_on_a_channels_videos(yt, make_config, store):
    base, server = yt
    config = yt_config(make_config, base, channel_id=CHANNEL)
    store.sync_sources(config.sources)
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.error is None, outcome.error
    assert outcome.counts.new == 6  # four threads, and two replies that came with one
    rows = {r["text"]: dict(r) for r in store.db.query("SELECT * FROM mentions")}
    third = rows["this is the third reply!"]
    assert third["url"] == (
        "https://www.youtube.com/watch?v=JE8xdDp5B8Q&lc=Ugw5zYU6n9pmIgAZWvN4AaABAg.91zT3cYb5B291za6voUoRh"
    )
    assert json.loads(third["raw"])["parent_id"] == "Ugw5zYU6n9pmIgAZWvN4AaABAg"
    hope = rows["Hope to go next time. yah!"]
    assert hope["author"] == "kun liu"
    assert hope["url"] == (
        "https://www.youtube.com/watch?v=JE8xdDp5B8Q&lc=UgyWeTdgc4sc1xgmbld4AaABAg"
    )
    assert hope["published_at"].startswith("2019-12-01T03:36:55")
    assert json.loads(hope["raw"])["author_channel_id"] == "UCNvMBmCASzTNNX8lW3JRMbw"
    assert rows["大满贯"]["url"] == f"https://www.youtube.com/channel/{CHANNEL}"  # on the channel
    assert source_row(store)["kind"] == "social"
    [asked] = server.channel_asks  # the commenters' channels, once each, in one call
    assert sorted(asked) == asked and "UCNvMBmCASzTNNX8lW3JRMbw" in asked
    reach = {r["author"]: r["reach"] for r in rows.values()}
    assert reach[hope["author"]] in (10700000, 2260000)  # a recorded subscriber count

    [again] = collect_due(config, store, now=LATER + timedelta(hours=1))
    assert again.error is None and again.counts.new == 0
    units = json.loads(source_row(store)["cursor"])["units"]
    assert list(units.values()) == [3]  # a page per fetch and one subscriber lookup


def test_chosen_videos_one_with_comments_off_does_not_stop_the_other(yt, make_config, store):
    base, _server = yt
    config = yt_config(make_config, base, videos=[NO_COMMENTS, VIDEO])
    store.sync_sources(config.sources)
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.error is None, outcome.error
    assert outcome.counts.new == 5  # two recorded pages holding the same five threads
    texts = {r["text"]: r for r in store.db.query("SELECT text, html FROM mentions")}
    link = texts["Google.com"]  # textOriginal; the HTML YouTube shows is kept beside it
    assert link["html"] == '<a href="http://google.com/">Google.com</a>'
    warning = source_row(store)["last_warning"]
    assert NO_COMMENTS in warning and "has disabled comments" in warning


def test_a_search_finds_videos_and_is_repeated_only_every_few_hours(yt, make_config, store):
    base, server = yt
    config = yt_config(make_config, base, query="surfing", max_videos=3, search_every="6h")
    store.sync_sources(config.sources)
    [first] = collect_due(config, store, now=LATER)
    assert first.error is None, first.error
    searches = [c for c in server.calls if c["path"].endswith("/search")]
    assert len(searches) == 1 and searches[0]["q"] == "surfing"
    videos = [c["videoId"] for c in server.calls if c["path"].endswith("/commentThreads")]
    assert videos == ["gQ_1zX-F_No", "i2hewkFijuY", "_Z56nIAQj7Q"]  # the newest three found
    assert list(json.loads(source_row(store)["cursor"])["units"].values()) == [103]

    collect_due(config, store, now=LATER + timedelta(hours=1))
    assert len([c for c in server.calls if c["path"].endswith("/search")]) == 1
    assert list(json.loads(source_row(store)["cursor"])["units"].values()) == [106]


def test_the_daily_units_are_never_passed(yt, make_config, store):
    base, server = yt
    config = yt_config(make_config, base, query="surfing", max_videos=3, daily_units=102)
    store.sync_sources(config.sources)
    [first] = collect_due(config, store, now=LATER)
    assert first.error is None
    assert list(json.loads(source_row(store)["cursor"])["units"].values()) == [102]
    calls = len(server.calls)
    [second] = collect_due(config, store, now=LATER + timedelta(hours=1))
    assert "daily quota used (102 of 102 units)" in second.error
    assert "midnight Pacific time" in second.error
    assert len(server.calls) == calls  # nothing asked


def test_youtubes_own_quota_and_a_bad_key(yt, make_config, store, monkeypatch):
    base, server = yt
    config = yt_config(make_config, base, channel_id=CHANNEL)
    store.sync_sources(config.sources)
    server.quota_left = False
    [used] = collect_due(config, store, now=LATER)
    assert "YouTube's quota is used up" in used.error and "exceeded your quota" in used.error
    assert "paused until" in used.error
    assert KEY not in used.error

    server.quota_left = True
    monkeypatch.setenv("YOUTUBE_API_KEY", "AIzaSyWrongKey0000000000000000000000000")
    [bad] = collect_due(config, store, now=LATER + timedelta(days=2))
    assert "YouTube refused the key in YOUTUBE_API_KEY" in bad.error
    assert "AIzaSyWrongKey" not in bad.error
    assert not source_row(store)["enabled"]  # switched off until `listener sources enable`


def test_config_wants_exactly_one_target(make_config):
    from listener.config import ConfigError

    with pytest.raises(ConfigError, match="exactly one of"):
        make_config(
            "brands: [{name: Acme}]\n"
            f"sources: [{{name: yt, type: youtube, channel_id: {CHANNEL}, query: x}}]\n"
        )
    with pytest.raises(ConfigError, match="is not a video id"):
        make_config(
            "brands: [{name: Acme}]\nsources: [{name: yt, type: youtube, videos: [nope]}]\n"
        )
    numeric = make_config(  # an id YAML reads as a number is still the id
        "brands: [{name: Acme}]\nsources: [{name: yt, type: youtube, videos: [12345678901]}]\n"
    )
    assert numeric.sources[0].videos == ["12345678901"]
    assert youtube.quota_day(LATER)  # the Pacific quota day is known
