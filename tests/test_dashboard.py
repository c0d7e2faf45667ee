"""The dashboard as a marketing team uses it, in a real headless Chromium at desktop and phone
widths, over a realistic multilingual history (tests/dashboard_history.py): the overview's
"needs you now" and charts with the right numbers, a click from a bar to its mentions, feed
filters, a label correction that sticks, alert pages that explain themselves. Screenshots go
to artifacts/."""

from __future__ import annotations

import re

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe

from alerts.explain import explain, facts
from listener.storage import FeedFilter, open_store
from listener.timeutil import utcnow
from listener.web.app import create_app
from tests import dashboard_history
from tests.conftest import ARTIFACTS, BACKENDS, BROWSER_TIMEOUT_MS, storage_for
from tests.history import MODEL
from tests.webserver import http, serve, sign_in

TOKEN = "dashboard-token"
PAGES = ("/", "/?brand=Zentra", "/mentions", "/alerts", "/alerts/1", "/inbox")
REPORT = f"/report?date={utcnow():%Y-%m-%d}"  # the week of the history's complaint spike


@pytest.fixture(scope="module", params=BACKENDS)
def dash(tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("dashboard")
    with storage_for(request.param, tmp, request) as database:
        conf = dashboard_history.config(database, tmp)
        store = open_store(database)
        dashboard_history.build(store, conf, utcnow())
        store.close()
        with serve(create_app(conf)) as base:
            yield base, database, request.param


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("LISTENER_WEB_TOKEN", TOKEN)


def _context(browser, width: int, height: int = 900):
    context = browser.new_context(viewport={"width": width, "height": height})
    context.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(("http://127.0.0.1", "data:", "about:"))
            else route.abort()
        ),
    )
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    return context


def _shot(page, name: str, backend: str, *, full_page: bool = True) -> None:
    if backend == "sqlite":  # one set of pictures is enough
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=full_page)


def test_overview_says_what_needs_attention(dash, page):
    base, database, backend = dash
    store = open_store(database)
    try:
        overdue = store.inbox_count(status="open", overdue_at=utcnow())
        open_items = store.inbox_count(status="open")
    finally:
        store.close()
    page.goto(base + "/")
    assert page.locator("#needs-overdue b").inner_text() == str(overdue)
    assert page.locator("#needs-open b").inner_text() == str(open_items)
    assert int(page.locator("#needs-alerts b").inner_text()) >= 2
    assert "88% negative" in page.locator(".recent-alerts").inner_text()
    panels = page.locator(".brand-panel")
    assert panels.count() == 3
    # Each brand's split adds up to its mention count, and every day has a bar of three parts.
    zentra = page.locator(".brand-panel[data-brand=Zentra]")
    volume = int(zentra.locator(".kpi-volume").inner_text().replace(",", ""))
    segments = zentra.locator("a.segment")
    counts = [int(c) for c in segments.evaluate_all("els => els.map(e => e.dataset.count)")]
    assert sum(counts) >= volume  # a mention naming the brand twice a day still counts once
    assert {s for s in segments.evaluate_all("e => e.map(x => x.dataset.stack)")} == {
        "negative",
        "neutral",
        "positive",
    }
    hover = segments.first.locator("title").text_content()
    assert re.fullmatch(r"\d+ \w+: \d+ (negative|neutral|positive) of \d+ \(\d+%\)", hover or "")
    assert page.locator("#top-sources a.bar-row").count() == 3
    assert page.locator("#top-languages a.bar-row").count() == 6
    sov = page.locator("#share-of-voice").inner_text()
    assert "general sources" in sov and "Nordel" in sov
    _shot(page, "overview", backend)


def test_a_bar_opens_the_mentions_behind_it(dash, page):
    base, _, _ = dash
    page.goto(base + "/?brand=Zentra")
    bars = page.locator("a.segment[data-stack=negative]")
    counts = [int(c) for c in bars.evaluate_all("els => els.map(e => e.dataset.count)")]
    expected = max(counts)  # the complaint spike's day
    assert expected >= 11
    bars.nth(counts.index(expected)).click()
    page.wait_for_url("**/mentions?**")
    items = page.locator("#feed li.mention")
    assert items.count() == min(expected, 50)
    assert set(items.evaluate_all("els => els.map(e => e.dataset.label)")) == {"negative"}
    assert page.locator("#filters select[name=brand]").input_value() == "Zentra"


def test_filters_narrow_the_feed(dash, page):
    base, _, backend = dash
    page.goto(base + "/mentions")
    everything = page.locator("#feed li.mention").count()
    assert everything == 50 and page.locator("#next-page").count() == 1
    page.select_option("#filters select[name=brand]", "Zentra")
    page.select_option("#filters select[name=stars]", "1-2")
    page.click("#filters button")
    page.wait_for_url("**stars=1-2**")
    metas = page.locator("#feed li.mention .meta").all_inner_texts()
    assert metas and all(re.search(r"· [12]★", m) and "Zentra" in m for m in metas)
    _shot(page, "mentions", backend, full_page=False)
    page.goto(base + "/mentions?kind=news")
    assert all("(news)" in m for m in page.locator("#feed .meta").all_inner_texts())
    page.goto(base + "/mentions?language=fi&label=positive")
    texts = page.locator("#feed .text").all_inner_texts()
    assert texts and all(re.search(r"Kiitos|nopea", t) for t in texts)
    page.goto(base + "/mentions?review=yes")
    assert all("needs review" in m for m in page.locator("#feed .meta").all_inner_texts())
    page.goto(base + "/mentions?q=доставка")
    texts = page.locator("#feed .text").all_inner_texts()
    assert texts and all("доставка" in t.lower() for t in texts)
    page.goto(base + '/mentions?q="unclosed')
    assert "Not a valid search" in page.locator("#error").inner_text()
    assert http.get(base + "/mentions?since=yesterday").status_code == 422


def test_a_label_correction_sticks(dash, page):
    base, database, _ = dash
    page.goto(base + "/mentions?brand=Orvia&label=negative&kind=social")
    assert page.locator("#feed form.correct").count() == 0  # not signed in: no forms
    page.click(".sign-in-hint a")
    page.fill("#signin input[name=name]", "Mari")
    page.fill("#signin input[name=token]", TOKEN)
    page.click("#signin button")
    page.wait_for_selector("#who")
    assert "label=negative" in page.url and "brand=Orvia" in page.url  # back where it was
    first = page.locator("#feed li.mention").first
    mention_id = int(first.get_attribute("data-id") or 0)
    first.locator("button[value=positive]").click()
    page.wait_for_selector("#corrected")
    # Back on the same filtered feed, which no longer holds it (it is positive now).
    assert "label=negative" in page.url
    assert page.locator(f"#m{mention_id}").count() == 0
    page.goto(f"{base}/mentions?brand=Orvia&label=positive&kind=social")
    fixed = page.locator(f"#m{mention_id}")
    assert fixed.get_attribute("data-label") == "positive"
    assert "(corrected)" in fixed.inner_text()
    store = open_store(database)
    try:
        [row] = [c for c in store.corrections() if c["mention_id"] == mention_id]
        audit = store.audit_log(actor="web:Mari")
    finally:
        store.close()
    assert row["label"] == "positive" and row["by"] == "web:Mari"
    # Who did what is on record, the sign-in included.
    assert [(a["action"], a["target"], a["detail"].get("label")) for a in audit[:2]] == [
        ("label", f"mention {mention_id}", "positive"),
        ("sign in", None, None),
    ]
    csrf = page.locator("#feed input[name=csrf]").first.input_value()
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    with httpx.Client(timeout=120.0) as fresh:  # no session cookie: to the sign-in page
        refused = fresh.post(
            f"{base}/mentions/{mention_id}/label",
            data={"label": "negative", "back": "/mentions"},
            follow_redirects=False,
        )
        assert refused.status_code == 303
        assert refused.headers["location"] == "/signin?next=%2Fmentions"
    with httpx.Client(timeout=120.0, cookies=cookies) as signed_in:
        # The session alone is not enough: a form from another site lacks its CSRF value.
        forged = signed_in.post(f"{base}/mentions/{mention_id}/label", data={"label": "neutral"})
        assert forged.status_code == 403
        outside = signed_in.post(
            f"{base}/mentions/{mention_id}/label",
            data={"label": "positive", "csrf": csrf, "back": "https://evil.example/"},
            follow_redirects=False,
        )
    assert outside.status_code == 303 and outside.headers["location"].startswith("/mentions")


def test_an_alert_page_explains_itself(dash, page):
    base, _, backend = dash
    page.goto(base + "/alerts")
    page.locator("a.alert-link", has_text="negative in the last").first.click()
    explanation = page.locator("#explanation").inner_text()
    assert re.search(
        r"21 of 24 scored mentions of Zentra in the last 1 d were negative \(88%\), "
        r"\d\.\dx the usual \d+% \(\d+ of \d+ in the 14 d before\)\.",
        explanation,
    )
    evidence = page.locator("#evidence").inner_text()
    assert "None" not in evidence and "_id" not in evidence and "_s" not in evidence
    assert "negative share\t88%" in evidence
    assert page.locator(".feed li.mention").count() >= 1
    # Why: the spike's new word, with the share of complaints that use it, against none before.
    assert "More often than in the 14 d before: words “postnova” (11 of 21, 0% before)" in (
        explanation
    )
    cause = page.locator("#causes tr", has_text="postnova")
    assert cause.locator("td").nth(1).inner_text() == "11 of 21 (52%)"
    assert cause.locator("td").nth(2).inner_text() == "0 of 61 (0%)"
    # The notification every channel gets starts with the same explanation.
    assert page.locator("#message").inner_text().startswith(explanation)
    _shot(page, "alert", backend)
    cause.locator("a").click()
    texts = page.locator("#feed .text").all_inner_texts()
    assert len(texts) >= 11 and all("postnova" in t.lower() for t in texts)


def test_inbox_due_times_read_at_a_glance(dash, page):
    base, _, backend = dash
    page.goto(base + "/inbox?overdue=true")
    due = page.locator("#inbox td.late").first
    assert re.search(r"\d+(\.\d)? (min|h|d) late", due.inner_text())
    # Shown in the viewer's zone by the page's script, with UTC kept on hover.
    assert due.locator("time.local").count() == 1
    assert (due.locator("time").get_attribute("title") or "").endswith("UTC")
    _shot(page, "inbox", backend)


def test_assign_and_answer_many_items_at_once(dash, page):
    base, database, backend = dash
    sign_in(page, base, "Mari", TOKEN)
    page.goto(base + "/inbox?kind=reply&brand=Zentra")
    rows = page.locator("#inbox tr[data-id]")
    picked = [int(rows.nth(i).get_attribute("data-id") or 0) for i in range(3)]
    for mention_id in picked:
        page.check(f"#inbox input[value='{mention_id}']")
    page.select_option("#bulk select[name=action]", "assign_me")
    page.click("#bulk button")
    assert page.locator("#bulk-done").inner_text() == "3 items changed."
    assert "brand=Zentra" in page.url and "kind=reply" in page.url  # the same filtered list
    page.select_option("#inbox-filters select[name=assignee]", "Mari")
    page.click("#inbox-filters button")
    mine = [int(r.get_attribute("data-id") or 0) for r in page.locator("#inbox tr[data-id]").all()]
    assert sorted(mine) == sorted(picked)
    assert page.locator("#inbox td.assignee").all_inner_texts() == ["Mari"] * 3
    _shot(page, "inbox-bulk", backend)
    # A complaint is answered, not thanked: refused, named, and nothing else is stopped.
    page.check(f"#inbox input[value='{picked[0]}']")
    page.select_option("#bulk select[name=action]", "thanked")
    page.click("#bulk button")
    assert (
        page.locator("#bulk-done")
        .inner_text()
        .startswith(f"0 items changed. Not changed: #{picked[0]}")
    )
    page.check(f"#inbox input[value='{picked[0]}']")
    page.check(f"#inbox input[value='{picked[1]}']")
    page.select_option("#bulk select[name=action]", "replied")
    page.click("#bulk button")
    assert page.locator("#bulk-done").inner_text() == "2 items changed."
    assert [
        int(r.get_attribute("data-id") or 0) for r in page.locator("#inbox tr[data-id]").all()
    ] == [picked[2]]
    # One item: give it to someone else, and take it back.
    page.goto(f"{base}/inbox/{picked[2]}")
    page.fill("#assign input[name=assignee]", "Bo")
    page.click("#assign button")
    assert page.locator("#assigned").inner_text() == "Assigned to Bo."
    page.click("#take button")
    assert page.locator("#assignee").inner_text() == "assigned to Mari"
    store = open_store(database)
    try:
        closed = [store.inbox_item(i) for i in picked[:2]]
        log = store.audit_log(actor="web:Mari", limit=20)
    finally:
        store.close()
    assert all(c and c["status"] == "replied" and c["closed_by"] == "Mari" for c in closed)
    assert [a["action"] for a in log[:4]] == ["assign", "assign", "mark", "mark"]


@pytest.mark.parametrize("width", [360, 390])
def test_every_page_fits_a_phone(dash, browser, width):
    base, _, backend = dash
    context = _context(browser, width, 780)
    try:
        page = context.new_page()
        for path in (*PAGES, "/signin", REPORT):
            page.goto(base + path)
            assert page.evaluate("document.documentElement.scrollWidth") <= width, path
            for link in page.locator("header nav a").all():
                box = link.bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, path
        # Signed in: the header holds a name, the audit link and sign-out; forms on every row.
        sign_in(page, base, "Mari", TOKEN)
        for path in ("/inbox", "/mentions", "/audit"):
            page.goto(base + path)
            assert page.evaluate("document.documentElement.scrollWidth") <= width, path
        if width == 390:
            page.goto(base + "/?brand=Zentra")
            _shot(page, "overview-phone", backend)
    finally:
        context.close()


def test_the_weekly_report_in_the_browser(dash, page):
    base, _, backend = dash
    page.goto(base + REPORT)
    title = page.locator("#report-title").inner_text()
    assert title.startswith("Week ")
    assert page.locator("section.brand-panel").count() == 3
    assert page.locator("#report-alerts li", has_text="postnova").count() == 1
    # The week's bars, linked to the dashboard's mentions behind them.
    zentra = page.locator("section.brand-panel[data-brand=Zentra]")
    assert zentra.locator("svg.bars a.segment").count() >= 3
    assert zentra.locator("blockquote.quote.negative").count() == 5
    _shot(page, "report", backend)
    page.click("#previous")
    before = page.locator("#report-title").inner_text()
    assert before.startswith("Week ") and before != title


def test_no_serious_accessibility_violations(dash, page):
    """axe-core's rules on every page, signed out and in: nothing serious or critical (the
    kinds that stop someone using a screen reader or a keyboard)."""
    base, database, _ = dash
    store = open_store(database)
    try:
        item = store.inbox(limit=1)[0]["mention_id"]
    finally:
        store.close()
    axe = Axe()
    found = {}
    for signed_in in (False, True):
        if signed_in:
            sign_in(page, base, "Mari", TOKEN)
        for path in (*PAGES, f"/inbox/{item}", "/signin", "/search?q=late", "/audit", REPORT):
            if path == "/audit" and not signed_in:
                continue
            page.goto(base + path)
            violations = axe.run(page).response["violations"]
            serious = [
                f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
                for v in violations
                if v["impact"] in ("serious", "critical")
            ]
            if serious:
                found[(path, signed_in)] = serious
    assert not found


def test_feed_filters_on_the_storage_seam(dash):
    _, database, _ = dash
    store = open_store(database)
    try:
        zentra = store.mention_feed(MODEL, FeedFilter(brand="Zentra"), limit=1000)
        assert zentra and all("Zentra" in (m["brands"] or "") for m in zentra)
        times = [m["at"] for m in zentra]
        assert times == sorted(times, reverse=True)
        low = store.mention_feed(MODEL, FeedFilter(min_rating=1, max_rating=2), limit=1000)
        assert low and all(1 <= m["rating"] <= 2 for m in low)
        news = store.mention_feed(MODEL, FeedFilter(kind="news"), limit=1000)
        assert news and {m["source_id"] for m in news} == {"news-search"}
        page1 = store.mention_feed(MODEL, FeedFilter(), limit=10)
        page2 = store.mention_feed(MODEL, FeedFilter(), limit=10, offset=10)
        assert not {m["id"] for m in page1} & {m["id"] for m in page2}
        found = store.mention_feed(MODEL, FeedFilter(search="toimitus", label="negative"))
        assert found and all("toimitus" in m["text"].lower() for m in found)
        assert all(m["label"] == "negative" for m in found)
    finally:
        store.close()


def test_explanations_in_words():
    spike = {
        "window": "1 h",
        "baseline": "12 h",
        "window_negative": 12,
        "window_total": 31,
        "baseline_negative": 18,
        "baseline_total": 200,
        "share": 0.3871,
        "usual_share": 0.09,
        "aspect": "delivery",
    }
    assert explain("negative_share_spike", spike, "Acme") == (
        "12 of 31 scored mentions of Acme about delivery in the last 1 h were negative (39%), "
        "4.3x the usual 9% (18 of 200 in the 12 h before)."
    )
    streak = {"count": 5, "from": "2026-11-20T10:02:00+00:00", "to": "2026-11-20T11:40:00+00:00"}
    assert explain("negative_streak", {**streak, "after_mention_id": None}, "Acme") == (
        "The 5 newest mentions of Acme were all negative, "
        "from 2026-11-20 10:02 UTC to 2026-11-20 11:40 UTC."
    )
    volume = {"count": 42, "expected": 7.0, "baseline_count": 168, "window": "1 h"}
    assert explain("volume_spike", {**volume, "baseline": "1 d"}, "Acme").startswith(
        "42 mentions of Acme in the last 1 h, 6.0x the usual 7.0"
    )
    quiet = {"source": "acme-rss", "quiet_s": 3 * 86400, "usual_gap_s": 3600}
    assert "no new mention for 3 d; it usually gives one every 1 h" in explain(
        "silence", quiet, None
    )
    assert explain("some_future_rule", {}, "Acme") == ""
    assert explain("negative_share_spike", {"share": "x"}, "Acme") == ""  # odd evidence
    rows = dict(facts({**streak, "after_mention_id": None, "source": None, "quiet_s": 5.0}))
    assert rows == {
        "mentions": "5",
        "first": "2026-11-20 10:02 UTC",
        "last": "2026-11-20 11:40 UTC",
    }


def test_a_model_with_two_classes_shows_its_confidence(dash):
    """A transformers model may give only negative/positive: the feed shows how sure it was
    from what it gave, instead of failing (it did: a 500 on every page holding one)."""
    base, database, _ = dash
    store = open_store(database)
    try:
        [row] = store.mention_feed(MODEL, FeedFilter(brand="Nordel"), limit=1)
        store.db.execute(
            "UPDATE scores SET scores = ? WHERE mention_id = ?",
            ['{"negative": 0.9, "positive": 0.1}', row["id"]],
        )
    finally:
        store.close()
    page = httpx.get(f"{base}/mentions?brand=Nordel&since=2000-01-01", timeout=120)
    assert page.status_code == 200
    mention = page.text.split(f'id="m{row["id"]}"', 1)[1].split("</li>", 1)[0]
    assert "90% sure" in mention
