"""The weekly report: the right period, the same figures the dashboard shows, the week's alerts
in words and its most-read mentions, as HTML that runs nothing and a PDF that fetches nothing;
from the CLI, the web, and once per period to the notifiers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from click.testing import CliRunner

from alerts import engine
from listener import report
from listener.cli import cli
from listener.config import parse_config
from listener.dashboard import needs_you
from listener.metrics import aspect_matchers, sentiment_table
from listener.storage import open_store
from listener.web.app import create_app
from tests import dashboard_history
from tests.history import MODEL, NOW, History, Post
from tests.webserver import serve

WEEK = report.containing("week", NOW)  # Mon 16 – Sun 22 Nov 2026; the spike is on the 19th-20th


@pytest.fixture
def history(tmp_path, database):
    conf = dashboard_history.config(database, tmp_path)
    store = open_store(database)
    dashboard_history.build(store, conf, NOW)
    History(store, sources=("hostile-feed",)).add(
        Post(
            "negative",
            timedelta(hours=30),
            text='<img src="http://198.51.100.7/pixel.png" onerror="alert(1)">Zentra lost it',
            brand="Zentra",
            reach=10**9,
            author="<b>mallory</b>",
            source="hostile-feed",
        ),
        now=NOW,
    )
    store.close()
    return conf, database


def test_periods_are_whole_weeks_and_months_in_utc():
    monday = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    assert report.last_closed("week", monday) == report.Span(
        "week", monday - timedelta(days=7), monday
    )
    assert report.last_closed("week", monday - timedelta(seconds=1)).end == monday - timedelta(7)
    assert WEEK.name == "2026-W47" and WEEK.title == "Week 47: 16 Nov – 22 Nov 2026"
    new_year = report.containing("week", datetime(2027, 1, 1, tzinfo=UTC))
    assert new_year.name == "2026-W53" and new_year.days == 7
    january = report.last_closed("month", datetime(2027, 1, 15, 9, tzinfo=UTC))
    assert (january.start.date().isoformat(), january.end.date().isoformat()) == (
        "2026-12-01",
        "2027-01-01",
    )
    assert report.containing("month", datetime(2026, 2, 28, 23, tzinfo=UTC)).days == 28
    assert report.containing("month", datetime(2024, 2, 29, tzinfo=UTC)).title == "February 2024"


def test_the_report_holds_the_weeks_figures_alerts_and_mentions(history):
    conf, database = history
    store = open_store(database)
    try:
        brands = [(b.name, b.competitors) for b in conf.brands]
        data = report.build(store, MODEL, brands, aspect_matchers(conf.aspects), WEEK)
        [expected] = sentiment_table(
            store, MODEL, period="all", brands=["Zentra"], since=WEEK.start, until=WEEK.end
        )
    finally:
        store.close()
    zentra = data["panels"][0]
    assert zentra["brand"] == "Zentra" and zentra["now"]["volume"] == expected["volume"]
    assert sum(zentra["daily"]["negative"]) == expected["negative"]
    assert len(zentra["daily"]["negative"]) == 7
    # The spike's alert with its explanation; the 1-star reviews counted, not listed.
    [spike] = [a for a in data["alerts"] if a["rule"] == "negative_share_spike"]
    assert "words “postnova”" in spike["explanation"]
    assert data["alert_counts"] and data["alert_counts"][0]["what"] == "low-rated review"
    loudest = data["notable"]["Zentra"]["negative"]
    assert loudest[0]["reach"] == 10**9  # the most read first
    assert [m["reach"] or 0 for m in loudest] == sorted(
        (m["reach"] or 0 for m in loudest), reverse=True
    )
    html = report.render_html(data)
    assert "Week 47: 16 Nov – 22 Nov 2026" in html and html.count("<svg") >= 4
    assert "&lt;img src=" in html and "<img" not in html and "<b>mallory" not in html
    assert "<script" not in html and 'href="/mentions' not in html  # a file: no links home
    linked = report.render_html(data, link_base="https://listener.example.com")
    assert 'href="https://listener.example.com/mentions?brand=Zentra&amp;label=negative' in linked
    text = report.summary(data, "https://listener.example.com")
    assert text.splitlines()[0].startswith(f"Zentra: {expected['volume']:,} mentions (")
    assert text.endswith(
        "Full report: https://listener.example.com/report?period=week&date=2026-11-16"
    )


def test_pdf_is_made_offline(history, tmp_path, caplog):
    _, database = history
    (tmp_path / "sources.yaml").write_text(f"database: {database}\n{dashboard_history.CONFIG}")
    runner = CliRunner()
    base = ["-c", str(tmp_path / "sources.yaml"), "report", "--date", "2026-11-18"]
    out = runner.invoke(cli, [*base, "-o", str(tmp_path / "week.pdf")])
    assert out.exit_code == 0, out.output
    assert out.output.strip() == f"Week 47: 16 Nov – 22 Nov 2026: wrote {tmp_path / 'week.pdf'}"
    assert (tmp_path / "week.pdf").read_bytes().startswith(b"%PDF-")
    # The hostile mention's image address is never fetched (sockets beyond loopback are blocked
    # in tests, and the report's fetcher refuses before any connection).
    html = runner.invoke(cli, [*base, "-o", str(tmp_path / "week.html")])
    assert html.exit_code == 0 and "Zentra lost it" in (tmp_path / "week.html").read_text()
    bad = runner.invoke(cli, [*base, "--link-base", "javascript:alert(1)"])
    assert bad.exit_code == 2 and "--link-base" in bad.output
    pdf = report.render_pdf('<img src="http://198.51.100.7/x.png"><p>hi</p>')
    assert pdf.startswith(b"%PDF-")  # laid out without the image, and without an error
    assert "disallowed protocol: http://198.51.100.7/x.png" in caplog.text  # never dialled


def test_the_report_is_sent_once_per_week(history):
    _, database = history
    config = parse_config(
        f"database: {database}\n{dashboard_history.CONFIG}".replace(
            "alerts:\n",
            "alerts:\n  - {rule: report, period: week, link_base: 'https://l.example'}\n",
        )
    )
    store = open_store(database)
    try:
        monday = WEEK.end + timedelta(hours=7)
        fired = engine.evaluate(config, store, MODEL, monday)
        [sent] = [a for a in fired if a.rule == "report"]
        assert sent.title == "listener report: Week 47: 16 Nov – 22 Nov 2026"
        assert "Zentra: " in sent.message and "report?period=week&date=2026-11-16" in sent.message
        later = engine.evaluate(config, store, MODEL, monday + timedelta(hours=5))
        assert not [a for a in later if a.rule == "report"]  # once per week, whatever the passes
        # A report is news, not something to answer: not among "alerts of the last 24 h".
        assert all(a["rule"] != "report" for a in needs_you(store, ["Zentra"], monday)["alerts"])
    finally:
        store.close()


def test_the_web_serves_the_report(history):
    conf, _ = history
    with serve(create_app(conf)) as base, httpx.Client(base_url=base, timeout=120) as web:
        page = web.get("/report?date=2026-11-18")
        assert page.status_code == 200 and "Week 47" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert 'href="/mentions?brand=Zentra' in page.text  # linked to this dashboard
        assert web.get("/report?date=yesterday").status_code == 422
        assert web.get("/report?brand=Nobody").status_code == 404
