"""`listener serve`: a small read-mostly web app over the same library functions as the CLI.

Pages are rendered on the server (Jinja2, autoescaped: mention text is untrusted) with SVG
charts; a JSON API under /api/ serves the same data and documents itself at /openapi.json.
Marking inbox items needs the token in LISTENER_WEB_TOKEN; without one the app is read-only.
"""

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.background import BackgroundTask

from alerts.explain import explain, facts
from alerts.inbox import MarkRefused, draft, mark, response_metrics
from alerts.render import human
from listener import dashboard
from listener import secrets as secret_values
from listener.config import Config
from listener.export import csv_lines, mention_batches, mention_rows, write_parquet
from listener.metrics import (
    aspect_matchers,
    key_drivers,
    news_volume,
    sentiment_table,
    share_of_voice,
)
from listener.query import QuerySyntaxError
from listener.storage import ExportFilter, FeedFilter, Storage, open_store
from listener.storage.pool import StorePool
from listener.timeutil import parse_iso, utcnow
from listener.urls import http_url
from listener.web.cache import TTLCache
from listener.web.charts import bar_list, stacked_bars
from listener.web.response_cache import ResponseCache
from listener.web.security import CSP, add_security, script_hashes
from sentiment import configured_key
from sentiment.base import LABELS

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
# Rendered as a link only if it is an http(s) URL, however it was stored.
TEMPLATES.env.filters["http_url"] = http_url
TOKEN_ENV = "LISTENER_WEB_TOKEN"
SESSION_COOKIE = "listener_session"
STATUSES = ("open", "replied", "thanked", "ignored")
CACHE_S = 30.0
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
PAGE_SIZE = 100
FEED_SIZE = 50
MAX_DAYS = 3660  # ten years of history in one query
MAX_ID = 2**63 - 1  # SQLite's integer range: larger ids are a 422, not an overflow

Status = Literal["open", "replied", "thanked", "ignored"]
Kind = Literal["reply", "thank"]
Label = Literal["negative", "neutral", "positive"]
BrandParam = Annotated[str | None, Query(max_length=200)]
IdParam = Annotated[int, PathParam(ge=1, le=MAX_ID)]
bearer = HTTPBearer(auto_error=False, description="the token in LISTENER_WEB_TOKEN")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _since(days: int) -> datetime:
    return (utcnow() - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)


def _day(value: str | None) -> datetime | None:
    """A filter's date (YYYY-MM-DD, or a full ISO time) as a UTC time; ValueError names it."""
    if not value:
        return None
    try:
        return _utc(datetime.fromisoformat(value))
    except ValueError:
        raise ValueError(f"not a date (YYYY-MM-DD): {value[:30]!r}") from None


def _due_in(due: datetime | None, now: datetime) -> str:
    """ "in 3 h", "2 h late": how a support team reads a due time at a glance."""
    if due is None:
        return "no due time"
    left = due - now
    span = human(abs(left)) if abs(left) >= timedelta(minutes=1) else "under a minute"
    return f"in {span}" if left > timedelta(0) else f"{span} late"


def _next_day(day: str) -> str:
    return (datetime.fromisoformat(day) + timedelta(days=1)).strftime("%Y-%m-%d")


def _short_day(day: str) -> str:
    return datetime.fromisoformat(day).strftime("%d %b").lstrip("0")


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else (value if value.tzinfo else value.replace(tzinfo=UTC))


def _docs_static() -> Path | None:
    """Swagger UI's files from the fastapi-offline package: /docs works without a CDN."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    return Path(fastapi_offline.__file__).parent / "static"


def create_app(
    config: Config, db_path: str | Path | None = None, allowed_hosts: Sequence[str] = LOCAL_HOSTS
) -> FastAPI:
    app = FastAPI(title="listener", version="1", description=__doc__, docs_url=None, redoc_url=None)
    # Host check against DNS rebinding ("*" answers any name, for a public address) and
    # security headers on every response.
    # Innermost: what it keeps has passed the host check, and gets security headers on the way
    # out like any response.
    app.add_middleware(ResponseCache, ttl=CACHE_S)
    add_security(app, allowed_hosts)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    docs_static = _docs_static()
    if docs_static is not None:
        app.mount("/static-docs", StaticFiles(directory=docs_static), name="docs-static")
    secret_values.register_env(TOKEN_ENV)
    path = db_path or config.database_url()
    preferred = configured_key(config.sentiment)
    aspects = aspect_matchers(config.aspects)

    open_store(path).close()  # create and migrate once; requests then reuse connections
    stores = StorePool(str(path))

    def store() -> Iterator[Storage]:
        # Given back after the response is sent (FastAPI >= 0.118), streamed exports included.
        with stores.take() as s:
            yield s

    Db = Annotated[Storage, Depends(store)]
    # Aggregates change only when a pass runs: recompute them at most every CACHE_S.
    cached = TTLCache(CACHE_S).get

    def model(db: Storage) -> tuple[str, str | None]:
        return cached(("model",), lambda: db.scored_model(preferred))

    def token_ok(given: str | None) -> bool:
        wanted = os.environ.get(TOKEN_ENV)
        return bool(wanted and given and secrets.compare_digest(given.encode(), wanted.encode()))

    def session_value() -> str:
        """What the session cookie holds: derived from the token, never the token itself, so
        changing LISTENER_WEB_TOKEN ends every session."""
        wanted = os.environ.get(TOKEN_ENV, "")
        return hmac.new(wanted.encode(), b"listener web session", hashlib.sha256).hexdigest()

    def in_session(request: Request) -> bool:
        given = request.cookies.get(SESSION_COOKIE)
        return bool(
            os.environ.get(TOKEN_ENV)
            and given
            and secrets.compare_digest(given.encode(), session_value().encode())
        )

    def form_allowed(request: Request, token: str) -> bool:
        return in_session(request) or token_ok(token)

    def remember(response: Response, request: Request, token: str) -> None:
        if token and not in_session(request):
            # A session cookie (gone when the browser closes), never sent cross-site.
            response.set_cookie(
                SESSION_COOKIE,
                session_value(),
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(
            request,
            name,
            {
                "brands": [b.name for b in config.brands],
                "writable": bool(os.environ.get(TOKEN_ENV)),
                "in_session": in_session(request),
                **context,
            },
        )

    # ---- data shared by pages and API ------------------------------------------------------

    def overview_data(db: Storage, days: int) -> dict[str, Any]:
        return cached(("overview", days, _since(days)), lambda: _overview(db, days))

    def _overview(db: Storage, days: int) -> dict[str, Any]:
        since = _since(days)
        daily = sentiment_table(db, model(db), period="day", since=since)
        xs = [(since + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(days + 1)]
        names = [b.name for b in config.brands]
        by = {(r["period"], r["brand"]): r for r in daily}
        volume = {n: [by.get((x, n), {}).get("volume", 0) for x in xs] for n in names}
        net = {n: [by.get((x, n), {}).get("net_sentiment") for x in xs] for n in names}
        totals = {r["brand"]: r for r in sentiment_table(db, model(db), period="all", since=since)}
        sov = {
            b.name: share_of_voice(db, b.name, b.competitors, period="all", since=since)
            for b in config.brands
            if b.competitors
        }
        return {
            "days": days,
            "xs": xs,
            "volume": volume,
            "net": net,
            "totals": totals,
            "sov": sov,
            "news": news_volume(db, since=since),
        }

    # ---- pages -----------------------------------------------------------------------------

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if docs_static is None:
            raise HTTPException(404, "install fastapi-offline for /docs; /openapi.json is here")
        html = bytes(
            get_swagger_ui_html(
                openapi_url="/openapi.json",
                title="listener API",
                swagger_js_url="/static-docs/swagger-ui-bundle.js",
                swagger_css_url="/static-docs/swagger-ui.css",
                swagger_favicon_url="/static-docs/favicon.png",
            ).body
        ).decode()
        # Swagger UI starts from one inline script: allowed by its hash, nothing else is;
        # it styles its widgets inline.
        csp = CSP.replace(
            "script-src 'self'", "script-src 'self' " + " ".join(script_hashes(html))
        ).replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
        return HTMLResponse(html, headers={"Content-Security-Policy": csp})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview(
        request: Request,
        db: Db,
        days: int = Query(30, ge=1, le=366),
        brand: BrandParam = None,
    ) -> HTMLResponse:
        names = [b.name for b in config.brands]
        if brand and brand not in names:
            raise HTTPException(404, f"no brand {brand!r}; brands: {', '.join(names)}")
        shown = [brand] if brand else names
        window = dashboard.Window(_since(days - 1), days)
        key = ("dashboard", tuple(shown), days, window.since)

        def compute() -> dict[str, Any]:
            m = model(db)
            return {
                "panels": dashboard.brand_panels(db, m, shown, window, aspects),
                "sources": dashboard.top_by(db, m, "source", shown, window.since),
                "languages": dashboard.top_by(db, m, "language", shown, window.since),
                "sov": dashboard.voice_shares(
                    db,
                    [(b.name, b.competitors) for b in config.brands if b.name in shown],
                    window.since,
                ),
            }

        data = cached(key, compute)
        keys = window.day_keys()
        since_q = window.since.strftime("%Y-%m-%d")

        def feed(**filters: Any) -> str:
            return "/mentions?" + urlencode({k: v for k, v in filters.items() if v is not None})

        def day_link(name: str) -> Callable[[int, str], str]:
            return lambda i, label: feed(
                brand=name, label=label, since=keys[i], until=_next_day(keys[i])
            )

        charts = {
            p["brand"]: stacked_bars(
                f"{p['brand']}: mentions per day by sentiment",
                keys,
                p["daily"],
                day_link(p["brand"]),
                x_labels=[_short_day(k) for k in keys],
            )
            for p in data["panels"]
        }

        def breakdown(title: str, by: Literal["source", "language"]) -> str | None:
            rows = [r for r in data[f"{by}s"] if r["value"]]
            if not rows:
                return None
            return bar_list(
                f"{title} (mentions, share negative)",
                [
                    (
                        r["name"],
                        r["volume"],
                        feed(brand=brand or None, since=since_q, **{by: r["value"]}),
                        f"{r['volume']:,}, {r['negative_share']:.0%} neg.",
                    )
                    for r in rows
                ],
            )

        sov_charts = [
            bar_list(
                f"Share of voice: {owner} against its competitors",
                [
                    (
                        r["brand"],
                        r["share_of_voice"],
                        feed(brand=r["brand"], since=since_q),
                        f"{r['share_of_voice']:.0%} ({r['volume']:,} mentions)",
                    )
                    for r in rows
                ],
            )
            for owner, rows in data["sov"].items()
        ]
        return page(
            request,
            "overview.html",
            days=days,
            brand=brand,
            since=since_q,
            needs=dashboard.needs_you(db, shown, utcnow()),
            panels=data["panels"],
            charts=charts,
            source_chart=breakdown("Top sources", "source"),
            language_chart=breakdown("Languages", "language"),
            sov_charts=sov_charts,
        )

    @app.get("/mentions", response_class=HTMLResponse, include_in_schema=False)
    def mentions_page(
        request: Request,
        db: Db,
        brand: BrandParam = None,
        source: Annotated[str | None, Query(max_length=200)] = None,
        kind: Literal["news", "social", "reviews", ""] | None = None,
        language: Annotated[str | None, Query(max_length=35)] = None,
        label: Label | Literal[""] | None = None,
        review: Literal["yes", "no", ""] | None = None,
        stars: Annotated[str | None, Query(pattern=r"^([1-5](-[1-5])?)?$")] = None,
        since: Annotated[str | None, Query(max_length=30)] = None,
        until: Annotated[str | None, Query(max_length=30)] = None,
        q: str = Query("", max_length=500),
        page_no: int = Query(1, ge=1, le=10_000, alias="page"),
        corrected: int | None = Query(None, ge=1, le=MAX_ID),
    ) -> HTMLResponse:
        low, _, high = (stars or "").partition("-")
        try:
            start, end = _day(since), _day(until)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        where = FeedFilter(
            brand=brand or None,
            source=source or None,
            kind=kind or None,
            language=language or None,
            label=label or None,
            needs_review={"yes": True, "no": False}.get(review or ""),
            min_rating=float(low) if low else None,
            max_rating=float(high or low) if low else None,
            since=start,
            until=end,
            search=q or None,
        )
        error = None
        try:
            rows = db.mention_feed(
                model(db), where, limit=FEED_SIZE + 1, offset=(page_no - 1) * FEED_SIZE
            )
        except QuerySyntaxError as exc:
            rows, error = [], f"Not a valid search: {exc}"
        filters = {
            "brand": brand or "",
            "source": source or "",
            "kind": kind or "",
            "language": language or "",
            "label": label or "",
            "review": review or "",
            "stars": stars or "",
            "since": since or "",
            "until": until or "",
            "q": q,
        }
        query = urlencode({k: v for k, v in filters.items() if v})
        return page(
            request,
            "mentions.html",
            rows=rows[:FEED_SIZE],
            filters=filters,
            error=error,
            page_no=page_no,
            more=len(rows) > FEED_SIZE,
            query=query,
            here="/mentions" + (f"?{query}" if query else ""),
            corrected=corrected,
            sources=cached(("source-names",), lambda: [r["id"] for r in db.sources()]),
            labels=LABELS,
        )

    @app.post("/mentions/{mention_id}/label", include_in_schema=False, response_model=None)
    def label_form(
        request: Request,
        db: Db,
        mention_id: IdParam,
        label: Annotated[Label, Form()],
        token: Annotated[str, Form(max_length=1000)] = "",
        back: Annotated[str, Form(max_length=2000)] = "/mentions",
    ) -> Response:
        if not form_allowed(request, token):
            raise HTTPException(403, _refusal(token))
        try:
            db.add_correction(mention_id, label, by="web")
        except KeyError:
            raise HTTPException(404, f"no mention {mention_id}") from None
        # Back to the feed the correction was made from: only ever a path of this site.
        target = back if back.startswith("/mentions") and "//" not in back else "/mentions"
        sep = "&" if "?" in target else "?"
        redirect = RedirectResponse(
            f"{target}{sep}corrected={mention_id}#m{mention_id}", status_code=303
        )
        remember(redirect, request, token)
        return redirect

    @app.get("/alerts", response_class=HTMLResponse, include_in_schema=False)
    def alerts_page(request: Request, db: Db) -> HTMLResponse:
        return page(request, "alerts.html", alerts=db.alerts(100))

    @app.get("/alerts/{alert_id}", response_class=HTMLResponse, include_in_schema=False)
    def alert_page(
        request: Request,
        db: Db,
        alert_id: IdParam,
        queued: int | None = Query(None, ge=0, le=10_000),
    ) -> HTMLResponse:
        alert = api_alert(db, alert_id)
        return page(request, "alert.html", alert=alert, queued=queued)

    @app.post("/alerts/{alert_id}/retry", include_in_schema=False, response_model=None)
    def retry_form(
        request: Request,
        db: Db,
        alert_id: IdParam,
        token: Annotated[str, Form(max_length=1000)] = "",
    ) -> Response:
        if not form_allowed(request, token):
            alert = api_alert(db, alert_id)
            response = page(request, "alert.html", alert=alert, queued=None, error=_refusal(token))
            response.status_code = 403
            return response
        n = _requeue(db, alert_id)
        redirect = RedirectResponse(f"/alerts/{alert_id}?queued={n}", status_code=303)
        remember(redirect, request, token)
        return redirect

    @app.get("/inbox", response_class=HTMLResponse, include_in_schema=False)
    def inbox_page(
        request: Request,
        db: Db,
        brand: BrandParam = None,
        status: Status = "open",
        kind: Kind | Literal[""] | None = None,
        overdue: bool = False,
        page_no: int = Query(1, ge=1, le=100_000, alias="page"),
    ) -> HTMLResponse:
        offset = (page_no - 1) * PAGE_SIZE
        items, total = inbox_items(
            db, brand or None, status, kind or None, overdue, PAGE_SIZE, offset
        )
        return page(
            request,
            "inbox.html",
            items=items,
            brand=brand,
            status=status,
            kind=kind,
            overdue=overdue,
            statuses=STATUSES,
            total=total,
            first=offset + 1,
            page_no=page_no,
            pages=max(1, -(-total // PAGE_SIZE)),
            metrics=cached(
                ("inbox-metrics", brand, _since(30)),
                lambda: response_metrics(db.inbox_all(brand or None, _since(30)), utcnow()),
            ),
        )

    @app.get("/inbox/{mention_id}", response_class=HTMLResponse, include_in_schema=False)
    def item_page(
        request: Request,
        db: Db,
        mention_id: IdParam,
        done: Status | None = None,
        was: Status | None = None,
    ) -> HTMLResponse:
        return page(request, "item.html", item=api_item(db, mention_id), done=done, was=was)

    @app.post("/inbox/{mention_id}/mark", include_in_schema=False, response_model=None)
    def mark_form(
        request: Request,
        db: Db,
        mention_id: IdParam,
        status: Annotated[Status, Form()],
        token: Annotated[str, Form(max_length=1000)] = "",
        by: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        item = api_item(db, mention_id)  # 404 for no such item
        refused: tuple[int, str] | None = None
        if not form_allowed(request, token):
            refused = 403, _refusal(token)
        else:
            try:
                before, _ = mark(db, mention_id, status, by or None)
            except MarkRefused as exc:
                refused = 409, str(exc)
        if refused is not None:
            response = page(request, "item.html", item=item, done=None, was=None, error=refused[1])
            response.status_code = refused[0]
            return response
        redirect = RedirectResponse(
            f"/inbox/{mention_id}?done={status}&was={before['status']}", status_code=303
        )
        remember(redirect, request, token)
        return redirect

    @app.get("/search", response_class=HTMLResponse, include_in_schema=False)
    def search_page(request: Request, db: Db, q: str = Query("", max_length=500)) -> HTMLResponse:
        try:
            results, error = db.latest_mentions(search=q or None, limit=50), None
        except QuerySyntaxError as exc:
            results, error = [], f"Not a valid search: {exc}"
        return page(request, "search.html", q=q, results=results, error=error)

    @app.get("/export", include_in_schema=False)
    def export(
        db: Db,
        format: Literal["csv", "jsonl", "parquet"] = "csv",
        brand: BrandParam = None,
        label: Label | Literal[""] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        bom: bool = False,
    ) -> Any:
        where = ExportFilter(
            brand=brand or None, label=label or None, since=_utc(since), until=_utc(until)
        )
        if format == "parquet":
            with tempfile.NamedTemporaryFile(suffix=".parquet", delete=False) as tmp:
                write_parquet(
                    mention_batches(db, model(db), where, time_order=False), Path(tmp.name)
                )
            return FileResponse(
                tmp.name,
                filename="mentions.parquet",
                media_type="application/vnd.apache.parquet",
                background=BackgroundTask(os.unlink, tmp.name),
            )
        rows = mention_rows(db, model(db), where)
        if format == "jsonl":
            lines = (json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            return StreamingResponse(
                lines,
                media_type="application/x-ndjson",
                headers={"Content-Disposition": "attachment; filename=mentions.jsonl"},
            )
        return StreamingResponse(
            csv_lines(rows, bom=bom),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": "attachment; filename=mentions.csv"},
        )

    # ---- JSON API --------------------------------------------------------------------------

    @app.get("/api/overview")
    def api_overview(db: Db, days: int = Query(30, ge=1, le=366)) -> dict[str, Any]:
        """Daily volume and net sentiment per brand, window totals, share of voice."""
        return overview_data(db, days)

    @app.get("/api/metrics")
    def api_metrics(
        db: Db,
        period: Literal["day", "week", "month", "all"] = "day",
        by: Literal["brand", "source", "language"] = "brand",
        days: int = Query(30, ge=1, le=MAX_DAYS),
    ) -> list[dict[str, Any]]:
        """Volume, label counts, net sentiment, CSAT, average rating, NPS-style score."""
        return cached(
            ("metrics", period, by, _since(days)),
            lambda: sentiment_table(db, model(db), period=period, by=by, since=_since(days)),
        )

    @app.get("/api/drivers")
    def api_drivers(
        db: Db,
        brand: Annotated[str, Query(max_length=200)],
        days: int = Query(30, ge=1, le=MAX_DAYS),
    ) -> list[dict[str, Any]]:
        """Which aspects appear in negative against positive mentions, and rating impact."""
        return cached(
            ("drivers", brand, _since(days)),
            lambda: key_drivers(db, model(db), aspects, brand=brand, since=_since(days)),
        )

    @app.get("/api/alerts")
    def api_alerts(db: Db, limit: int = Query(50, ge=1, le=1000)) -> list[dict[str, Any]]:
        """Fired alerts, newest first, with evidence and delivery state."""
        return [_alert_json(a) for a in db.alerts(limit)]

    @app.get("/api/alerts/{alert_id}")
    def api_alert(db: Db, alert_id: IdParam) -> dict[str, Any]:
        row = db.alert(alert_id)
        if row is None:
            raise HTTPException(404, f"no alert {alert_id}")
        alert = _alert_json(row)
        alert["facts"] = facts(alert["evidence"])
        alert["delivery_states"] = db.deliveries(alert_id)
        alert["mentions"] = [m for m in map(db.mention, alert["mention_ids"]) if m]
        for m in alert["mentions"]:
            m.pop("raw", None)
            m.pop("html", None)
        return alert

    @app.post("/api/alerts/{alert_id}/retry")
    def api_retry(db: Db, alert_id: IdParam, credentials: Credentials) -> dict[str, int]:
        """Queue again this alert's failed or interrupted deliveries (the next pass sends
        them). Needs `Authorization: Bearer <token>`."""
        require_token(_token(credentials))
        return {"queued": _requeue(db, alert_id)}

    def inbox_items(
        db: Storage,
        brand: str | None,
        status: str,
        kind: str | None,
        overdue: bool,
        limit: int,
        offset: int,
    ) -> tuple[list[dict[str, Any]], int]:
        now = utcnow()
        overdue_at = now if overdue else None
        items = db.inbox(
            brand=brand, status=status, kind=kind, overdue_at=overdue_at, limit=limit, offset=offset
        )
        for i in items:
            due = parse_iso(i["due_at"])
            i["late"] = due is not None and due <= now and i["status"] == "open"
            i["due_in"] = _due_in(due, now) if i["status"] == "open" else i["status"]
        total = db.inbox_count(brand=brand, status=status, kind=kind, overdue_at=overdue_at)
        return items, total

    @app.get("/api/inbox")
    def api_inbox(
        db: Db,
        response: Response,
        brand: BrandParam = None,
        status: Status = "open",
        kind: Kind | None = None,
        overdue: bool = False,
        limit: int = Query(PAGE_SIZE, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=10_000_000),
    ) -> list[dict[str, Any]]:
        """Inbox items, oldest due first, a page at a time: the X-Total-Count header says
        how many match."""
        items, total = inbox_items(db, brand, status, kind, overdue, limit, offset)
        response.headers["X-Total-Count"] = str(total)
        return items

    @app.get("/api/inbox/{mention_id}")
    def api_item(db: Db, mention_id: IdParam) -> dict[str, Any]:
        """One inbox item with its reply draft in the mention's language."""
        item = db.inbox_item(mention_id)
        if item is None:
            raise HTTPException(404, f"no inbox item for mention {mention_id}")
        item["draft_language"], item["draft"] = draft(
            item["kind"],
            item["language"],
            item["author"],
            item["brand"],
            config.inbox.all_templates(),
        )
        return item

    @app.post("/api/inbox/{mention_id}/mark")
    def api_mark(
        db: Db,
        mention_id: IdParam,
        status: Status,
        credentials: Credentials,
        by: str | None = Query(None, max_length=200),
    ) -> dict[str, Any]:
        """Record a reply/thanks (or ignore). Needs `Authorization: Bearer <token>`."""
        require_token(_token(credentials))
        try:
            mark(db, mention_id, status, by)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        except MarkRefused as exc:
            raise HTTPException(409, str(exc)) from None
        return api_item(db, mention_id)

    @app.get("/api/mentions")
    def api_mentions(
        db: Db,
        q: str | None = Query(None, max_length=500),
        brand: BrandParam = None,
        limit: int = Query(50, ge=1, le=500),
    ) -> list[dict[str, Any]]:
        """Newest mentions, or full-text search results for `q` (any language)."""
        try:
            return db.latest_mentions(brand=brand, search=q, limit=limit)
        except QuerySyntaxError as exc:
            raise HTTPException(400, f"bad search: {exc}") from None

    def require_token(token: str | None) -> None:
        if not token_ok(token):
            raise HTTPException(403, _refusal(token))

    def _requeue(db: Storage, alert_id: int) -> int:
        if not db.has_alert(alert_id):
            raise HTTPException(404, f"no alert {alert_id}")
        return db.requeue_deliveries(alert_id)

    return app


def _refusal(token: str | None) -> str:
    if not os.environ.get(TOKEN_ENV):
        return f"read-only: changes need {TOKEN_ENV} set where `listener serve` runs"
    if not token:
        return f"give the token (the value of {TOKEN_ENV}) to make changes"
    return "that token is wrong: nothing was changed"


def _token(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    # HTTPBearer reads the scheme case-insensitively (RFC 9110): "bearer x" works too.
    return credentials.credentials if credentials else None


def _alert_json(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["evidence"] = json.loads(row.get("evidence") or "{}")
    out["mention_ids"] = json.loads(row.get("mention_ids") or "[]")
    out["explanation"] = explain(out["rule"], out["evidence"], out.get("brand"))
    return out
