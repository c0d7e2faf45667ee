"""The dashboard under attack: links that would run script, requests with hostile parameters,
framing, and pages that must work with nothing but loopback (Debian's chromium, Playwright).
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from alerts import engine
from alerts.inbox import sync_inbox
from listener.config import parse_config
from listener.pipeline import collect_due
from listener.storage.sqlite import SQLiteStorage
from listener.timeutil import utcnow
from listener.web.app import create_app
from listener.web.security import host_of
from tests.conftest import ARTIFACTS
from tests.history import MODEL, History, Post
from tests.webserver import http, serve

TOKEN = "web-token-for-tests"
JS_LINK = "javascript:fetch('/api/mentions').then(r=>r.text()).then(t=>window.__stolen=t)"
H = timedelta(hours=1)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile-web")
    config = parse_config(
        f"database: {tmp / 'listener.db'}\n"
        "brands: [{name: Acme}]\nsentiment: {model: m, revision: '1'}\n"
        "alerts: [{rule: low_rating, notify: []}]\n",
        base_dir=tmp,
    )
    store = SQLiteStorage.open(tmp / "listener.db")
    now = utcnow()
    hist = History(store, sources=("s",))
    # Stored before links were checked: the page must still never make them links.
    [js_id] = hist.add(
        Post("negative", H, rating=1, url=JS_LINK, text="acme charged twice"), now=now
    )
    [spaced_id] = hist.add(
        Post("negative", H, rating=1, url="  JaVa\tScRiPt:alert(1)", text="acme again"), now=now
    )
    hist.add(
        *[
            Post("negative", H + i * timedelta(minutes=1), rating=2, text=f"acme late {i}")
            for i in range(148)
        ],
        now=now,
    )
    hist.add(
        Post(
            "negative",
            2 * H,
            rating=1,
            title='=HYPERLINK("http://evil.example")',
            text="+cmd|' /C calc'!A0",
            author="@SUM(1+1)*cmd|' /C calc'!A0",
        ),
        now=now,
    )
    sync_inbox(config, store, MODEL, now)
    engine.evaluate(config, store, MODEL, now)
    store.close()
    with serve(create_app(config)) as base:
        yield base, js_id, spaced_id


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("LISTENER_WEB_TOKEN", TOKEN)


def test_a_javascript_link_from_a_feed_is_never_stored_as_a_link(make_config, store, httpserver):
    httpserver.expect_request("/f.xml").respond_with_data(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        f"<item><title>acme</title><guid>1</guid><link>{JS_LINK}</link></item>"
        "<item><title>acme 2</title><guid>2</guid><link>data:text/html,x</link></item>"
        "<item><title>acme 3</title><guid>3</guid><link>https://ok.example/3</link></item>"
        "</channel></rss>",
        content_type="application/rss+xml",
    )
    config = make_config(
        "brands: [{name: Acme}]\nsources: [{name: s, type: rss, url: "
        f"'{httpserver.url_for('/f.xml')}', brand: Acme}}]\n"
    )
    store.sync_sources(config.sources)
    collect_due(config, store, now=utcnow() + timedelta(days=1))
    urls = [r["url"] for r in store.db.query("SELECT url FROM mentions ORDER BY id")]
    assert urls == [None, None, "https://ok.example/3"]


def alert_about(base: str, mention_id: int) -> int:
    alerts = http.get(base + "/api/alerts?limit=1000").json()
    return next(a["id"] for a in alerts if a["mention_ids"] == [mention_id])


@pytest.mark.parametrize("where", ["/inbox/{id}", "/alerts/{alert}", "/search?q=acme"])
@pytest.mark.parametrize("which", ["javascript", "spaced"])
def test_a_stored_javascript_link_is_not_rendered_as_one(site, page, where, which):
    base, js_id, spaced_id = site
    mention = js_id if which == "javascript" else spaced_id
    page.goto(base + where.format(id=mention, alert=alert_about(base, mention)))
    assert page.locator("main").inner_text()  # the page itself was served
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    assert hrefs and not [h for h in hrefs if not h.startswith(("http://", "https://"))]
    assert page.locator("#reply-link").count() == 0
    # Clicking every link on the page runs nothing.
    for link in page.locator("main a[href^='http']").all()[:5]:
        link.click(modifiers=["Control"])  # a new tab, so this page stays
    assert page.evaluate("window.__stolen") is None


def test_every_page_forbids_inline_script_and_framing(site):
    base, js_id, _ = site
    for path in (
        "/",
        "/alerts",
        "/inbox",
        f"/inbox/{js_id}",
        "/search?q=acme",
        "/api/inbox",
        "/static/listener.css",
    ):
        r = http.get(base + path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-content-type-options"] == "nosniff"


def test_markup_that_slipped_through_would_not_run(site, page):
    """The CSP itself, checked in the browser: an injected inline script is blocked."""
    base, *_ = site
    violations = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.goto(base + "/")
    page.evaluate("""() => { const s = document.createElement('script');
        s.textContent = 'window.__ran = 1'; document.body.appendChild(s); }""")
    assert page.evaluate("window.__ran") is None
    assert violations


def test_the_api_docs_work_with_no_network_beyond_loopback(site, page):
    base, *_ = site
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(base + "/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "listener" in page.locator(".swagger-ui .info .title").inner_text()
    page.wait_for_selector(".opblock-summary-path")  # operations drawn from /openapi.json
    assert not [e for e in errors if "Content Security Policy" in e]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-api-docs.png"))


@pytest.mark.parametrize(
    "path",
    [
        "/?days=300000",
        "/?days=99999999",
        "/?days=-1",
        "/?days=abc",
        "/api/metrics?days=99999999",
        "/api/drivers?brand=Acme&days=99999999",
        "/api/metrics?period=decade",
        "/api/overview?days=0",
        "/export?since=bad",
        "/export?until=2024-13-45",
        "/export?format=xlsx",
        "/export?label=furious",
        "/inbox?status=all",
        "/inbox?page=0",
        "/inbox?kind=spam",
        "/api/inbox?limit=100000",
        "/api/inbox?offset=-5",
        f"/alerts/{2**70}",
        f"/inbox/{2**70}",
        f"/api/alerts/{2**70}",
        "/api/inbox/-1",
        "/api/mentions?limit=100000",
        "/search?q=" + "x" * 600,
    ],
)
def test_hostile_parameters_get_a_422_with_a_message_never_a_500(site, path):
    base, *_ = site
    r = http.get(base + path, timeout=30)
    assert r.status_code == 422, (path, r.status_code, r.text[:200])
    assert r.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    "path",
    [
        "/export?since=2024-01-01",
        "/export?since=2024-01-01T00:00Z",
        "/?days=366",
        "/api/metrics?days=3650",
        "/inbox?page=2",
    ],
)
def test_ordinary_parameters_still_work(site, path):
    base, *_ = site
    assert http.get(base + path, timeout=60).status_code == 200


def test_the_bearer_scheme_is_case_insensitive(site):
    base, js_id, _ = site
    for scheme in ("Bearer", "bearer", "BEARER"):
        r = http.post(
            f"{base}/api/inbox/{js_id}/mark?status=open",
            headers={"Authorization": f"{scheme} {TOKEN}"},
        )
        assert r.status_code == 200, scheme
    assert (
        http.post(
            f"{base}/api/inbox/{js_id}/mark?status=open", headers={"Authorization": "Bearer wrong"}
        ).status_code
        == 403
    )
    assert (
        http.post(
            f"{base}/api/inbox/{js_id}/mark?status=open",
            headers={"Authorization": f"Basic {TOKEN}"},
        ).status_code
        == 403
    )


def test_the_inbox_pages_and_says_how_many_there_are(site, page):
    base, *_ = site
    api = http.get(base + "/api/inbox?kind=reply")
    assert len(api.json()) == 100 and api.headers["x-total-count"] == "151"
    rest = http.get(base + "/api/inbox?kind=reply&offset=100").json()
    assert len(rest) == 51
    assert not {i["mention_id"] for i in api.json()} & {i["mention_id"] for i in rest}
    page.goto(base + "/inbox?kind=reply")
    assert "Showing 1–100 of 151" in page.locator("#pager").inner_text()
    page.click("#next-page")
    assert "Showing 101–151 of 151" in page.locator("#pager").inner_text()
    assert page.locator("#inbox a.item-link").count() == 51


def test_csv_cells_that_would_run_as_formulas_are_plain_text(site):
    base, *_ = site
    r = http.get(base + "/export?format=csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    evil = next(row for row in rows if "HYPERLINK" in row["title"])
    assert evil["title"].startswith("'=HYPERLINK")
    assert evil["text"].startswith("'+cmd")
    assert evil["author"].startswith("'@SUM")
    assert all(
        not row[c].startswith(("=", "+", "-", "@"))
        for row in rows
        for c in ("title", "text", "author", "url", "external_id")
    )
    assert float(next(row for row in rows if row["score"])["score"]) <= 0  # numbers stay numbers
    with_bom = http.get(base + "/export?format=csv&bom=true").content
    assert with_bom.startswith(b"\xef\xbb\xbfid,")
    assert not r.content.startswith(b"\xef\xbb\xbf")


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("localhost:8080", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]:8080", "::1"),
        ("[::1]", "::1"),
        ("Example.COM.:443", "example.com"),
        ("", ""),
    ],
)
def test_host_headers_are_read_as_hosts(header, host):
    assert host_of(header) == host


def test_a_dashboard_served_on_ipv6_loopback_answers(tmp_path):
    import socket

    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    config = parse_config(
        f"database: {tmp_path / 'l.db'}\nbrands: [{{name: Acme}}]\n", base_dir=tmp_path
    )
    with serve(create_app(config), host="::1") as base:
        r = http.get(base + "/api/alerts")
        rebound = http.get(base + "/api/alerts", headers={"Host": "attacker.example"})
    assert r.status_code == 200
    assert rebound.status_code == 400


def test_a_huge_request_body_is_refused_before_it_is_read(site):
    base, js_id, _ = site
    big = b"token=" + b"x" * (2 << 20)
    r = http.post(
        f"{base}/inbox/{js_id}/mark",
        content=big,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(64):
            yield b"x" * 65536

    r = http.post(
        f"{base}/inbox/{js_id}/mark",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413
