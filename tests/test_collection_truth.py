"""Collectors and the collection loop against what real services and real clocks do."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import time_machine
from werkzeug import Request, Response

from listener.pipeline import collect_due
from listener.timeutil import utcnow
from tests.conftest import rss

FEED = rss([{"title": "acme", "guid": "1"}])


def test_a_clock_corrected_backwards_does_not_leave_a_source_unfetched(
    make_config, store, httpserver
):
    httpserver.expect_request("/f.xml").respond_with_data(FEED, content_type="text/xml")
    config = make_config(
        "brands: [{name: Acme}]\nsources: [{name: s, type: rss, url: "
        f"'{httpserver.url_for('/f.xml')}', brand: Acme, interval: 15m}}]\n"
    )
    store.sync_sources(config.sources)
    ahead = utcnow() + timedelta(days=1)  # the clock ran a day fast when this fetch ran...
    with time_machine.travel(ahead, tick=True):
        collect_due(config, store)
    stored = store.db["sources"].get("s")["next_due_at"]
    assert stored > (ahead + timedelta(minutes=14)).isoformat()
    now = utcnow()  # ...and was corrected: the source is due 15 minutes from now, not tomorrow
    due = store.next_due(now)["s"]
    assert due is not None and due <= (now + timedelta(minutes=16)).isoformat()
    assert store.due_sources(now + timedelta(minutes=16)) == ["s"]
    assert store.due_sources(now) == []


def test_detection_wins_over_a_wrong_feed_language_and_both_are_kept(
    make_config, store, httpserver
):
    """Hand-made in Atom's format: a feed marked xml:lang="en" whose reviews are Finnish and
    Arabic (as an app-review aggregator's feed was)."""
    fi = "Sovellus kaatuu joka kerta kun yritän maksaa, eikä asiakaspalvelu vastaa viesteihin."
    ar = "التطبيق يتوقف عن العمل في كل مرة أحاول فيها الدفع، وخدمة العملاء لا ترد على الرسائل."
    en = "The app crashes every time I try to pay, and support does not answer my messages."
    entries = "".join(
        f"<entry><id>urn:{i}</id><title>acme</title><content>{t}</content></entry>"
        for i, t in enumerate((fi, ar, en, "ok acme"))
    )
    body = (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
        f'xml:lang="en"><title>reviews</title>{entries}</feed>'
    ).encode()
    httpserver.expect_request("/f.xml").respond_with_data(body, content_type="application/atom+xml")
    config = make_config(
        "brands: [{name: Acme}]\nsources: [{name: s, type: rss, url: "
        f"'{httpserver.url_for('/f.xml')}', brand: Acme}}]\n"
    )
    store.sync_sources(config.sources)
    collect_due(config, store, now=utcnow() + timedelta(days=1))
    got = {
        r["external_id"]: (r["language"], r["language_hint"], r["language_source"])
        for r in store.db.query("SELECT * FROM mentions")
    }
    assert got["urn:0"] == ("fi", "en", "detected")
    assert got["urn:1"] == ("ar", "en", "detected")
    assert got["urn:2"] == ("en", "en", "hint")
    assert got["urn:3"] == ("en", "en", "hint")  # too short to overrule the feed


def test_a_feed_that_mints_new_guids_stores_each_post_once(make_config, store, httpserver):
    """Hand-made: five reviews whose guid changes at every fetch (a CMS that stamps the fetch
    time into it), three fetches."""
    fetches = iter(range(3))

    def feed(request: Request) -> Response:
        n = next(fetches)
        items = [
            {
                "title": f"acme review {i}",
                "guid": f"{i}-{n}-{uuid.uuid4()}",
                "description": f"The app lost my settings again, number {i}",
            }
            for i in range(5)
        ]
        return Response(rss(items), content_type="application/rss+xml")

    httpserver.expect_request("/f.xml").respond_with_handler(feed)
    config = make_config(
        "brands: [{name: Acme}]\nsources: [{name: s, type: rss, kind: social, "
        f"url: '{httpserver.url_for('/f.xml')}', brand: Acme}}]\n"
    )
    store.sync_sources(config.sources)
    for _ in range(3):
        [outcome] = collect_due(config, store, now=utcnow() + timedelta(days=1))
        assert outcome.error is None
    assert store.db["mentions"].count == 5  # was 15


def test_the_same_words_a_week_later_are_a_new_post(make_config, store, httpserver):
    """A reminted guid is dropped only within REMINT_WINDOW (7 days): the same complaint
    posted again next month is a new mention."""

    def feed(request: Request) -> Response:
        item = {
            "title": "acme review",
            "guid": str(uuid.uuid4()),
            "description": "The app lost my settings again after the update",
        }
        return Response(rss([item]), content_type="application/rss+xml")

    httpserver.expect_request("/f.xml").respond_with_handler(feed)
    config = make_config(
        "brands: [{name: Acme}]\nsources: [{name: s, type: rss, kind: social, "
        f"url: '{httpserver.url_for('/f.xml')}', brand: Acme}}]\n"
    )
    store.sync_sources(config.sources)
    start = utcnow()
    for days, stored in [(0, 1), (1, 1), (9, 2), (10, 2)]:
        with time_machine.travel(start + timedelta(days=days), tick=True):
            [outcome] = collect_due(config, store, now=utcnow() + timedelta(minutes=1))
            assert outcome.error is None
        assert store.db["mentions"].count == stored, days


APPLE_XML = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns:im="http://itunes.apple.com/rss" xmlns="http://www.w3.org/2005/Atom" xml:lang="ja">
<id>https://itunes.apple.com/jp/rss/customerreviews/id=1404176564/sortBy=mostRecent/page=1/xml</id>
<title>iTunes Store: カスタマーレビュー</title><updated>2020-08-12T08:00:37-07:00</updated>
{entries}</feed>"""
APPLE_ENTRY = """<entry><updated>2020-08-1{i}T04:06:20-07:00</updated><id>631000683{i}</id>
<title>髪型追加してもらいたい {i}</title>
<content type="text">いろんな髪型追加して欲しい {i}</content>
<im:voteSum>0</im:voteSum><im:rating>5</im:rating><im:version>3.5.0</im:version>
<author><name>単刀直入にさきいか</name><uri>https://itunes.apple.com/jp/reviews/id945418104</uri>
</author><link rel="related" href="https://itunes.apple.com/jp/review?id=1404176564&amp;type=Purple%20Software"/>
</entry>"""


def apple_feed(n: int = 3) -> bytes:
    """Apple's customer-review XML as its feeds are written (ids are bare numbers), built from
    a real response's structure; not a recording."""
    return APPLE_XML.format(entries="".join(APPLE_ENTRY.format(i=i) for i in range(n))).encode()


def test_a_bare_id_is_not_a_link_and_survives_the_feed_moving(make_config, store, httpserver):
    httpserver.expect_request("/new.xml").respond_with_data(
        apple_feed(), content_type="application/atom+xml"
    )
    httpserver.expect_request("/old.xml").respond_with_data(
        "", status=301, headers={"Location": httpserver.url_for("/new.xml")}
    )
    config = make_config(
        "brands: [{name: Acme}]\nsources: [{name: s, type: rss, url: "
        f"'{httpserver.url_for('/old.xml')}', brand: Acme}}]\n"
    )
    store.sync_sources(config.sources)
    later = utcnow() + timedelta(days=1)
    [first] = collect_due(config, store, now=later)
    assert first.counts.new == 3
    rows = list(store.db.query("SELECT external_id, url FROM mentions ORDER BY external_id"))
    assert [r["external_id"] for r in rows] == ["6310006830", "6310006831", "6310006832"]
    # no link made up from the feed's URL and the id (Apple's own related link is fine)
    assert not [r for r in rows if (r["url"] or "").startswith(httpserver.url_for("/"))]
    [second] = collect_due(config, store, now=later + timedelta(days=1))  # now from /new.xml
    assert second.counts.new == 0 and store.db["mentions"].count == 3


def test_entries_stored_under_a_resolved_id_keep_their_rows(make_config, store, httpserver):
    """Before, a bare id was resolved against the feed's URL and stored so: those rows are
    taken over by the bare id, not stored a second time."""
    from listener.storage import MatchedEntry
    from sources.base import FetchResult, SourceState
    from sources.rss import parse_feed

    url = httpserver.url_for("/f.xml")
    httpserver.expect_request("/f.xml").respond_with_data(
        apple_feed(), content_type="application/atom+xml"
    )
    config = make_config(
        f"brands: [{{name: Acme}}]\nsources: [{{name: s, type: rss, url: '{url}', brand: Acme}}]\n"
    )
    store.sync_sources(config.sources)
    legacy = parse_feed(apple_feed(), url)
    for e in legacy:
        e.external_id = e.aliases[0]  # what the earlier version stored
    now = utcnow()
    store.save_fetch(
        "s",
        FetchResult(legacy, SourceState()),
        [MatchedEntry(e, ("Acme",)) for e in legacy],
        started=now,
        finished=now,
        next_due=now,
    )
    assert store.db["mentions"].count == 3
    [outcome] = collect_due(config, store, now=now + timedelta(days=1))
    assert outcome.counts.new == 0 and store.db["mentions"].count == 3
    assert {r["external_id"] for r in store.db.query("SELECT external_id FROM mentions")} == {
        "6310006830",
        "6310006831",
        "6310006832",
    }


def google_news_item(title: str, token: str, source: str | None, guid: str) -> str:
    link = f"https://news.google.com/rss/articles/{token}?oc=5"
    cluster = (
        f'&lt;ol&gt;&lt;li&gt;&lt;a href="{link}"&gt;{title}&lt;/a&gt;&amp;nbsp;'
        f'&lt;font color="#6f6f6f"&gt;{source or "RTBF"}&lt;/font&gt;&lt;/li&gt;'
        '&lt;li&gt;&lt;a href="https://news.google.com/rss/articles/x"&gt;Another '
        "outlet on the same story&lt;/a&gt;&lt;/li&gt;&lt;/ol&gt;"
    )
    src = f'<source url="https://www.rtbf.be">{source}</source>' if source else ""
    return (
        f"<item><title>{title} - {source or 'RTBF'}</title><link>{link}</link>"
        f'<guid isPermaLink="false">{guid}</guid><pubDate>Sun, 08 Mar 2020 10:32:07 GMT'
        f"</pubDate><description>{cluster}</description>{src}</item>"
    )


# A real article token from a Google News feed (older form: the publisher's URL inside it).
RTBF_TOKEN = (
    "CBMiiwFodHRwczovL3d3dy5ydGJmLmJlL2luZm8vc29jaWV0ZS9kZXRhaWxfY29yb25hdmlydXMtZW4t"
    "YmVsZ2lxdWUtMjAwLWNhcy1kZXRlY3Rlcy1hdS10b3RhbC1sYS1jaXJjdWxhdGlvbi1kdS12aXJ1cy1y"
    "ZXN0ZS1saW1pdGVlP2lkPTEwNDUwNzkz0gEA"
)
OPAQUE_TOKEN = "CBMiXkFVX3lxTFBReTJhSkRlckZEdU5yRy1UUUQ2VnBTb01FRnlJMzZYMTJXOEx6cG41VjhLN3NY"


def test_google_news_items_read_as_news_items(make_config, store, httpserver, monkeypatch):
    """Built in Google News RSS's structure (a real token; item layout as in a real feed):
    publisher links recovered where the token carries them, " - Publisher" cut, the
    headline cluster not taken for the item's text, the placeholder not stored."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Acme - '
        "Google News</title><language>fr</language>"
        + google_news_item(
            "Coronavirus en Belgique: Acme ferme ses magasins", RTBF_TOKEN, "RTBF", "1"
        )
        + google_news_item("Acme rappelle un produit", OPAQUE_TOKEN, None, "2")
        + "<item><title>This feed is not available.</title><link>https://news.google.com/"
        "</link><guid>3</guid></item></channel></rss>"
    ).encode()
    httpserver.expect_request("/rss/search").respond_with_data(body, content_type="text/xml")
    from sources import googlenews

    monkeypatch.setattr(googlenews, "is_google_news", lambda url: True)
    config = make_config(
        "brands: [{name: Acme}]\nsources: [{name: gn, type: rss, url: "
        f"'{httpserver.url_for('/rss/search')}', brand: Acme}}]\n"
    )
    store.sync_sources(config.sources)
    collect_due(config, store, now=utcnow() + timedelta(days=1))
    rows = {r["external_id"]: r for r in store.db.query("SELECT * FROM mentions")}
    assert set(rows) == {"1", "2"}  # the placeholder is not a mention
    first, second = rows["1"], rows["2"]
    assert first["title"] == first["text"] == "Coronavirus en Belgique: Acme ferme ses magasins"
    assert first["author"] == "RTBF" and "Another outlet" not in first["text"]
    assert first["url"].startswith("https://www.rtbf.be/info/societe/detail_coronavirus")
    assert second["title"] == "Acme rappelle un produit"  # publisher from the list's <font>
    assert second["url"].startswith("https://news.google.com/rss/articles/")  # opaque: kept


def test_dates_in_the_feeds_language_are_read_and_the_future_is_clamped(
    make_config, store, httpserver
):
    """Hand-made in RSS 2.0: dates written in Portuguese (as a Brazilian latin-1 feed wrote
    them: feedparser reads none), and one a day in the future."""
    future = (utcnow() + timedelta(days=1)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    body = (
        '<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel>'
        "<title>Not\xedcias</title><language>pt-BR</language>"
        "<item><title>Acme abre loja</title><guid>1</guid>"
        "<pubDate>Seg, 24 Set 2018 19:42:40 -0300</pubDate></item>"
        "<item><title>Acme fecha loja</title><guid>2</guid>"
        f"<pubDate>{future}</pubDate></item></channel></rss>"
    ).encode("latin-1")
    httpserver.expect_request("/f.xml").respond_with_data(body, content_type="text/xml")
    config = make_config(
        "brands: [{name: Acme}]\nsources: [{name: s, type: rss, url: "
        f"'{httpserver.url_for('/f.xml')}', brand: Acme}}]\n"
    )
    store.sync_sources(config.sources)
    collect_due(config, store)
    rows = {r["external_id"]: r for r in store.db.query("SELECT * FROM mentions")}
    assert rows["1"]["published_at"] == "2018-09-24T22:42:40+00:00"
    assert rows["1"]["title"] == "Acme abre loja"
    clamped = rows["2"]
    assert clamped["published_at"] <= clamped["fetched_at"]
    assert json.loads(clamped["raw"])["published_as_sent"].startswith(
        (utcnow() + timedelta(days=1)).strftime("%Y-%m-%d")
    )
    assert json.loads(clamped["raw"])["title"] == "Acme fecha loja"  # the rest kept beside it


def serve_and_collect(
    make_config, store, httpserver, body: bytes, content_type: str, kind: str = "social"
) -> dict[str, dict]:
    httpserver.expect_request("/f").respond_with_data(body, content_type=content_type)
    config = make_config(
        "brands: [{name: Acme, query: 'acme OR アプリ OR แอป'}]\nsources: "
        f"[{{name: s, type: rss, kind: {kind}, url: "
        f"'{httpserver.url_for('/f')}'}}]\n"
    )
    store.sync_sources(config.sources)
    [outcome] = collect_due(config, store, now=utcnow() + timedelta(days=1))
    assert outcome.error is None, outcome.error
    return {r["external_id"]: r for r in store.db.query("SELECT * FROM mentions")}


def test_json_feed_is_read(make_config, store, httpserver):
    """Hand-made in JSON Feed 1.1's documented format, as hnrss.org's .jsonfeed writes it."""
    body = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "Hacker News: acme",
            "home_page_url": "https://news.ycombinator.com/",
            "language": "en",
            "items": [
                {
                    "id": "https://news.ycombinator.com/item?id=1",
                    "title": "Acme is down again",
                    "content_html": "<p>Acme&#x27;s API returns 500s</p>",
                    "url": "https://news.ycombinator.com/item?id=1",
                    "date_published": "2026-11-20T10:00:00Z",
                    "authors": [{"name": "pg"}],
                },
                {
                    "id": "2",
                    "content_text": "acme, plain text",
                    "date_modified": "2026-11-20T11:00:00+02:00",
                    "author": {"name": "dang"},
                },
                "not an item",
            ],
        }
    ).encode()
    rows = serve_and_collect(make_config, store, httpserver, body, "application/feed+json")
    first = rows["https://news.ycombinator.com/item?id=1"]
    assert (first["title"], first["text"], first["author"]) == (
        "Acme is down again",
        "Acme's API returns 500s",
        "pg",
    )
    assert first["published_at"] == "2026-11-20T10:00:00+00:00"
    assert rows["2"]["author"] == "dang" and rows["2"]["published_at"] == (
        "2026-11-20T09:00:00+00:00"
    )
    run = next(store.db.query("SELECT * FROM fetch_runs"))
    assert run["rejected"] == 1  # the item that is not an object, counted


def test_authors_text_and_scripts_without_spaces(make_config, store, httpserver):
    """Hand-made in RSS 2.0: an "email (Name)" author, a bare address, a description escaped
    twice (as Reddit's .rss escapes its HTML), and posts in Japanese and Thai."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t'
        "</title><item><title>acme</title><guid>1</guid>"
        "<author>user@forum.example.org (Forum User)</author></item>"
        "<item><title>acme</title><guid>2</guid><author>jane@example.com</author></item>"
        "<item><title>acme</title><guid>3</guid><description>&amp;lt;!-- SC_OFF --&amp;"
        "gt;&amp;lt;div class=&amp;quot;md&amp;quot;&amp;gt;&amp;lt;p&amp;gt;Acme is slow"
        "&amp;lt;/p&amp;gt;&amp;lt;/div&amp;gt;&amp;lt;!-- SC_ON --&amp;gt;</description>"
        "</item><item><title>レビュー</title><guid>4</guid><description>このアプリは最高です"
        "</description></item><item><title>รีวิว</title><guid>5</guid><description>"
        "แอปนี้ยอดเยี่ยมมาก</description></item></channel></rss>"
    ).encode()
    rows = serve_and_collect(make_config, store, httpserver, body, "application/rss+xml")
    assert rows["1"]["author"] == "Forum User"
    assert rows["2"]["author"] == "jane"
    assert rows["3"]["text"] == "Acme is slow"
    assert {"4", "5"} <= set(rows)  # アプリ and แอป found inside words run together


def test_links_in_content_are_resolved_against_the_feeds_xml_base():
    """Relative-URI resolution is skipped where the body sets no base (it would change
    nothing); where it sets one, in UTF-8 or UTF-16, content links still resolve against it."""
    from sources.rss import parse_feed

    def atom(base: str) -> str:
        return (
            '<?xml version="1.0"?>'
            f'<feed xmlns="http://www.w3.org/2005/Atom"{base}><entry><id>urn:1</id>'
            '<content type="html">&lt;p&gt;Acme &lt;a href=/help&gt;help&lt;/a&gt;&lt;/p&gt;'
            "</content></entry></feed>"
        )

    based = atom(' xml:base="https://ex.com/blog/"')
    utf16 = based.replace('"1.0"?>', '"1.0" encoding="utf-16"?>').encode("utf-16")
    for body in (based.encode(), utf16):
        (entry,) = parse_feed(body, "https://ex.com/feed")
        assert entry.html == '<p>Acme <a href="https://ex.com/help">help</a></p>'
    (entry,) = parse_feed(atom("").encode(), "https://ex.com/feed")
    assert entry.html == '<p>Acme <a href="/help">help</a></p>'
