"""The weekly (or monthly) report: the overview's figures and charts for one closed period, the
period's alerts in plain words, how the inbox was answered, and the mentions worth reading, as
one self-contained HTML file (styles inline, charts as SVG, nothing fetched when opened), or a
PDF of it. `listener report`, the web page /report and the scheduled send all call `build` and
`render_html`."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape

from alerts.explain import explain
from alerts.inbox import response_metrics
from listener import dashboard
from listener.metrics import Aspect
from listener.storage import FeedFilter, Storage
from listener.timeutil import iso, parse_iso
from listener.urls import http_url
from listener.web.figures import figures

Period = Literal["week", "month"]
NOTABLE = 5  # negative mentions per brand (the most read), and positives: NOTABLE - 2
SCAN = 2_000
PER_MENTION = {
    "low_rating": "low-rated review",
    "high_reach_negative": "negative mention with a wide reach",
    "overdue": "overdue inbox item",
}  # mentions per brand and label read to pick the notable ones
_WEB = Path(__file__).parent / "web"
_TEMPLATES = Environment(
    loader=FileSystemLoader(_WEB / "templates"),
    autoescape=select_autoescape(default=True),  # mention text is untrusted
)
_TEMPLATES.filters["http_url"] = http_url


class PdfUnavailable(RuntimeError):
    """PDF output needs WeasyPrint (the `pdf` extra) and the Pango library."""


@dataclass(frozen=True)
class Span:
    """A closed period: [start, end) in UTC, with a name people use for it."""

    period: Period
    start: datetime
    end: datetime

    @property
    def last(self) -> datetime:
        """The period's last day."""
        return self.end - timedelta(days=1)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def name(self) -> str:
        if self.period == "week":
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return self.start.strftime("%Y-%m")

    @property
    def title(self) -> str:
        if self.period == "month":
            return self.start.strftime("%B %Y")
        week = f"Week {self.name[-2:].lstrip('0')}: {self.start:%d %b} – {self.last:%d %b %Y}"
        return week.replace(" 0", " ")


def last_closed(period: Period, now: datetime) -> Span:
    """The last whole ISO week (Monday to Sunday) or calendar month before `now`, in UTC."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        end = today - timedelta(days=today.weekday())  # this week's Monday
        return Span(period, end - timedelta(days=7), end)
    end = today.replace(day=1)
    return Span(period, (end - timedelta(days=1)).replace(day=1), end)


def containing(period: Period, day: datetime) -> Span:
    """The week or month that `day` falls in (a report for a chosen date)."""
    if period == "week":
        return last_closed(period, day + timedelta(days=7))
    start = day.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return Span(period, start, (start + timedelta(days=32)).replace(day=1))


def _notable(
    store: Storage, model: tuple[str, str | None], brand: str, span: Span, label: str, n: int
) -> list[dict[str, Any]]:
    """The period's mentions of a label that reached the most people (then the newest)."""
    rows = store.mention_feed(
        model,
        FeedFilter(brand=brand, label=label, since=span.start, until=span.end),
        limit=SCAN,
    )
    rows = [r for r in rows if r.get("kind") != "news"]
    return sorted(rows, key=lambda r: -(r.get("reach") or 0))[:n]


def build(
    store: Storage,
    model: tuple[str, str | None],
    brands: list[tuple[str, list[str]]],
    aspects: list[Aspect],
    span: Span,
) -> dict[str, Any]:
    """Everything the report shows, as plain data (brands: (name, competitors))."""
    names = [name for name, _ in brands]
    window = dashboard.Window(span.start, span.days)
    alerts = [
        {**a, "explanation": explain(a["rule"], json.loads(a.get("evidence") or "{}"), a["brand"])}
        for a in store.alerts(1000)
        if (at := parse_iso(a["created_at"])) is not None
        and span.start <= at < span.end
        and a.get("brand") in (*names, None)
        and a["rule"] != "report"  # earlier reports are not news
    ]
    # One alert per mention (a 1-star review, an overdue reply) is counted, not listed: a busy
    # week has hundreds, and the inbox lists them.
    counted = Counter(
        (a["brand"], PER_MENTION[a["rule"]]) for a in alerts if a["rule"] in PER_MENTION
    )
    return {
        "span": span,
        "alert_counts": [
            {"brand": brand, "what": what, "count": n}
            for (brand, what), n in sorted(counted.items(), key=str)
        ],
        "panels": dashboard.brand_panels(store, model, names, window, aspects),
        "sources": dashboard.top_by(store, model, "source", names, span.start, span.end),
        "languages": dashboard.top_by(store, model, "language", names, span.start, span.end),
        "sov": dashboard.voice_shares(store, brands, span.start, span.end),
        "alerts": sorted(
            (a for a in alerts if a["rule"] not in PER_MENTION), key=lambda a: a["created_at"]
        ),
        "inbox": {
            name: response_metrics(
                [i for i in store.inbox_all(name, span.start) if i["posted_at"] < iso(span.end)],
                span.end,
            )
            for name in names
        },
        "notable": {
            name: {
                "negative": _notable(store, model, name, span, "negative", NOTABLE),
                "positive": _notable(store, model, name, span, "positive", NOTABLE - 2),
            }
            for name in names
        },
    }


def _signed(value: float | None, scale: float, unit: str) -> str:
    return "" if value is None else f" ({value * scale:+.0f}{unit})"


def summary(data: dict[str, Any], link_base: str | None = None) -> str:
    """The report in a few lines of plain text, for a chat message or an email."""
    span: Span = data["span"]
    lines = []
    for p in data["panels"]:
        now, change = p["now"], p["change"]
        parts = [f"{now['volume']:,} mentions{_signed(change['volume'], 1, '')}"]
        if now["net_sentiment"] is not None:
            net = f"net sentiment {100 * now['net_sentiment']:+.0f}"
            parts.append(net + _signed(change["net_sentiment"], 100, " pts"))
        if now["csat"] is not None:
            parts.append(f"CSAT {now['csat']:.0%}" + _signed(change["csat"], 100, " pts"))
        if p["drivers"]:
            parts.append(f"complaints most about {p['drivers'][0]['aspect']}")
        answered = data["inbox"][p["brand"]].get("share_within_target")
        if answered is not None:
            parts.append(f"{answered:.0%} answered within target")
        lines.append(f"{p['brand']}: " + ", ".join(parts) + ".")
    spikes = len(data["alerts"])
    singles = sum(c["count"] for c in data["alert_counts"])
    lines.append(
        f"{spikes} alert{'s' if spikes != 1 else ''} on trends, {singles} on single mentions."
    )
    if link_base:
        query = urlencode({"period": span.period, "date": span.start.strftime("%Y-%m-%d")})
        lines.append(f"Full report: {link_base.rstrip('/')}/report?{query}")
    return "\n".join(lines)


def render_html(data: dict[str, Any], link_base: str | None = None) -> str:
    """The report as one HTML document. With `link_base` (the dashboard's address, "" for
    this site) every chart element and mention links to the dashboard; without, nothing does."""
    span: Span = data["span"]

    def feed(**filters: Any) -> str:
        if link_base is None:
            return ""
        query = {k: v for k, v in filters.items() if v is not None}
        return f"{link_base.rstrip('/')}/mentions?{urlencode(query)}"

    keys = dashboard.Window(span.start, span.days).day_keys()
    drawn = figures(data, keys, span.start.strftime("%Y-%m-%d"), None, feed)
    css = (_WEB / "static" / "listener.css").read_text(encoding="utf-8")
    return _TEMPLATES.get_template("report.html").render(
        **data,
        **drawn,
        css=css,
        days=span.days,
        link_base=link_base,
        previous=(span.start - timedelta(days=1)).strftime("%Y-%m-%d"),
    )


def render_pdf(html: str) -> bytes:
    """The HTML report as PDF, laid out offline: nothing is fetched, whatever the HTML names."""
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: the Pango library is missing
        raise PdfUnavailable(
            "PDF needs WeasyPrint and Pango: pip install 'listener[pdf]' (and, on Debian or "
            f"Ubuntu, apt install libpango-1.0-0 libpangoft2-1.0-0); {exc}"
        ) from None

    # No protocol allowed: an address in the HTML (a mention's, however it got there) is
    # refused before any connection; the page is laid out without it.
    fetcher = weasyprint.URLFetcher(allowed_protocols=(), fail_on_errors=False)
    document = weasyprint.HTML(string=html, url_fetcher=fetcher)
    pdf = document.write_pdf()
    assert isinstance(pdf, bytes)
    return pdf
