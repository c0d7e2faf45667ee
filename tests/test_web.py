"""The web app in a real headless browser (Debian's chromium driven by Playwright), plus its
JSON API. Screenshots are kept in artifacts/ as test artefacts."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from alerts import engine
from alerts.inbox import sync_inbox
from listener.config import parse_config
from listener.storage import MatchedEntry, open_store
from listener.web.app import create_app
from sources.base import FetchResult, SourceState
from sources.rss import parse_feed
from tests.conftest import ARTIFACTS, BACKENDS, feed_bytes, storage_for
from tests.history import MODEL, History, Post
from tests.webserver import http, serve, sign_in

HOSTILE = (
    '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">Acme broke my order'
)
TOKEN = "let-me-mark"
H, D = timedelta(hours=1), timedelta(days=1)


@pytest.fixture(scope="module", params=BACKENDS)
def site(tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("web")
    with storage_for(request.param, tmp, request) as database:
        yield from _site(tmp, database)


def _site(tmp, database):
    config = parse_config(
        f"database: {database}\n"
        "brands: [{name: Acme, competitors: [Globex]}, {name: Globex}]\n"
        "alerts: [{rule: low_rating}]\n"
        "sentiment: {model: m, revision: '1'}\n",
        base_dir=tmp,
    )
    store = open_store(database)
    from listener.timeutil import utcnow

    now = utcnow()
    hist = History(store, sources=("general",), tied={"acme-app": "Acme"})
    for day in range(10):
        hist.add(
            *[
                Post(
                    "negative" if (i + day) % 3 == 0 else "positive",
                    day * D + i * H,
                    source="general",
                    brand="Acme" if i % 2 else "Globex",
                )
                for i in range(4)
            ],
            now=now,
        )
    [hostile_id] = hist.add(
        Post("negative", 2 * H, rating=1, source="acme-app", text=HOSTILE, author="<b>mallory</b>"),
        now=now,
    )
    # the real hostile feed from feedparser's suite, stored as Acme mentions
    entries = parse_feed(
        feed_bytes("large_atom_feed_that_needs_css_sanitisation.xml"), "http://touchnokia.ru/"
    )
    store.save_fetch(
        "general",
        FetchResult(entries, SourceState()),
        [MatchedEntry(e, ("Acme",)) for e in entries],
        started=now,
        finished=now,
        next_due=now,
    )
    engine.evaluate(config, store, MODEL, now)
    sync_inbox(config, store, MODEL, now)
    # a channel that was down for a day: the first alert's delivery was given up on
    store.db.execute(
        "UPDATE deliveries SET status = 'failed', attempts = 30, last_error = "
        "'notifier ''console'': delivery failed: HTTP 503' WHERE alert_id = 1"
    )
    store.close()

    with serve(create_app(config)) as base:
        yield base, hostile_id


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("LISTENER_WEB_TOKEN", TOKEN)


def test_overview_draws_charts(site, page):
    base, _ = site
    page.goto(base + "/")
    assert page.locator("h1").inner_text() == "Overview, last 30 days"
    charts = page.locator("svg.chart.bars")
    assert charts.count() == 2  # one per brand
    for brand in ("Acme", "Globex"):
        assert page.locator(f".brand-panel[data-brand={brand}] a.segment").count() >= 5
    box = charts.first.bounding_box()
    assert box and box["width"] > 500 and box["height"] > 150  # drawn, not collapsed
    assert page.locator(".brand-panel h2").first.inner_text() == "Acme"
    assert page.locator("h2", has_text="Share of voice").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-overview.png"), full_page=True)


def test_open_an_alert_and_see_its_evidence(site, page):
    base, _ = site
    page.goto(base + "/alerts")
    page.locator("a.alert-link").first.click()
    assert page.locator("#alert-title").inner_text() == "Acme: 1★ review"
    assert page.locator("#explanation").inner_text().startswith("A 1★ review of Acme, posted ")
    assert "stars\t1★" in page.locator("#evidence").inner_text()
    # untrusted text is shown as text, never run
    assert "<script>window.__pwned = 1</script>" in page.locator("body").inner_text()
    assert page.evaluate("window.__pwned") is None
    page.screenshot(path=str(ARTIFACTS / "web-alert.png"), full_page=True)


def test_mark_an_inbox_item_in_the_browser(site, page):
    base, hostile_id = site
    page.goto(base + "/inbox?kind=reply")
    assert page.locator("#inbox a.item-link").count() >= 1
    page.goto(f"{base}/inbox/{hostile_id}")
    assert "Hi <b>mallory</b>," in page.locator("#draft").inner_text()  # shown, not rendered
    assert page.locator("#draft b").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#mark").count() == 0  # signed out: read-only
    # A wrong token signs nobody in.
    page.click(".sign-in-hint a")
    page.fill("#signin input[name=name]", "maria")
    page.fill("#signin input[name=token]", "not-the-token")
    page.click("#signin button")
    assert page.locator("#error").inner_text() == "that token is wrong"
    page.fill("#signin input[name=token]", TOKEN)
    page.click("#signin button")
    page.wait_for_url(f"**/inbox/{hostile_id}")
    options = page.locator("#mark select[name=status] option").all_inner_texts()
    assert "thanked" not in options  # a complaint is answered, not thanked
    page.select_option("#mark select[name=status]", "replied")
    page.click("#mark button")
    page.wait_for_selector("#done")
    assert page.locator("#status").inner_text() == "(replied)"
    page.screenshot(path=str(ARTIFACTS / "web-inbox-item.png"), full_page=True)
    # The next change says what it replaced.
    page.select_option("#mark select[name=status]", "ignored")
    page.click("#mark button")
    page.wait_for_url("**was=replied")
    assert page.locator("#done").inner_text() == "Marked ignored (it had been replied)."
    assert page.locator("#status").inner_text() == "(ignored)"
    cookie = next(c for c in page.context.cookies() if c["name"] == "listener_session")
    assert TOKEN not in cookie["value"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    item = http.get(f"{base}/api/inbox/{hostile_id}").json()
    assert item["closed_by"] == "maria"  # who answered: the signed-in person


def test_send_a_failed_alert_again_from_its_page(site, page):
    base, _ = site
    page.goto(base + "/alerts/1")
    row = page.locator("#deliveries tr", has_text="console")
    assert "failed" in row.inner_text() and "HTTP 503" in row.inner_text()
    sign_in(page, base, "ops", TOKEN)
    page.goto(base + "/alerts/1")
    page.click("#retry button")
    page.wait_for_selector("#queued")
    assert page.locator("#queued").inner_text().startswith("1 queued again")
    assert "pending" in page.locator("#deliveries tr", has_text="console").inner_text()
    assert page.locator("#retry").count() == 0  # nothing left to send again
    assert http.post(base + "/api/alerts/1/retry").status_code == 403
    again = http.post(base + "/api/alerts/1/retry", headers={"Authorization": f"Bearer {TOKEN}"})
    assert again.json() == {"queued": 0}
    assert (
        http.post(
            base + "/api/alerts/999/retry", headers={"Authorization": f"Bearer {TOKEN}"}
        ).status_code
        == 404
    )
    audit = http.get(base + "/api/audit", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    retries = [(a["actor"], a["target"], a["detail"]) for a in audit if a["action"] == "retry"]
    assert retries[:2] == [("api", "alert 1", {"queued": 0}), ("web:ops", "alert 1", {"queued": 1})]


def test_hostile_feed_renders_inert_in_search(site, page):
    base, _ = site
    page.goto(base + "/search?q=броня")
    assert page.locator("#results tr").count() >= 1
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#results style, #results script, #results img").count() == 0


def test_json_api_and_its_schema(site):
    base, hostile_id = site
    schema = http.get(base + "/openapi.json").json()
    assert {
        "/api/overview",
        "/api/metrics",
        "/api/alerts",
        "/api/inbox",
        "/api/mentions",
        "/api/drivers",
    } <= set(schema["paths"])
    overview = http.get(base + "/api/overview?days=7").json()
    assert set(overview["volume"]) == {"Acme", "Globex"}
    assert http.get(base + "/api/drivers?brand=Acme").status_code == 200
    # DNS rebinding: a page whose own name now points at 127.0.0.1 gets nothing
    rebound = http.get(base + "/api/inbox", headers={"Host": "attacker.example"})
    assert rebound.status_code == 400 and "Acme" not in rebound.text
    denied = http.post(f"{base}/api/inbox/{hostile_id}/mark?status=ignored")
    assert denied.status_code == 403
    ok = http.post(
        f"{base}/api/inbox/{hostile_id}/mark?status=ignored&by=api",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert ok.status_code == 200 and ok.json()["status"] == "ignored"
    csv_text = http.get(base + "/export?format=csv&brand=Globex").text
    assert csv_text.splitlines()[0].startswith("id,source_id")
    assert len(csv_text.splitlines()) == 21  # header + Globex's 20 mentions
    lines = http.get(base + "/export?format=jsonl&label=negative").text.splitlines()
    assert {json.loads(x)["label"] for x in lines} == {"negative"}
