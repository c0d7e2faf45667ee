"""Collectors and the collection loop against what real services and real clocks do."""

from __future__ import annotations

import uuid
from datetime import timedelta

import time_machine
from werkzeug import Request, Response

from listener.pipeline import collect_due
from listener.timeutil import utcnow
from tests.conftest import rss

FEED = rss([{"title": "acme", "guid": "1"}])


def test_a_clock_corrected_backwards_does_not_leave_a_source_unfetched(make_config, store,
                                                                      httpserver):
    httpserver.expect_request("/f.xml").respond_with_data(FEED, content_type="text/xml")
    config = make_config("brands: [{name: Acme}]\nsources: [{name: s, type: rss, url: "
                         f"'{httpserver.url_for('/f.xml')}', brand: Acme, interval: 15m}}]\n")
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


def test_detection_wins_over_a_wrong_feed_language_and_both_are_kept(make_config, store,
                                                                     httpserver):
    """Hand-made in Atom's format: a feed marked xml:lang="en" whose reviews are Finnish and
    Arabic (as an app-review aggregator's feed was)."""
    fi = "Sovellus kaatuu joka kerta kun yritän maksaa, eikä asiakaspalvelu vastaa viesteihin."
    ar = "التطبيق يتوقف عن العمل في كل مرة أحاول فيها الدفع، وخدمة العملاء لا ترد على الرسائل."
    en = "The app crashes every time I try to pay, and support does not answer my messages."
    entries = "".join(f"<entry><id>urn:{i}</id><title>acme</title><content>{t}</content>"
                      "</entry>" for i, t in enumerate((fi, ar, en, "ok acme")))
    body = ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
            f'xml:lang="en"><title>reviews</title>{entries}</feed>').encode()
    httpserver.expect_request("/f.xml").respond_with_data(body, content_type="application/atom+xml")
    config = make_config("brands: [{name: Acme}]\nsources: [{name: s, type: rss, url: "
                         f"'{httpserver.url_for('/f.xml')}', brand: Acme}}]\n")
    store.sync_sources(config.sources)
    collect_due(config, store, now=utcnow() + timedelta(days=1))
    got = {r["external_id"]: (r["language"], r["language_hint"], r["language_source"])
           for r in store.db.query("SELECT * FROM mentions")}
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
        items = [{"title": f"acme review {i}", "guid": f"{i}-{n}-{uuid.uuid4()}",
                  "description": f"The app lost my settings again, number {i}"} for i in range(5)]
        return Response(rss(items), content_type="application/rss+xml")

    httpserver.expect_request("/f.xml").respond_with_handler(feed)
    config = make_config("brands: [{name: Acme}]\nsources: [{name: s, type: rss, kind: social, "
                         f"url: '{httpserver.url_for('/f.xml')}', brand: Acme}}]\n")
    store.sync_sources(config.sources)
    for _ in range(3):
        [outcome] = collect_due(config, store, now=utcnow() + timedelta(days=1))
        assert outcome.error is None
    assert store.db["mentions"].count == 5  # was 15
