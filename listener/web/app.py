"""`listener serve`: a small read-mostly web app over the same library functions as the CLI.

Pages are rendered on the server (Jinja2, autoescaped: mention text is untrusted) with SVG
charts; a JSON API under /api/ serves the same data and documents itself at /openapi.json.
Marking inbox items needs the token in LISTENER_WEB_TOKEN; without one the app is read-only.
"""


import json
import os
import secrets
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, Header, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.templating import Jinja2Templates
from starlette.background import BackgroundTask
from starlette.middleware.trustedhost import TrustedHostMiddleware

from alerts.inbox import draft, response_metrics
from listener.config import Config
from listener.export import csv_lines, mention_rows, write_parquet
from listener.metrics import aspect_matchers, key_drivers, sentiment_table, share_of_voice
from listener.storage import Store
from listener.timeutil import parse_iso, utcnow
from listener.web.cache import TTLCache
from listener.web.charts import line_chart
from sentiment import configured_key

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TOKEN_ENV = "LISTENER_WEB_TOKEN"
STATUSES = ("open", "replied", "thanked", "ignored")
CACHE_S = 30.0
LOCAL_HOSTS = ("localhost", "127.0.0.1")


def _since(days: int) -> datetime:
    return (utcnow() - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)


def create_app(config: Config, db_path: Path | None = None,
               allowed_hosts: Sequence[str] = LOCAL_HOSTS) -> FastAPI:
    app = FastAPI(title="listener", version="1", description=__doc__)
    # A page on any web site can re-point its own name at 127.0.0.1 (DNS rebinding) and read
    # a dashboard that trusts whoever reaches the port; answering only to known Host names
    # stops that. "*" accepts any (for a server bound to a public address).
    if "*" not in allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    path = db_path or config.database_path()
    preferred = configured_key(config.sentiment)
    aspects = aspect_matchers(config.aspects)

    Store.open(path).close()  # create and migrate once; requests then just connect

    def store() -> Iterator[Store]:
        s = Store.open(path, migrate=False)
        try:
            yield s
        finally:
            s.close()

    Db = Annotated[Store, Depends(store)]
    # Aggregates change only when a pass runs: recompute them at most every CACHE_S.
    cached = TTLCache(CACHE_S).get

    def model(db: Store) -> tuple[str, str | None]:
        return cached(("model",), lambda: db.scored_model(preferred))

    def token_ok(given: str | None) -> bool:
        wanted = os.environ.get(TOKEN_ENV)
        return bool(wanted and given and secrets.compare_digest(given, wanted))

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, name, {
            "brands": [b.name for b in config.brands], "writable": bool(
                os.environ.get(TOKEN_ENV)), **context})

    # ---- data shared by pages and API ------------------------------------------------------

    def overview_data(db: Store, days: int) -> dict[str, Any]:
        return cached(("overview", days, _since(days)), lambda: _overview(db, days))

    def _overview(db: Store, days: int) -> dict[str, Any]:
        since = _since(days)
        daily = sentiment_table(db, model(db), period="day", since=since)
        xs = [(since + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(days + 1)]
        names = [b.name for b in config.brands]
        by = {(r["period"], r["brand"]): r for r in daily}
        volume = {n: [by.get((x, n), {}).get("volume", 0) for x in xs] for n in names}
        net = {n: [by.get((x, n), {}).get("net_sentiment") for x in xs] for n in names}
        totals = {r["brand"]: r for r in sentiment_table(db, model(db), period="all", since=since)}
        sov = {b.name: share_of_voice(db, b.name, b.competitors, period="all", since=since)
               for b in config.brands if b.competitors}
        return {"days": days, "xs": xs, "volume": volume, "net": net, "totals": totals,
                "sov": sov}

    # ---- pages -----------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview(request: Request, db: Db, days: int = 30) -> HTMLResponse:
        data = overview_data(db, days)
        charts = [
            line_chart(f"Mentions per day, last {days} days", [x[5:] for x in data["xs"]],
                       data["volume"], y_min=0),
            line_chart("Net sentiment per day ((pos − neg) / scored)",
                       [x[5:] for x in data["xs"]], data["net"], y_min=-1, y_max=1,
                       fmt="{:+.1f}"),
        ]
        return page(request, "overview.html", charts=charts, **data)

    @app.get("/alerts", response_class=HTMLResponse, include_in_schema=False)
    def alerts_page(request: Request, db: Db) -> HTMLResponse:
        return page(request, "alerts.html", alerts=db.alerts(100))

    @app.get("/alerts/{alert_id}", response_class=HTMLResponse, include_in_schema=False)
    def alert_page(request: Request, db: Db, alert_id: int, queued: int | None = None
                   ) -> HTMLResponse:
        alert = api_alert(db, alert_id)
        return page(request, "alert.html", alert=alert, queued=queued)

    @app.post("/alerts/{alert_id}/retry", include_in_schema=False)
    def retry_form(db: Db, alert_id: int, token: Annotated[str, Form()] = ""
                   ) -> RedirectResponse:
        n = _retry(db, alert_id, token)
        return RedirectResponse(f"/alerts/{alert_id}?queued={n}", status_code=303)

    @app.get("/inbox", response_class=HTMLResponse, include_in_schema=False)
    def inbox_page(request: Request, db: Db, brand: str | None = None, status: str = "open",
                   kind: str | None = None, overdue: bool = False) -> HTMLResponse:
        items = api_inbox(db, brand or None, status, kind or None, overdue)
        return page(request, "inbox.html", items=items, brand=brand, status=status, kind=kind,
                    overdue=overdue, statuses=STATUSES,
                    metrics=cached(("inbox-metrics", brand, _since(30)), lambda: response_metrics(
                        db.inbox_all(brand or None, _since(30)), utcnow())))

    @app.get("/inbox/{mention_id}", response_class=HTMLResponse, include_in_schema=False)
    def item_page(request: Request, db: Db, mention_id: int, done: str | None = None
                  ) -> HTMLResponse:
        return page(request, "item.html", item=api_item(db, mention_id), done=done)

    @app.post("/inbox/{mention_id}/mark", include_in_schema=False)
    def mark_form(db: Db, mention_id: int, status: Annotated[str, Form()],
                  token: Annotated[str, Form()] = "", by: Annotated[str, Form()] = ""
                  ) -> RedirectResponse:
        _mark(db, mention_id, status, by or None, token)
        return RedirectResponse(f"/inbox/{mention_id}?done={status}", status_code=303)

    @app.get("/search", response_class=HTMLResponse, include_in_schema=False)
    def search_page(request: Request, db: Db, q: str = "") -> HTMLResponse:
        return page(request, "search.html", q=q, results=api_mentions(db, q or None, None, 50))

    @app.get("/export", include_in_schema=False)
    def export(db: Db, format: str = "csv", brand: str | None = None,
               label: str | None = None, since: str | None = None) -> Any:
        rows = mention_rows(db, model(db), brand=brand or None, label=label or None,
                            since=parse_iso(since) if since else None)
        if format == "parquet":
            with tempfile.NamedTemporaryFile(suffix=".parquet", delete=False) as tmp:
                write_parquet(rows, Path(tmp.name))
            return FileResponse(tmp.name, filename="mentions.parquet",
                                media_type="application/vnd.apache.parquet",
                                background=BackgroundTask(os.unlink, tmp.name))
        if format == "jsonl":
            lines = (json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            return StreamingResponse(lines, media_type="application/x-ndjson",
                                     headers={"Content-Disposition":
                                              "attachment; filename=mentions.jsonl"})
        return StreamingResponse(csv_lines(rows), media_type="text/csv",
                                 headers={"Content-Disposition":
                                          "attachment; filename=mentions.csv"})

    # ---- JSON API --------------------------------------------------------------------------

    @app.get("/api/overview")
    def api_overview(db: Db, days: int = Query(30, ge=1, le=366)) -> dict[str, Any]:
        """Daily volume and net sentiment per brand, window totals, share of voice."""
        return overview_data(db, days)

    @app.get("/api/metrics")
    def api_metrics(db: Db, period: str = Query("day", pattern="^(day|week|month|all)$"),
                    by: str = Query("brand", pattern="^(brand|source|language)$"),
                    days: int = Query(30, ge=1)) -> list[dict[str, Any]]:
        """Volume, label counts, net sentiment, CSAT, average rating, NPS-style score."""
        return cached(("metrics", period, by, _since(days)), lambda: sentiment_table(
            db, model(db), period=period, by=by, since=_since(days)))

    @app.get("/api/drivers")
    def api_drivers(db: Db, brand: str, days: int = Query(30, ge=1)) -> list[dict[str, Any]]:
        """Which aspects appear in negative against positive mentions, and rating impact."""
        return cached(("drivers", brand, _since(days)), lambda: key_drivers(
            db, model(db), aspects, brand=brand, since=_since(days)))

    @app.get("/api/alerts")
    def api_alerts(db: Db, limit: int = Query(50, ge=1, le=1000)) -> list[dict[str, Any]]:
        """Fired alerts, newest first, with evidence and delivery state."""
        return [_alert_json(a) for a in db.alerts(limit)]

    @app.get("/api/alerts/{alert_id}")
    def api_alert(db: Db, alert_id: int) -> dict[str, Any]:
        row = next(db.db.query("SELECT * FROM alerts WHERE id = ?", [alert_id]), None)
        if row is None:
            raise HTTPException(404, f"no alert {alert_id}")
        alert = _alert_json(row)
        alert["delivery_states"] = db.deliveries(alert_id)
        alert["mentions"] = [m for m in map(db.mention, alert["mention_ids"]) if m]
        for m in alert["mentions"]:
            m.pop("raw", None)
            m.pop("html", None)
        return alert

    @app.post("/api/alerts/{alert_id}/retry")
    def api_retry(db: Db, alert_id: int,
                  authorization: Annotated[str | None, Header()] = None) -> dict[str, int]:
        """Queue again this alert's failed or interrupted deliveries (the next pass sends
        them). Needs `Authorization: Bearer <token>`."""
        return {"queued": _retry(db, alert_id, _bearer(authorization))}

    @app.get("/api/inbox")
    def api_inbox(db: Db, brand: str | None = None, status: str = "open",
                  kind: str | None = None, overdue: bool = False) -> list[dict[str, Any]]:
        """Inbox items, oldest due first."""
        now = utcnow()
        items = db.inbox(brand=brand, status=status, kind=kind,
                         overdue_at=now if overdue else None)
        for i in items:
            i["late"] = parse_iso(i["due_at"]) <= now and i["status"] == "open"
        return items

    @app.get("/api/inbox/{mention_id}")
    def api_item(db: Db, mention_id: int) -> dict[str, Any]:
        """One inbox item with its reply draft in the mention's language."""
        item = db.inbox_item(mention_id)
        if item is None:
            raise HTTPException(404, f"no inbox item for mention {mention_id}")
        item["draft_language"], item["draft"] = draft(
            item["kind"], item["language"], item["author"], item["brand"],
            config.inbox.all_templates())
        return item

    @app.post("/api/inbox/{mention_id}/mark")
    def api_mark(db: Db, mention_id: int, status: str, by: str | None = None,
                 authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        """Record a reply/thanks (or ignore). Needs `Authorization: Bearer <token>`."""
        _mark(db, mention_id, status, by, _bearer(authorization))
        return api_item(db, mention_id)

    @app.get("/api/mentions")
    def api_mentions(db: Db, q: str | None = None, brand: str | None = None,
                     limit: int = Query(50, ge=1, le=500)) -> list[dict[str, Any]]:
        """Newest mentions, or full-text search results for `q` (any language)."""
        try:
            return db.latest_mentions(brand=brand, search=q, limit=limit)
        except sqlite3.OperationalError as exc:  # an FTS syntax error in q
            raise HTTPException(400, f"bad search: {exc}") from None

    def _retry(db: Store, alert_id: int, token: str | None) -> int:
        if not token_ok(token):
            raise HTTPException(403, "retrying needs the token set in " + TOKEN_ENV)
        if not db.db["alerts"].count_where("id = ?", [alert_id]):
            raise HTTPException(404, f"no alert {alert_id}")
        return db.requeue_deliveries(alert_id)

    def _mark(db: Store, mention_id: int, status: str, by: str | None, token: str | None
              ) -> None:
        if not token_ok(token):
            raise HTTPException(403, "marking needs the token set in " + TOKEN_ENV)
        if status not in STATUSES:
            raise HTTPException(400, f"status must be one of {', '.join(STATUSES)}")
        try:
            db.mark_inbox(mention_id, status, by)
        except KeyError:
            raise HTTPException(404, f"no inbox item for mention {mention_id}") from None

    return app


def _bearer(authorization: str | None) -> str:
    return (authorization or "").removeprefix("Bearer ").strip()


def _alert_json(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["evidence"] = json.loads(row.get("evidence") or "{}")
    out["mention_ids"] = json.loads(row.get("mention_ids") or "[]")
    return out
