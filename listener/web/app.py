"""`listener serve`: a small read-mostly web app over the same library functions as the CLI.

Pages are rendered on the server (Jinja2, autoescaped: mention text is untrusted) with SVG
charts; a JSON API under /api/ serves the same data and documents itself at /openapi.json.
Marking inbox items needs the token in LISTENER_WEB_TOKEN; without one the app is read-only.
"""

import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.background import BackgroundTask

from alerts import replies
from alerts.causes import KINDS as CAUSE_KINDS
from alerts.explain import explain, facts
from alerts.inbox import MarkRefused, item_draft, response_metrics
from alerts.render import human
from listener import changes, dashboard
from listener import report as reports
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
from listener.storage import ExportFilter, FeedFilter, NotFound, ReplyBusy, Storage, open_store
from listener.storage.pool import StorePool
from listener.timeutil import parse_iso, utcnow
from listener.urls import http_url
from listener.web.cache import TTLCache
from listener.web.figures import figures, next_day
from listener.web.response_cache import ResponseCache
from listener.web.security import CSP, add_security, script_hashes
from listener.web.sessions import (
    MAX_AGE_S,
    SESSION_COOKIE,
    Session,
    Sessions,
    Throttle,
    clean_name,
    local_path,
)
from sentiment import configured_key
from sentiment.base import LABELS

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
# Rendered as a link only if it is an http(s) URL, however it was stored.
TEMPLATES.env.filters["http_url"] = http_url
TOKEN_ENV = "LISTENER_WEB_TOKEN"
STATUSES = ("open", "replied", "thanked", "ignored")
CACHE_S = 30.0
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
PAGE_SIZE = 100
FEED_SIZE = 50
MAX_DAYS = 3660  # ten years of history in one query
MAX_ID = 2**63 - 1  # SQLite's integer range: larger ids are a 422, not an overflow
BULK_MAX = 500  # items one bulk action may change (a page shows 100)
BULK_REFUSED_SHOWN = 20
NO_ONE = "-"  # the inbox filter value for items assigned to no one
API_ACTOR = "api"  # the audit log's name for a change made with the token over the API

Status = Literal["open", "replied", "thanked", "ignored"]
Kind = Literal["reply", "thank"]
Label = Literal["negative", "neutral", "positive"]
BulkAction = Literal["replied", "thanked", "ignored", "open", "assign_me", "assign", "unassign"]
BrandParam = Annotated[str | None, Query(max_length=200)]
IdParam = Annotated[int, PathParam(ge=1, le=MAX_ID)]
bearer = HTTPBearer(auto_error=False, description="the token in LISTENER_WEB_TOKEN")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


log = logging.getLogger("listener")


@dataclass(frozen=True)
class Write:
    """A change asked for from a form: by whom, and the page to go back to ("" if none)."""

    session: Session
    back: str


class SignInNeeded(Exception):
    def __init__(self, back: str) -> None:
        self.back = back


def _with_query(path: str, **params: str) -> str:
    """`path` with `params` set in its query (replacing earlier values)."""
    parts = urlsplit(path)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return f"{parts.path}?{urlencode(query)}"


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
    # One inbox item is one cheap lookup, and what a person acts on (a reply posted by the
    # last pass, a mark by a colleague): always read fresh.
    app.add_middleware(
        ResponseCache, ttl=CACHE_S, skip=("/export", "/static", "/inbox/", "/api/inbox/")
    )
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

    sessions = Sessions(TOKEN_ENV)
    throttle = Throttle()

    def session_of(request: Request) -> Session | None:
        return sessions.read(request.cookies.get(SESSION_COOKIE))

    def writer(
        request: Request,
        csrf: Annotated[str, Form(max_length=200)] = "",
        back: Annotated[str, Form(max_length=2000)] = "",
    ) -> Write:
        """Who makes a change from a form: a signed-in person whose form carries the session's
        CSRF value. Not signed in (or the session ended): to the sign-in page and back."""
        if not sessions.enabled():
            raise HTTPException(403, _refusal())
        session = session_of(request)
        if session is None:
            raise SignInNeeded(local_path(back, "/"))
        if not sessions.csrf_ok(session, csrf):
            raise HTTPException(
                403, "this form is out of date or came from another site: reload the page"
            )
        return Write(session, local_path(back, ""))

    Writer = Annotated[Write, Depends(writer)]

    @app.exception_handler(SignInNeeded)
    def to_sign_in(request: Request, exc: SignInNeeded) -> Response:
        return RedirectResponse("/signin?" + urlencode({"next": exc.back}), status_code=303)

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        session = session_of(request)
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return TEMPLATES.TemplateResponse(
            request,
            name,
            {
                "brands": [b.name for b in config.brands],
                "writable": sessions.enabled(),
                "user": session.name if session else None,
                "csrf": session.csrf if session else "",
                "here": here,
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

        shown_figures = figures(data, keys, since_q, brand, feed)
        return page(
            request,
            "overview.html",
            days=days,
            brand=brand,
            since=since_q,
            needs=dashboard.needs_you(db, shown, utcnow()),
            panels=data["panels"],
            **shown_figures,
        )

    @app.get("/report", response_class=HTMLResponse, include_in_schema=False)
    def report_page(
        db: Db,
        period: Literal["week", "month"] = "week",
        date: Annotated[str | None, Query(max_length=30)] = None,
        brand: BrandParam = None,
    ) -> HTMLResponse:
        """The weekly or monthly report (`listener report`), linked to this dashboard."""
        try:
            day = _day(date)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        span = reports.containing(period, day) if day else reports.last_closed(period, utcnow())
        shown = [(b.name, b.competitors) for b in config.brands if brand in (None, b.name)]
        if not shown:
            raise HTTPException(404, f"no brand {brand!r}")
        data = cached(
            ("report", period, span.start, brand),
            lambda: reports.build(db, model(db), shown, aspects, span),
        )
        # A report is one self-contained document: its styles are inline (no script at all).
        csp = CSP.replace("style-src 'self'", "style-src 'unsafe-inline'")
        return HTMLResponse(
            reports.render_html(data, link_base=""), headers={"Content-Security-Policy": csp}
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
        for r in rows:
            # How sure the model was: its top class probability (a model may give only some).
            given = [r.get(f"p_{label}") for label in LABELS]
            r["confidence"] = max((p for p in given if p is not None), default=None)
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
        db: Db, mention_id: IdParam, label: Annotated[Label, Form()], write: Writer
    ) -> Response:
        try:
            changes.correct_label(db, mention_id, label, write.session.actor)
        except KeyError:
            raise HTTPException(404, f"no mention {mention_id}") from None
        # Back to the feed the correction was made from.
        target = write.back if write.back.startswith("/mentions") else "/mentions"
        target = _with_query(target, corrected=str(mention_id))
        return RedirectResponse(f"{target}#m{mention_id}", status_code=303)

    @app.get("/signin", response_class=HTMLResponse, include_in_schema=False)
    def signin_page(
        request: Request, next_path: Annotated[str, Query(alias="next", max_length=2000)] = "/"
    ) -> HTMLResponse:
        return page(request, "signin.html", next=local_path(next_path), error=None)

    @app.post("/signin", include_in_schema=False, response_model=None)
    def signin(
        request: Request,
        db: Db,
        name: Annotated[str, Form(max_length=200)] = "",
        token: Annotated[str, Form(max_length=1000)] = "",
        next_path: Annotated[str, Form(alias="next", max_length=2000)] = "/",
    ) -> Response:
        client = request.client.host if request.client else "?"
        target = local_path(next_path)

        def refused(status: int, error: str, **headers: str) -> Response:
            response = page(request, "signin.html", next=target, error=error, given=name)
            response.status_code = status
            response.headers.update(headers)
            return response

        wait = throttle.retry_after(client)
        if wait:
            return refused(
                429,
                "too many wrong tokens from this address: try again in "
                + human(timedelta(seconds=wait)),
                **{"Retry-After": str(wait)},
            )
        if not sessions.enabled():
            return refused(403, _refusal())
        who = clean_name(name)
        if who is None:
            return refused(422, "give your name (up to 60 characters, without < > \" ' &)")
        if not sessions.token_ok(token):
            throttle.failed(client)
            log.warning("web sign-in refused for %r from %s: wrong token", who, client)
            return refused(403, "that token is wrong")
        with db.audited(f"web:{who}", "sign in"):
            pass
        redirect = RedirectResponse(target, status_code=303)
        redirect.set_cookie(
            SESSION_COOKIE,
            sessions.issue(who),
            max_age=MAX_AGE_S,
            httponly=True,
            samesite="strict",  # never sent with a request another site starts
            secure=request.url.scheme == "https",
        )
        return redirect

    @app.post("/signout", include_in_schema=False, response_model=None)
    def signout(write: Writer) -> Response:
        redirect = RedirectResponse("/", status_code=303)
        redirect.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
        return redirect

    @app.get("/audit", response_class=HTMLResponse, include_in_schema=False)
    def audit_page(
        request: Request,
        db: Db,
        actor: Annotated[str | None, Query(max_length=200)] = None,
        page_no: int = Query(1, ge=1, le=100_000, alias="page"),
    ) -> HTMLResponse:
        if session_of(request) is None:
            raise SignInNeeded("/audit")
        rows = db.audit_log(
            actor=actor or None, limit=PAGE_SIZE + 1, offset=(page_no - 1) * PAGE_SIZE
        )
        return page(
            request,
            "audit.html",
            rows=rows[:PAGE_SIZE],
            actor=actor or "",
            page_no=page_no,
            more=len(rows) > PAGE_SIZE,
        )

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
        return page(request, "alert.html", alert=alert, queued=queued, causes=_causes(alert))

    @app.post("/alerts/{alert_id}/retry", include_in_schema=False, response_model=None)
    def retry_form(db: Db, alert_id: IdParam, write: Writer) -> Response:
        n = _requeue(db, alert_id, write.session.actor)
        return RedirectResponse(f"/alerts/{alert_id}?queued={n}", status_code=303)

    @app.get("/inbox", response_class=HTMLResponse, include_in_schema=False)
    def inbox_page(
        request: Request,
        db: Db,
        brand: BrandParam = None,
        status: Status = "open",
        kind: Kind | Literal[""] | None = None,
        overdue: bool = False,
        assignee: Annotated[str | None, Query(max_length=200)] = None,
        page_no: int = Query(1, ge=1, le=100_000, alias="page"),
        changed: int | None = Query(None, ge=0, le=BULK_MAX * 2),
        refused: Annotated[str | None, Query(max_length=400, pattern=r"^[0-9,]*$")] = None,
    ) -> HTMLResponse:
        offset = (page_no - 1) * PAGE_SIZE
        items, total = inbox_items(
            db, brand or None, status, kind or None, overdue, PAGE_SIZE, offset, _who(assignee)
        )
        filters = {
            "brand": brand or "",
            "status": status,
            "kind": kind or "",
            "overdue": "true" if overdue else "",
            "assignee": assignee or "",
        }
        return page(
            request,
            "inbox.html",
            items=items,
            brand=brand,
            status=status,
            kind=kind,
            overdue=overdue,
            assignee=assignee or "",
            no_one=NO_ONE,
            statuses=STATUSES,
            total=total,
            first=offset + 1,
            page_no=page_no,
            pages=max(1, -(-total // PAGE_SIZE)),
            query=urlencode({k: v for k, v in filters.items() if v}),
            changed=changed,
            refused=[int(i) for i in (refused or "").split(",") if i][:BULK_REFUSED_SHOWN],
            metrics=cached(
                ("inbox-metrics", brand, _since(30)),
                lambda: response_metrics(db.inbox_all(brand or None, _since(30)), utcnow()),
            ),
        )

    @app.post("/inbox/bulk", include_in_schema=False, response_model=None)
    def bulk_form(
        db: Db,
        write: Writer,
        action: Annotated[BulkAction, Form()],
        ids: Annotated[list[int], Form(alias="id")] = [],  # noqa: B006 (FastAPI copies it)
        assignee: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        if len(ids) > BULK_MAX:
            raise HTTPException(422, f"at most {BULK_MAX} items at a time")
        if action == "assign" and not _assignee(assignee):
            raise HTTPException(422, "assign to whom? give a name (up to 60 characters)")
        status = None if action.startswith(("assign", "unassign")) else action
        to = {"assign": _assignee(assignee), "assign_me": write.session.name}.get(action)
        result = changes.bulk(
            db,
            ids,
            write.session.actor,
            status=status,
            assignee=to,
            unassign=action == "unassign",
            by=write.session.name,
        )
        back = write.back if write.back.startswith("/inbox") else "/inbox"
        refused_ids = ",".join(str(i) for i in result.refused_ids[:BULK_REFUSED_SHOWN])
        return RedirectResponse(
            _with_query(back, changed=str(result.changed), refused=refused_ids), status_code=303
        )

    @app.get("/inbox/{mention_id}", response_class=HTMLResponse, include_in_schema=False)
    def item_page(
        request: Request,
        db: Db,
        mention_id: IdParam,
        done: Status | None = None,
        was: Status | None = None,
        assigned: Annotated[str | None, Query(max_length=200)] = None,
        reply: Literal["approved", "cancelled"] | None = None,
    ) -> HTMLResponse:
        return page(
            request,
            "item.html",
            item=api_item(db, mention_id),
            done=done,
            was=was,
            assigned=assigned,
            reply_done=reply,
        )

    @app.post("/inbox/{mention_id}/mark", include_in_schema=False, response_model=None)
    def mark_form(
        request: Request,
        db: Db,
        mention_id: IdParam,
        status: Annotated[Status, Form()],
        write: Writer,
        by: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        item = api_item(db, mention_id)  # 404 for no such item
        try:
            before, _ = changes.mark_item(
                db, mention_id, status, write.session.actor, clean_name(by) or write.session.name
            )
        except MarkRefused as exc:
            response = page(
                request, "item.html", item=item, done=None, was=None, assigned=None, error=str(exc)
            )
            response.status_code = 409
            return response
        return RedirectResponse(
            f"/inbox/{mention_id}?done={status}&was={before['status']}", status_code=303
        )

    @app.post("/inbox/{mention_id}/reply", include_in_schema=False, response_model=None)
    def reply_form(
        request: Request,
        db: Db,
        mention_id: IdParam,
        write: Writer,
        text: Annotated[str, Form(max_length=10_000)] = "",
        action: Annotated[Literal["approve", "cancel"], Form()] = "approve",
    ) -> Response:
        try:
            _approve(db, mention_id, text, write.session.actor, action == "cancel")
        except HTTPException as exc:
            if exc.status_code != 409:
                raise
            item = api_item(db, mention_id)
            response = page(
                request,
                "item.html",
                item=item,
                done=None,
                was=None,
                assigned=None,
                error=exc.detail,
                typed=text,
            )
            response.status_code = 409
            return response
        done = "cancelled" if action == "cancel" else "approved"
        return RedirectResponse(f"/inbox/{mention_id}?reply={done}", status_code=303)

    @app.post("/inbox/{mention_id}/assign", include_in_schema=False, response_model=None)
    def assign_form(
        db: Db,
        mention_id: IdParam,
        write: Writer,
        assignee: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        """An empty name: assigned to no one."""
        to = _assignee(assignee)
        try:
            changes.assign_item(db, mention_id, to, write.session.actor)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        return RedirectResponse(
            f"/inbox/{mention_id}?" + urlencode({"assigned": to or NO_ONE}), status_code=303
        )

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
        return {"queued": _requeue(db, alert_id, API_ACTOR)}

    def inbox_items(
        db: Storage,
        brand: str | None,
        status: str,
        kind: str | None,
        overdue: bool,
        limit: int,
        offset: int,
        assignee: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        now = utcnow()
        overdue_at = now if overdue else None
        items = db.inbox(
            brand=brand,
            status=status,
            kind=kind,
            overdue_at=overdue_at,
            assignee=assignee,
            limit=limit,
            offset=offset,
        )
        for i in items:
            due = parse_iso(i["due_at"])
            i["late"] = due is not None and due <= now and i["status"] == "open"
            i["due_in"] = _due_in(due, now) if i["status"] == "open" else i["status"]
        total = db.inbox_count(
            brand=brand, status=status, kind=kind, overdue_at=overdue_at, assignee=assignee
        )
        return items, total

    @app.get("/api/inbox")
    def api_inbox(
        db: Db,
        response: Response,
        brand: BrandParam = None,
        status: Status = "open",
        kind: Kind | None = None,
        overdue: bool = False,
        assignee: Annotated[str | None, Query(max_length=200)] = None,
        limit: int = Query(PAGE_SIZE, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=10_000_000),
    ) -> list[dict[str, Any]]:
        """Inbox items, oldest due first, a page at a time: the X-Total-Count header says
        how many match. `assignee`: a name, or `-` for items assigned to no one."""
        items, total = inbox_items(db, brand, status, kind, overdue, limit, offset, _who(assignee))
        response.headers["X-Total-Count"] = str(total)
        return items

    @app.get("/api/inbox/{mention_id}")
    def api_item(db: Db, mention_id: IdParam) -> dict[str, Any]:
        """One inbox item with its reply draft in the mention's language."""
        item = db.inbox_item(mention_id)
        if item is None:
            raise HTTPException(404, f"no inbox item for mention {mention_id}")
        item["draft_language"], item["draft"] = item_draft(config, item)
        reply = db.reply(mention_id)
        path = replies.path_or_none(config, item["source_id"])
        item["reply_max_chars"] = path.max_chars if path else None
        item["reply"] = (
            {k: v for k, v in reply.items() if k not in ("lease_owner", "lease_expires")}
            if reply
            else None
        )
        return item

    def _approve(
        db: Storage, mention_id: int, text: str | None, actor: str, cancel: bool = False
    ) -> str:
        """Approve (or cancel) a reply: 404 no such item, 409 what cannot be done."""
        if db.inbox_item(mention_id) is None:
            raise HTTPException(404, f"no inbox item for mention {mention_id}")
        try:
            if cancel:
                return replies.cancel(db, mention_id, actor)
            return replies.approve(config, db, mention_id, text, actor)
        except (replies.ReplyRefused, ReplyBusy, NotFound) as exc:
            raise HTTPException(409, str(exc)) from None

    @app.post("/api/inbox/{mention_id}/reply")
    def api_reply(
        db: Db,
        mention_id: IdParam,
        credentials: Credentials,
        text: Annotated[str | None, Query(max_length=10_000)] = None,
        use_draft: Annotated[bool, Query(alias="draft")] = False,
        cancel: bool = False,
    ) -> dict[str, Any]:
        """Approve a reply to post where the mention was written (`text`, or `draft=true` for
        the item's draft), or `cancel=true` one not yet posted. It goes out once, with the next
        pass. Needs the token; 409 when the source cannot post replies or one was sent."""
        require_token(_token(credentials))
        if sum([text is not None, use_draft, cancel]) != 1:
            raise HTTPException(422, "give one of text, draft=true or cancel=true")
        _approve(db, mention_id, text, API_ACTOR, cancel)
        return api_item(db, mention_id)

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
            changes.mark_item(db, mention_id, status, API_ACTOR, by)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        except MarkRefused as exc:
            raise HTTPException(409, str(exc)) from None
        return api_item(db, mention_id)

    @app.post("/api/inbox/{mention_id}/assign")
    def api_assign(
        db: Db,
        mention_id: IdParam,
        credentials: Credentials,
        assignee: Annotated[str, Query(max_length=200)] = "",
    ) -> dict[str, Any]:
        """Give an item to someone (an empty `assignee`: to no one). Needs the token."""
        require_token(_token(credentials))
        try:
            changes.assign_item(db, mention_id, _assignee(assignee), API_ACTOR)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        return api_item(db, mention_id)

    @app.post("/api/mentions/{mention_id}/label")
    def api_label(
        db: Db, mention_id: IdParam, label: Label, credentials: Credentials
    ) -> dict[str, Any]:
        """Correct a mention's label (as `listener label` does). Needs the token."""
        require_token(_token(credentials))
        try:
            changes.correct_label(db, mention_id, label, API_ACTOR)
        except KeyError:
            raise HTTPException(404, f"no mention {mention_id}") from None
        return {"mention_id": mention_id, "label": label}

    @app.get("/api/audit")
    def api_audit(
        db: Db,
        credentials: Credentials,
        actor: Annotated[str | None, Query(max_length=200)] = None,
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=10_000_000),
    ) -> list[dict[str, Any]]:
        """Who changed what and when, newest first. Needs the token."""
        require_token(_token(credentials))
        return db.audit_log(actor=actor, limit=limit, offset=offset)

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
        if not sessions.token_ok(token):
            raise HTTPException(403, _refusal(token))

    def _requeue(db: Storage, alert_id: int, actor: str) -> int:
        if not db.has_alert(alert_id):
            raise HTTPException(404, f"no alert {alert_id}")
        return changes.requeue(db, alert_id, actor)

    return app


def _refusal(token: str | None = None) -> str:
    if not os.environ.get(TOKEN_ENV):
        return f"read-only: changes need {TOKEN_ENV} set where `listener serve` runs"
    if not token:
        return f"give the token (the value of {TOKEN_ENV}) as `Authorization: Bearer <token>`"
    return "that token is wrong: nothing was changed"


def _assignee(value: str) -> str | None:
    """Who an item is given to, as typed: a name, or None for no one (empty); 422 for a name
    that cannot be one."""
    name = clean_name(value)
    if value.strip() and name is None:
        raise HTTPException(422, "a name of up to 60 characters, without < > \" ' &")
    return name


def _who(assignee: str | None) -> str | None:
    """The inbox filter's assignee: None for anyone, "" for no one (NO_ONE), else a name."""
    return None if assignee is None else ("" if assignee == NO_ONE else assignee)


def _token(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    # HTTPBearer reads the scheme case-insensitively (RFC 9110): "bearer x" works too.
    return credentials.credentials if credentials else None


def _causes(alert: dict[str, Any]) -> list[dict[str, Any]]:
    """The alert's causes as table rows, each word and source linked to its mentions of the
    alert's day and the day before."""
    found = alert["evidence"].get("causes")
    if not isinstance(found, dict) or not alert.get("brand"):
        return []
    day = (alert.get("created_at") or "")[:10]
    try:
        since = (datetime.fromisoformat(day) - timedelta(days=1)).strftime("%Y-%m-%d")
        until = next_day(day)
    except ValueError:
        since = until = ""
    out = []
    for kind, what in CAUSE_KINDS.items():
        for r in found.get(kind) or []:
            if not isinstance(r, dict) or not r.get("baseline_total") or not r.get("window_total"):
                continue
            where = {"terms": "q", "sources": "source"}.get(kind)
            href = None
            if where:
                query = {"brand": alert["brand"], where: str(r["value"]), "since": since}
                href = "/mentions?" + urlencode({**query, "until": until} if until else query)
            out.append(
                {
                    "what": what,
                    "value": str(r.get("value", "")),
                    "href": href,
                    "window": f"{r.get('window', 0)} of {r['window_total']} "
                    f"({r.get('window', 0) / r['window_total']:.0%})",
                    "before": f"{r.get('baseline', 0)} of {r['baseline_total']} "
                    f"({r.get('baseline', 0) / r['baseline_total']:.0%})",
                }
            )
    return out


def _alert_json(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["evidence"] = json.loads(row.get("evidence") or "{}")
    out["mention_ids"] = json.loads(row.get("mention_ids") or "[]")
    out["explanation"] = explain(out["rule"], out["evidence"], out.get("brand"))
    return out
