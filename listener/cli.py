"""The `listener` command: a thin layer over the library."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from alerts.render import human
from listener import __version__, changes
from listener.config import Config, ConfigError, load_config
from listener.progress import Counter, each, each_batch
from listener.query import QuerySyntaxError
from listener.storage import ExportFilter, Storage, open_store
from listener.storage.types import Dimension, Period
from listener.tables import format_table
from listener.timeutil import parse_iso, utcnow
from sources.youtube import quota_day


class Context:
    def __init__(self, config_path: Path, db: Path | None) -> None:
        self.config_path = config_path
        self.db = db
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        """The config for commands that read and manage: notifier secrets may be unset."""
        if self._config is None:
            self._config = _load_or_exit(self.config_path, need_notifier_env=False)
        return self._config

    @property
    def sending_config(self) -> Config:
        """The config for commands that may send alerts: every notifier's secret is set."""
        try:
            return self.config.require_sending()
        except ConfigError as exc:
            click.echo(str(exc), err=True)
            sys.exit(2)

    def db_path(self) -> str | Path:
        return self.db or self.config.database_url()

    def store(self) -> Storage:
        return open_store(self.db_path())

    def model_key(self, store: Storage) -> tuple[str, str | None]:
        """The model whose scores views and exports show."""
        from sentiment import configured_key

        return store.scored_model(configured_key(self.config.sentiment))


pass_ctx = click.make_pass_decorator(Context)


def _load_or_exit(path: Path, *, need_notifier_env: bool) -> Config:
    """The config, or every problem in it on standard error and exit code 2."""
    try:
        return load_config(path, need_notifier_env=need_notifier_env)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


class BrandName(click.ParamType):
    """A brand from sources.yaml, matched case-insensitively (`zentra` is `Zentra`); an unknown
    one is an error listing the known ones, not an empty table."""

    name = "brand"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        obj = ctx.find_object(Context) if ctx else None
        if obj is None:
            return str(value)
        known = [b.name for b in obj.config.brands]
        for name in known:
            if name.casefold() == str(value).casefold():
                return name
        self.fail(f"no brand named {value!r} (have: {', '.join(known)})", param, ctx)


BRAND = BrandName()

# `listener collect --once` exit codes: 0 every due source fetched and stored (or none due);
# 1 one or more sources failed (the others were stored); 2 bad configuration or usage;
# 3 the sentiment model could not be loaded (mentions were stored and wait unscored).
EXIT_SOURCES_FAILED = 1
EXIT_MODEL_UNAVAILABLE = 3


def _collection_hint(ctx: Context, store: Storage, empty: str | None) -> None:
    """Why a view may be empty or stale, on standard error: nothing collected yet, or sources
    failing. `empty` (e.g. "no mentions") is said first when the view had nothing."""
    configured = {s.name for s in ctx.config.sources if s.enabled}
    known = {r["id"]: r for r in store.sources()}
    rows = [known.get(name) or {"last_run_at": None, "last_error": None} for name in configured]
    rows = [r for r in rows if r.get("enabled", 1)]
    failing = sum(1 for r in rows if r["last_error"])
    hint = None
    if not rows:
        hint = "no enabled sources: add some under `sources:` in sources.yaml"
    elif not any(r["last_run_at"] for r in rows):
        hint = "nothing collected yet: `listener collect --once` fetches every source"
    elif failing:
        hint = f"{failing} of {len(rows)} sources are failing: `listener sources` says why"
    if empty:
        click.echo(empty + (f"; {hint}" if hint else ""), err=True)
    elif hint:
        click.echo(hint, err=True)


def _echo_json_lines(rows: Sequence[dict[str, Any]]) -> None:
    for r in rows:
        click.echo(json.dumps(r, ensure_ascii=False))


def _print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    if not rows:
        click.echo("(none)")
        return
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    click.echo(format_table(columns, cells))


@click.group()
@click.version_option(__version__, prog_name="listener")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default="sources.yaml",
    envvar="LISTENER_CONFIG",
    show_default=True,
    help="The sources.yaml to use.",
)
@click.option(
    "--db",
    type=click.Path(path_type=Path),
    envvar="LISTENER_DB",
    help="SQLite file; overrides `database` in the config.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, db: Path | None, verbose: int) -> None:
    """Watch brand mentions and reviews, score their sentiment, alert on trouble."""
    level = [logging.INFO, logging.DEBUG][min(verbose, 1)] if verbose else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    if verbose < 2:  # library chatter (HTTP requests, model loading) only at -vv
        for noisy in ("httpx", "httpcore", "apscheduler", "transformers", "urllib3", "apprise"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = Context(config_path, db)


@cli.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
def validate(ctx: Context, path: Path | None) -> None:
    """Check sources.yaml (or PATH); print every problem with its line, exit 2 if any."""
    if path is not None:
        ctx.config_path = path
    config = _load_or_exit(ctx.config_path, need_notifier_env=True)
    click.echo(
        f"{ctx.config_path}: ok ({len(config.brands)} brands, {len(config.sources)} sources, "
        f"{len(config.notifiers)} notifiers, {len(config.alerts)} alert rules)"
    )


@cli.command()
@click.option("--once", is_flag=True, help="Run one pass and exit (for cron).")
@pass_ctx
def collect(ctx: Context, once: bool) -> None:
    """Collect due sources, score new mentions, evaluate alerts.

    With --once: one pass, then exit: 0 if every due source was fetched and stored, 1 if any
    failed (the others are stored), 2 on a configuration error, 3 if the sentiment model could
    not be loaded. Without --once: the same as `listener run`.
    """
    if not once:
        ctx_run(ctx)
        return
    from listener.pipeline import run_pass

    store = ctx.store()
    try:
        with Counter("scoring", unit=" mentions") as progress:
            report = run_pass(ctx.sending_config, store, progress=progress)
    finally:
        store.close()
    click.echo(
        f"{len(report.sources)} sources fetched ({report.failed} failed), {report.new} new "
        f"mentions, {report.scored} scored, {len(report.alerts)} alerts, "
        f"{report.delivered} notifications sent"
        + (f", {report.replies.sent} replies posted" if report.replies.sent else "")
        + (
            f", {n} inbox items answered on the platform itself"
            if (n := report.replies.answered_elsewhere)
            else ""
        )
    )
    for error in report.replies.errors:
        click.echo(error, err=True)
    if report.model_error:
        click.echo(
            "mentions wait unscored until the sentiment model loads (see the error above)", err=True
        )
    # For cron: non-zero when something needs a look (codes in README, "Commands").
    if report.failed:
        click.echo(f"{report.failed} sources failed: `listener sources` says why", err=True)
        sys.exit(EXIT_SOURCES_FAILED)
    if report.model_error:
        sys.exit(EXIT_MODEL_UNAVAILABLE)


def ctx_run(ctx: Context, roles: Sequence[str] = ()) -> None:
    from listener.scheduler import Monitor
    from listener.workers import ROLES

    config = ctx.sending_config
    if ctx.db:
        config = config.model_copy(update={"database": str(ctx.db.resolve())})
    Monitor(config, roles=roles or ROLES).run_until_signal()


@cli.command()
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(["collect", "score", "deliver"]),
    help="Only this part of the work (repeat for several; default: all). collect: fetch due "
    "sources; score: run the sentiment model; deliver: inbox, alert rules, notifications.",
)
@pass_ctx
def run(ctx: Context, roles: tuple[str, ...]) -> None:
    """Run the monitor: every source at its interval, until Ctrl-C or SIGTERM.

    On PostgreSQL, start as many as you like, on one machine or several: each piece of work
    is done by one of them (README, "Running on several machines")."""
    ctx_run(ctx, roles)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Output JSON.")
@pass_ctx
def workers(ctx: Context, as_json: bool) -> None:
    """List the workers sharing this database and what each holds now."""
    store = ctx.store()
    try:
        rows = store.workers()
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    _print_table(rows, ["id", "roles", "started_at", "seen_at", "sources", "scoring", "tasks"])


@cli.group("db")
def db_cmd() -> None:
    """Move and check the database."""


@db_cmd.command("copy")
@click.argument("source")
@click.argument("destination")
@click.option("--batch", default=5000, show_default=True, help="Rows per transaction.")
def db_copy(source: str, destination: str, batch: int) -> None:
    """Copy the whole history from SOURCE to DESTINATION (a SQLite file path or a
    postgresql:// URL each), then verify every table by row count and checksum.

    Stop the workers on both first. Interrupted, run it again: it resumes after the last row
    copied. Exit 1 if a table differs afterwards."""
    from listener import dbcopy
    from listener.storage import describe

    src, dst = open_store(source, migrate=False), open_store(destination)
    try:
        with Counter("copying", unit=" rows") as progress:
            stored = dbcopy.copy(src, dst, batch, lambda table, n: progress(n, 0))
        checks = dbcopy.verify(src, dst)
    finally:
        src.close()
        dst.close()
    _print_table(
        [
            {
                "table": c.table,
                "rows": c.source_rows,
                "copied now": stored[c.table],
                "verified": "same" if c.same else f"DIFFERS ({c.copied_rows} rows there)",
            }
            for c in checks
        ],
        ["table", "rows", "copied now", "verified"],
    )
    bad = [c.table for c in checks if not c.same]
    if bad:
        click.echo(
            f"{describe(destination)} differs from {describe(source)} in {', '.join(bad)}: was "
            "it written to during the copy, or did it hold data before?",
            err=True,
        )
        sys.exit(1)
    click.echo(f"copied and verified: {describe(source)} -> {describe(destination)}")


@cli.group("sources", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Output JSON.")
@click.pass_context
def sources_cmd(click_ctx: click.Context, as_json: bool) -> None:
    """List sources with their state: last run, items stored, next due, last error."""
    if click_ctx.invoked_subcommand:
        return
    ctx: Context = click_ctx.obj
    store = ctx.store()
    try:
        store.sync_sources(ctx.config.sources)
        rows = store.sources()
    finally:
        store.close()
    month = utcnow().strftime("%Y-%m")
    day = quota_day(utcnow())  # YouTube counts quota units per Pacific day
    for r in rows:
        r["state"] = (
            "ok"
            if r["enabled"] and not r["last_error"]
            else ("failing" if r["enabled"] else f"off: {r['disabled_reason']}")
        )
        if (
            r["state"] == "ok"
            and r.get("last_warning")
            and (r.get("last_warning_at") or "") >= (r.get("last_success_at") or "")
        ):
            r["state"] = "ok, with a gap"  # the last fetch may have missed posts
            r["last_error"] = r["last_warning"]
        # X bills per post read: show this month's reads (kept in the source's cursor)
        cursor = json.loads(r["cursor"] or "{}")
        r["reads"] = cursor.get("reads", {}).get(month)
        r["units"] = cursor.get("units", {}).get(day)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    _print_table(
        rows,
        [
            "id",
            "type",
            "kind",
            "brand",
            "state",
            "items",
            "reads",
            "units",
            "last_run_at",
            "next_due_at",
            "consecutive_failures",
            "last_error",
        ],
    )


@sources_cmd.command("enable")
@click.argument("name")
@pass_ctx
def sources_enable(ctx: Context, name: str) -> None:
    """Re-enable a source that was switched off (410 Gone, refused credentials), fetching it
    at the next pass."""
    store = ctx.store()
    try:
        store.sync_sources(ctx.config.sources)
        changes.enable_source(store, name, changes.cli_actor())
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    finally:
        store.close()
    click.echo(f"{name}: enabled; it is fetched at the next pass")


@cli.command()
@click.option("--brand", type=BRAND, help="Only this brand's mentions.")
@click.option(
    "--search",
    "query",
    help='Search text as brand queries do: words, "phrases", -excluded, OR, prefix*.',
)
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Output JSON lines.")
@pass_ctx
def mentions(ctx: Context, brand: str | None, query: str | None, limit: int, as_json: bool) -> None:
    """Show recent mentions with their sentiment."""
    store = ctx.store()
    try:
        rows = store.latest_mentions(brand=brand, search=query, limit=limit)
        _collection_hint(ctx, store, None if rows else "no mentions" + (" match" if query else ""))
    except QuerySyntaxError as exc:
        raise click.UsageError(f"--search {query!r}: {exc}") from None
    finally:
        store.close()
    if as_json:
        _echo_json_lines(rows)
        return
    for r in rows:
        snippet = " ".join(f"{r['title'] or ''} {r['text'] or ''}".split())[:100]
        label = (r["label"] or "-") + ("?" if r["needs_review"] else "")
        click.echo(
            f"{r['id']:>6} {label:<9} {r['brands'] or '':<12} "
            f"{(r['published_at'] or r['fetched_at'])[:16]}  {snippet}"
        )


@cli.group("alerts", invoke_without_command=True)
@click.option("--limit", default=20, show_default=True)
@click.pass_context
def alerts_cmd(click_ctx: click.Context, limit: int) -> None:
    """List fired alerts and where they were delivered."""
    if click_ctx.invoked_subcommand:
        return
    ctx: Context = click_ctx.obj
    store = ctx.store()
    try:
        rows = store.alerts(limit)
        _collection_hint(ctx, store, None if rows else "no alerts have fired")
    finally:
        store.close()
    _print_table(rows, ["id", "created_at", "scope", "rule_id", "title", "deliveries"])


@alerts_cmd.command("test")
@pass_ctx
def alerts_test(ctx: Context) -> None:
    """Send a sample alert to every channel and say which worked."""
    from alerts.notifiers import NotifierError
    from listener.pipeline import build_notifiers

    failed = 0
    for name, notifier in build_notifiers(ctx.sending_config).items():
        try:
            notifier.send(
                "listener test: alerts reach this channel",
                "A sample alert from `listener alerts test`. Nothing is wrong.",
            )
            click.echo(f"{name}: sent")
        except NotifierError as exc:
            failed += 1
            click.echo(f"{name}: FAILED: {exc}", err=True)
    if failed:
        sys.exit(1)


@alerts_cmd.command("retry")
@click.argument("alert_id", type=int, required=False)
@pass_ctx
def alerts_retry(ctx: Context, alert_id: int | None) -> None:
    """Send again the deliveries given up on ('failed') or interrupted mid-send ('unknown'):
    of one alert, or all. The next pass sends them."""
    store = ctx.store()
    try:
        if alert_id is not None and not store.has_alert(alert_id):
            raise click.ClickException(f"no alert {alert_id} (`listener alerts` lists them)")
        waiting = store.waiting_deliveries(alert_id)  # retried on their own schedule
        n = changes.requeue(store, alert_id, changes.cli_actor())
    finally:
        store.close()
    click.echo(f"{n} deliver{'y' if n == 1 else 'ies'} queued again")
    for d in waiting:
        when = f"next try {d['next_attempt_at'][:16]} UTC" if d["next_attempt_at"] else "next pass"
        error = f"; last error: {d['last_error']}" if d["last_error"] else ""
        click.echo(
            f"alert {d['alert_id']} to {d['channel']}: pending, already retrying on its own "
            f"({d['attempts']} attempts so far, {when}{error})"
        )
    if not n and not waiting:
        click.echo("nothing to send again: every delivery was sent")


@cli.group(invoke_without_command=True)
@click.option("--brand", type=BRAND, help="Only this brand.")
@click.option(
    "--status",
    type=click.Choice(["open", "replied", "thanked", "ignored"]),
    default="open",
    show_default=True,
)
@click.option("--kind", type=click.Choice(["reply", "thank"]))
@click.option("--overdue", is_flag=True, help="Only open items past their due time.")
@click.option("--json", "as_json", is_flag=True, help="Output JSON.")
@click.pass_context
def inbox(
    click_ctx: click.Context,
    brand: str | None,
    status: str,
    kind: str | None,
    overdue: bool,
    as_json: bool,
) -> None:
    """What needs an answer: negatives to reply to, happy reviewers to thank."""
    if click_ctx.invoked_subcommand:
        return
    ctx: Context = click_ctx.obj
    store = ctx.store()
    try:
        now = utcnow()
        rows = store.inbox(
            brand=brand, status=status, kind=kind, overdue_at=now if overdue else None
        )
        _collection_hint(ctx, store, None if rows else f"no {status} inbox items")
    finally:
        store.close()
    for r in rows:
        due = parse_iso(r["due_at"]) - now
        r["due"] = f"in {human(due)}" if due.total_seconds() > 0 else f"LATE {human(-due)}"
        r["waiting"] = human(now - parse_iso(r["posted_at"]))
        r["snippet"] = " ".join(f"{r['title'] or ''} {r['text'] or ''}".split())[:70]
        if r.get("mixed"):
            r["kind"] = "reply (mixed)"  # stars say happy, words complain
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    _print_table(
        rows, ["mention_id", "kind", "brand", "rating", "waiting", "due", "assignee", "snippet"]
    )


@inbox.command("show")
@click.argument("mention_id", type=int)
@pass_ctx
def inbox_show(ctx: Context, mention_id: int) -> None:
    """One item: the mention, its draft reply in its language, and where to answer."""
    from alerts.inbox import item_draft
    from alerts.replies import path_or_none

    store = ctx.store()
    try:
        item = store.inbox_item(mention_id)
        reply = store.reply(mention_id)
    finally:
        store.close()
    if item is None:
        raise click.ClickException(f"no inbox item for mention {mention_id}")
    path = path_or_none(ctx.config, item["source_id"])
    lang, text = item_draft(ctx.config, item)
    stars = f" {item['rating']:g}★" if item["rating"] is not None else ""
    mixed = " (mixed: the stars are happy, the words complain)" if item.get("mixed") else ""
    click.echo(
        f"#{mention_id} {item['kind']}{mixed} ({item['status']}) {item['brand']}{stars} "
        f"by {item['author'] or 'unknown'} on {item['source_id']}"
    )
    click.echo(
        f"posted {item['posted_at']}, due {item['due_at']}"
        + (f", assigned to {item['assignee']}" if item["assignee"] else "")
    )
    click.echo("")
    for part in (item["title"], item["text"]):
        if part:
            click.echo(part)
    click.echo("")
    if reply is not None:
        click.echo(_reply_line(reply))
        click.echo(f"  {reply['text']}")
    elif path is not None:
        click.echo(f"Draft ({lang}); post it with `listener inbox reply {mention_id} --draft`:")
        click.echo(f"  {text}")
    else:
        click.echo(f"Draft ({lang}), not sent — copy it or edit it:")
        click.echo(f"  {text}")
    if item["url"]:
        click.echo(f"Answer here: {item['url']}" if path is None else f"Post: {item['url']}")


def _reply_line(reply: dict[str, Any]) -> str:
    status = reply["status"]
    if status == "sent":
        where = reply["platform_url"] or reply["platform_id"] or ""
        return f"Reply posted {reply['posted_at']} (approved by {reply['approved_by']}): {where}"
    if status == "approved":
        retry = f", retried at {reply['next_attempt_at']}" if reply["next_attempt_at"] else ""
        return (
            f"Reply approved by {reply['approved_by']}, goes out after {reply['send_after']}"
            f"{retry}" + (f" (last try: {reply['last_error']})" if reply["last_error"] else "")
        )
    if status == "unknown":
        return (
            "Reply interrupted while sending: it may or may not be posted. Check, then approve "
            "it again if it is not there"
        )
    why = f": {reply['last_error']}" if reply["last_error"] else ""
    return f"Reply {status}{why}"


@inbox.command("reply")
@click.argument("mention_id", type=int)
@click.option("--text", help="The reply to post.")
@click.option("--draft", "use_draft", is_flag=True, help="Post the item's draft as it is.")
@click.option("--cancel", is_flag=True, help="Stop an approved reply that has not gone out.")
@pass_ctx
def inbox_reply(
    ctx: Context, mention_id: int, text: str | None, use_draft: bool, cancel: bool
) -> None:
    """Approve a reply to post where the mention was written (Mastodon, Bluesky, Google
    Play, App Store Connect): it goes out once, with the next pass of `listener run` or `collect`.

    Items of other sources are answered where they were posted (`listener inbox show`)."""
    from alerts import replies
    from listener.storage import NotFound, ReplyBusy

    if sum([text is not None, use_draft, cancel]) != 1:
        raise click.UsageError("give one of --text, --draft or --cancel")
    store = ctx.store()
    try:
        if cancel:
            message = replies.cancel(store, mention_id, changes.cli_actor())
        else:
            message = replies.approve(ctx.config, store, mention_id, text, changes.cli_actor())
    except (replies.ReplyRefused, ReplyBusy, NotFound) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    click.echo(message)


@inbox.command("mark")
@click.argument("mention_id", type=int)
@click.argument("status", type=click.Choice(["replied", "thanked", "ignored", "open"]))
@click.option("--by", help="Who answered.")
@pass_ctx
def inbox_mark(ctx: Context, mention_id: int, status: str, by: str | None) -> None:
    """Record that an item was replied to, thanked or ignored (or reopen it).

    A complaint is closed by `replied` or `ignored`, a happy reviewer by `thanked` or
    `ignored`; changing an item already closed says what it had been."""
    from alerts.inbox import MarkRefused

    store = ctx.store()
    try:
        _, message = changes.mark_item(store, mention_id, status, changes.cli_actor(), by)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    except MarkRefused as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    click.echo(message)


@inbox.command("assign")
@click.argument("mention_id", type=int)
@click.argument("name")
@pass_ctx
def inbox_assign(ctx: Context, mention_id: int, name: str) -> None:
    """Give an item to someone."""
    store = ctx.store()
    try:
        message = changes.assign_item(store, mention_id, name, changes.cli_actor())
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    finally:
        store.close()
    click.echo(message)


@inbox.command("stats")
@click.option("--brand", type=BRAND, help="Only this brand.")
@click.option("--days", default=30, show_default=True, help="Items posted in the last N days.")
@pass_ctx
def inbox_stats(ctx: Context, brand: str | None, days: int) -> None:
    """Response metrics: median time to reply, share within target, share thanked."""
    from alerts.inbox import response_metrics

    store = ctx.store()
    try:
        now = utcnow()
        items = store.inbox_all(brand, now - timedelta(days=days))
    finally:
        store.close()
    for key, value in response_metrics(items, now).items():
        click.echo(f"{key:<22} {'-' if value is None else value}")


@cli.command()
@click.option("--actor", help="Only changes by this actor (web:NAME, api, cli:USER).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_ctx
def audit(ctx: Context, actor: str | None, limit: int, as_json: bool) -> None:
    """Who changed what and when (labels, inbox items, retries, sign-ins), newest first."""
    store = ctx.store()
    try:
        rows = store.audit_log(actor=actor, limit=limit)
    finally:
        store.close()
    if as_json:
        _echo_json_lines(rows)
        return
    for r in rows:
        r["details"] = ", ".join(f"{k}: {v}" for k, v in r["detail"].items() if v is not None)
    _print_table(rows, ["at", "actor", "action", "target", "details"])


LABEL_CHOICES = click.Choice(["negative", "neutral", "positive"])


@cli.command()
@click.argument("mention_id", type=int)
@click.argument("label", type=LABEL_CHOICES)
@click.option("--by", help="Who made the correction.")
@click.option("--note", help="Why, for whoever reads the training data.")
@pass_ctx
def label(ctx: Context, mention_id: int, label: str, by: str | None, note: str | None) -> None:
    """Correct a mention's sentiment: overrides the model, kept as training data."""
    store = ctx.store()
    try:
        changes.correct_label(store, mention_id, label, changes.cli_actor(), note, by)
        row = store.mention(mention_id)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    finally:
        store.close()
    assert row is not None
    snippet = " ".join(f"{row['title'] or ''} {row['text'] or ''}".split())[:80]
    click.echo(f"{mention_id} is now {label}: {snippet}")


FORMATS = click.Choice(["csv", "jsonl", "parquet"])


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_iso(value if "T" in value else f"{value}T00:00:00+00:00")
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD) or ISO time") from None


@cli.command()
@click.option("--format", "fmt", type=FORMATS, default="csv", show_default=True)
@click.option("-o", "--output", default="-", help="File to write; default standard output.")
@click.option("--brand", type=BRAND)
@click.option("--source")
@click.option("--language", help="ISO 639-1 code.")
@click.option("--label", type=LABEL_CHOICES)
@click.option("--since", help="YYYY-MM-DD or ISO time (UTC), inclusive.")
@click.option("--until", help="YYYY-MM-DD or ISO time (UTC), exclusive.")
@click.option(
    "--corrections",
    is_flag=True,
    help="Export human corrections with their texts (training data) instead.",
)
@click.option(
    "--bom",
    is_flag=True,
    help="CSV: start with a UTF-8 byte order mark, so Excel reads non-Latin text.",
)
@pass_ctx
def export(
    ctx: Context,
    fmt: str,
    output: str,
    brand: str | None,
    source: str | None,
    language: str | None,
    label: str | None,
    since: str | None,
    until: str | None,
    corrections: bool,
    bom: bool,
) -> None:
    """Export mentions with their scores (or, with --corrections, the human labels)."""
    from listener.export import mention_batches, mention_rows, write_parquet, write_rows

    def counted(rows: Any) -> Any:  # a bar would mix with data on a terminal's standard output
        return rows if output == "-" else each(rows, "exporting", unit=" rows")

    store = ctx.store()
    try:
        where = ExportFilter(brand, source, language, label, _when(since), _when(until))
        if corrections:
            n = write_rows(counted(store.corrections()), fmt, output, bom=bom)
        elif fmt == "parquet" and output != "-":  # columns straight from the storage batches
            batches = mention_batches(store, ctx.model_key(store), where, time_order=False)
            n = write_parquet(each_batch(batches, "exporting", " rows"), Path(output))
        else:
            rows = mention_rows(store, ctx.model_key(store), where)
            n = write_rows(counted(rows), fmt, output, bom=bom)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        store.close()
    if output != "-":
        click.echo(f"wrote {n} rows to {output}", err=True)


@cli.command()
@click.option("--period", type=click.Choice(["week", "month"]), default="week", show_default=True)
@click.option(
    "--date",
    "day",
    help="A day in the period to report (YYYY-MM-DD). Default: the last whole period (the "
    "last Monday-to-Sunday week, or the last calendar month), in UTC.",
)
@click.option("--brand", type=BRAND, help="Only this brand (default: every brand).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="File to write: .html, or .pdf (needs the pdf extra). Default: report-<period>.html here.",
)
@click.option(
    "--link-base",
    metavar="URL",
    help="Your dashboard's address (https://listener.example.com): charts and mentions link "
    "to it. Default: no links.",
)
@pass_ctx
def report(
    ctx: Context,
    period: str,
    day: str | None,
    brand: str | None,
    output: str | None,
    link_base: str | None,
) -> None:
    """The weekly or monthly report: figures against the period before, charts, alerts in
    plain words, answering times and the mentions worth reading, as one HTML file (or PDF)."""
    from listener import report as reports
    from listener.metrics import aspect_matchers
    from listener.urls import http_url

    chosen = _when(day)
    span = (
        reports.containing(period, chosen)  # type: ignore[arg-type]
        if chosen
        else reports.last_closed(period, utcnow())  # type: ignore[arg-type]
    )
    if link_base is not None and http_url(link_base) is None:
        raise click.BadParameter("an http(s) address", param_hint="--link-base")
    brands = [(b.name, b.competitors) for b in ctx.config.brands if brand in (None, b.name)]
    store = ctx.store()
    try:
        data = reports.build(
            store, ctx.model_key(store), brands, aspect_matchers(ctx.config.aspects), span
        )
    finally:
        store.close()
    html = reports.render_html(data, link_base)
    target = Path(output or f"report-{span.name}.html")
    if target.suffix.lower() == ".pdf":
        try:
            target.write_bytes(reports.render_pdf(html))
        except reports.PdfUnavailable as exc:
            raise click.ClickException(str(exc)) from None
    else:
        target.write_text(html, encoding="utf-8")
    click.echo(f"{span.title}: wrote {target}")


TABLE_FORMATS = click.Choice(["table", "csv", "jsonl"])


def _emit(rows: list[dict[str, Any]], fmt: str, columns: Sequence[str] | None = None) -> None:
    from listener.export import write_rows

    if fmt == "table":
        _print_table(rows, columns or (list(rows[0]) if rows else []))
    else:
        write_rows(rows, fmt, "-")


def _period_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.option("--since", help="YYYY-MM-DD or ISO time (UTC), inclusive."),
            click.option("--until", help="YYYY-MM-DD or ISO time (UTC), exclusive."),
            click.option("--format", "fmt", type=TABLE_FORMATS, default="table", show_default=True),
        ]
    ):
        fn = option(fn)
    return fn


@cli.command()
@click.option(
    "--period", type=click.Choice(["day", "week", "month"]), default="day", show_default=True
)
@click.option(
    "--by",
    type=click.Choice(["brand", "source", "language", "kind"]),
    default="brand",
    show_default=True,
)
@click.option(
    "--brand", "brands", type=BRAND, multiple=True, help="Only these brands (repeatable)."
)
@click.option(
    "--include-news",
    is_flag=True,
    help="Count news sources too (left out by default; --by kind shows them apart).",
)
@_period_options
@pass_ctx
def metrics(
    ctx: Context,
    period: Period,
    by: Dimension,
    brands: tuple[str, ...],
    include_news: bool,
    since: str | None,
    until: str | None,
    fmt: str,
) -> None:
    """Volume, sentiment counts, net sentiment, CSAT, average rating and NPS-style score.

    News sources (reported events, not opinions) are left out unless --include-news."""
    from listener.metrics import sentiment_table

    store = ctx.store()
    try:
        rows = sentiment_table(
            store,
            ctx.model_key(store),
            period=period,
            by=by,
            brands=brands or None,
            since=_when(since),
            until=_when(until),
            include_news=True if include_news else None,
        )
    finally:
        store.close()
    _emit(rows, fmt)


@cli.command()
@click.option("--brand", type=BRAND, required=True)
@click.option(
    "--period", type=click.Choice(["day", "week", "month"]), default="month", show_default=True
)
@_period_options
@pass_ctx
def sov(
    ctx: Context, brand: str, period: Period, since: str | None, until: str | None, fmt: str
) -> None:
    """Share of voice of a brand against its competitors (general sources only)."""
    from listener.metrics import share_of_voice

    competitors = ctx.config.brand(brand).competitors
    store = ctx.store()
    try:
        rows = share_of_voice(
            store, brand, competitors, period=period, since=_when(since), until=_when(until)
        )
    finally:
        store.close()
    _emit(rows, fmt)


@cli.command()
@click.option("--brand", type=BRAND, required=True)
@_period_options
@pass_ctx
def drivers(ctx: Context, brand: str, since: str | None, until: str | None, fmt: str) -> None:
    """Key drivers: which aspects come up in negative against positive mentions."""
    from listener.metrics import aspect_matchers, key_drivers

    store = ctx.store()
    try:
        rows = key_drivers(
            store,
            ctx.model_key(store),
            aspect_matchers(ctx.config.aspects),
            brand=brand,
            since=_when(since),
            until=_when(until),
        )
    finally:
        store.close()
    _emit(rows, fmt)


@cli.command()
@click.option("--model", help="Hub id or local directory of a transformers model.")
@click.option("--revision", help="Pinned hub revision (with --model).")
@click.option(
    "--head",
    help="The offline model with this head or fine-tuned model: a "
    "built-in name (listener-3, listener-2, listener-1 ...) or a directory or file.",
)
@click.option("--limit", type=int, help="Score at most this many mentions.")
@click.option(
    "--failed",
    is_flag=True,
    help="Also try again the mentions the model failed on "
    "(given up after repeated failures); alone, with the configured model.",
)
@click.option(
    "--ray",
    "on_ray",
    is_flag=True,
    help="Score on a Ray cluster (pip install 'listener[ray]'): $RAY_ADDRESS, "
    "--ray-address, or a Ray started here for this run.",
)
@click.option("--ray-address", help="The Ray cluster to use (implies --ray).")
@click.option(
    "--actors",
    type=click.IntRange(min=1),
    help="Model copies on Ray (default: one per GPU, else one).",
)
@click.option(
    "--gpus-per-actor",
    type=click.FloatRange(min=0),
    help="GPUs each model copy takes on Ray (default: 1 where the cluster has GPUs).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Mentions per batch handed to a model copy on Ray.",
)
@pass_ctx
def rescore(
    ctx: Context,
    model: str | None,
    revision: str | None,
    head: str | None,
    limit: int | None,
    failed: bool,
    on_ray: bool,
    ray_address: str | None,
    actors: int | None,
    gpus_per_actor: float | None,
    batch_size: int,
) -> None:
    """Score stored mentions with another model, keeping every model's scores.

    One of --model (a transformers model) or --head (the offline model's head or a model
    written by `listener model train`); with --failed alone, the configured model. The model
    asked for is used or the command fails: it never falls back to another. With --ray, a
    large history is scored by model copies on a Ray cluster (one per GPU)."""
    from listener.pipeline import review_threshold, score_chunk_size, score_unscored
    from sentiment import ModelUnavailable, load_classifier

    if (model is not None and head is not None) or (model is None and head is None and not failed):
        raise click.UsageError("give exactly one of --model or --head (or --failed alone)")
    update: dict[str, Any] = (
        {"backend": "transformers", "model": model, "revision": revision}
        if model
        else {"backend": "e5-offline", "head": head}
        if head
        else {}
    )
    settings = ctx.config.sentiment.model_copy(update=update)
    if on_ray or ray_address:
        _rescore_on_ray(
            ctx, settings, failed, limit, ray_address, actors, gpus_per_actor, batch_size
        )
        return
    try:
        classifier = load_classifier(settings)
    except ModelUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    store = ctx.store()
    try:
        if failed:
            n = store.clear_score_failures(classifier.name, classifier.revision)
            click.echo(f"{n} mentions the model had failed on are tried again")
        with Counter(f"scoring with {classifier.name}", unit=" mentions") as progress:
            done = score_unscored(
                store,
                classifier,
                review_threshold(settings, classifier),
                score_chunk_size(classifier),
                limit,
                matchers={b.name: b.matcher for b in ctx.config.brands},
                progress=progress,
            )
    finally:
        store.close()
    click.echo(
        f"scored {done} mentions with {classifier.name} ({classifier.revision}); "
        "views show the configured model's labels (sentiment: in sources.yaml)"
    )


def _rescore_on_ray(
    ctx: Context,
    settings: Any,
    failed: bool,
    limit: int | None,
    address: str | None,
    actors: int | None,
    gpus_per_actor: float | None,
    batch_size: int,
) -> None:
    from listener.rescore_ray import RayMissing, rescore_on_ray
    from sentiment import ModelUnavailable, configured_key

    if failed:
        store = ctx.store()
        try:
            n = store.clear_score_failures(*configured_key(settings))
        finally:
            store.close()
        click.echo(f"{n} mentions the model had failed on are tried again")
    database = ctx.db_path()  # Ray's processes may run elsewhere: a file by its full path
    try:
        done = rescore_on_ray(
            str(database.resolve()) if isinstance(database, Path) else database,
            settings,
            {b.name: b.matcher for b in ctx.config.brands},
            address=address,
            actors=actors,
            gpus_per_actor=gpus_per_actor,
            batch_size=batch_size,
            limit=limit,
        )
    except (RayMissing, ModelUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    name, revision = done.model
    click.echo(
        f"scored {done.scored} mentions with {name} ({revision}) on Ray"
        + (f"; it failed on {done.failed} (retried later)" if done.failed else "")
        + "; views show the configured model's labels (sentiment: in sources.yaml)"
    )


@cli.group()
def model() -> None:
    """Inspect or fetch the sentiment model."""


@model.command("info")
@pass_ctx
def model_info(ctx: Context) -> None:
    """Load the configured model and show its name, revision, labels, device and dtype."""
    from sentiment import ModelUnavailable, load_classifier

    try:
        clf: Any = load_classifier(ctx.config.sentiment)
    except ModelUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    for key, value in clf.describe().items():
        click.echo(f"{key + ':':<12}{value}")


@model.command("download")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", "model_id", help="Hub id; default: sentiment.model from the config.")
@click.option("--revision", help="Default: sentiment.revision from the config.")
@pass_ctx
def model_download(
    ctx: Context, directory: Path, model_id: str | None, revision: str | None
) -> None:
    """Download a model to DIRECTORY, for machines with no network (set sentiment.model)."""
    from sentiment.transformers_classifier import hub_reachable

    settings = ctx.config.sentiment
    model_id = model_id or settings.model
    revision = revision or (settings.revision if model_id == settings.model else None)
    if not hub_reachable():
        raise click.ClickException(
            f"cannot reach the Hugging Face Hub to download {model_id!r}; run this on a "
            "machine with network access and copy the directory over"
        )
    from huggingface_hub import snapshot_download

    path = snapshot_download(model_id, revision=revision, local_dir=directory)
    click.echo(
        f"downloaded {model_id} ({revision or 'main'}) to {path}; set "
        f"`sentiment.model: {path}` in sources.yaml"
    )


@model.command("tune-head")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--public/--no-public",
    default=True,
    show_default=True,
    help="Train on the labelled Arabic and Estonian samples listener ships.",
)
@click.option(
    "--corrections/--no-corrections",
    default=True,
    show_default=True,
    help="Train on your `listener label` corrections.",
)
@click.option(
    "--blend-with",
    default="logistic-2.0",
    show_default=True,
    help="Average with this built-in head ('none': the tuned head alone).",
)
@click.option("--l2", default=0.01, show_default=True, help="Weight penalty.")
@pass_ctx
def model_tune_head(
    ctx: Context, out: Path, public: bool, corrections: bool, blend_with: str, l2: float
) -> None:
    """Train a head for the offline model and write it to OUT (set sentiment.head: OUT).

    Prints accuracy and macro-F1 per data set and language for the current head and the new
    one, both scored on examples they were not trained on (5 folds: the current head's recipe
    is re-run where it saw the data), and on 59 customer posts neither sees."""
    from sentiment import ModelUnavailable, load_classifier
    from sentiment.evaluate import render
    from sentiment.labelled import Example
    from sentiment.labelled import public as public_examples
    from sentiment.preprocess import mention_text
    from sentiment.tuning import tune

    examples = public_examples() if public else []
    if corrections:
        store = ctx.store()
        try:
            # The text the classifier is given when it scores a mention.
            examples += [
                Example(
                    row["language"] or "?",
                    row["label"],
                    mention_text(row["title"] or "", row["text"] or ""),
                    "corrections",
                )
                for row in store.corrections()
            ]
        finally:
            store.close()
    from sentiment.adapters import adapter_dir

    settings = ctx.config.sentiment
    current = settings.head
    if adapter_dir(current):  # a fine-tuned model, not a head over the frozen encoder
        click.echo(
            f"{current} is a fine-tuned model: `listener model train` re-trains it on "
            "your corrections. Comparing heads against listener-1 instead.",
            err=True,
        )
        current = "listener-1"
    try:
        encoder: Any = load_classifier(
            settings.model_copy(update={"backend": "e5-offline", "head": current})
        )
        result = tune(
            examples,
            lambda texts: encoder.embed(texts).numpy(),
            current=current,
            l2=l2,
            blend_with=None if blend_with == "none" else blend_with,
        )
    except ModelUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(render(result.rows))
    out.write_text(json.dumps(result.spec), encoding="utf-8")
    if result.better:
        click.echo(
            f"wrote {out}: better than {settings.head}; use it with "
            f"`sentiment: {{head: {out}}}` in sources.yaml, then `listener rescore`"
        )
    else:
        click.echo(
            f"wrote {out}, but it is not better than {settings.head} (see above): "
            "keep the current head, or add corrections and try again"
        )


@model.command("corpora")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def model_corpora(directory: Path) -> None:
    """Download the public labelled corpora (pinned commits, checked by sha256) into
    DIRECTORY, for `listener model train --corpora` on a machine without GitHub."""
    from sentiment import corpora

    try:
        n = corpora.copy_to(directory, corpora.github_fetch(directory / ".cache"))
    except (corpora.CorpusError, Exception) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {n} files to {directory}")


@model.command("train")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--corpora",
    "corpora_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="A copy written by `listener model corpora`; default: download them.",
)
@click.option(
    "--public/--no-public", default=True, show_default=True, help="Train on the public corpora."
)
@click.option(
    "--corrections/--no-corrections",
    default=True,
    show_default=True,
    help="Train on your `listener label` corrections too.",
)
@click.option("--epochs", default=3, show_default=True)
@click.option("--threads", type=int, help="CPU threads (default: all).")
@click.option("--limit", type=int, help="At most this many training texts (a quick try).")
@pass_ctx
def model_train(
    ctx: Context,
    out: Path,
    corpora_dir: Path | None,
    public: bool,
    corrections: bool,
    epochs: int,
    threads: int | None,
    limit: int | None,
) -> None:
    """Fine-tune the offline model's encoder (LoRA) and write it to OUT: use it with
    `sentiment: {head: OUT}`, then `listener rescore --model OUT`.

    Trains on the public corpora and your corrections, never on a text that occurs in a test
    split; chooses the epoch, calibration and review threshold on dev data; writes a
    manifest of every training text. Needs `pip install 'listener[train]'` (peft)."""
    from sentiment import corpora
    from sentiment.corpora import Item, hash_split
    from sentiment.labelled import held_out
    from sentiment.preprocess import mention_text
    from sentiment.training import DEFAULT_CORPORA, Settings, train_public

    try:
        import peft  # noqa: F401
    except ImportError:
        raise click.ClickException("training needs peft: pip install 'listener[train]'") from None
    items: list[Item] = []
    try:
        if public:
            fetch = (
                corpora.local_fetch(corpora_dir)
                if corpora_dir
                else corpora.github_fetch(Path.home() / ".cache" / "listener" / "corpora")
            )
            items += corpora.load(DEFAULT_CORPORA, fetch)
    except corpora.CorpusError as exc:
        raise click.ClickException(str(exc)) from None
    if corrections:
        store = ctx.store()
        try:
            for row in store.corrections():
                text = mention_text(row["title"] or "", row["text"] or "")
                items.append(
                    Item(
                        "corrections",
                        row["language"] or "?",
                        row["label"],
                        ("negative", "neutral", "positive"),
                        text,
                        "dev" if hash_split(text) == "dev" else "train",
                    )
                )
        finally:
            store.close()
    if not items:
        raise click.ClickException(
            "nothing to train on: use the public corpora or add corrections with `listener label`"
        )
    with Counter("training", unit=" batches") as bar:
        result = train_public(
            out,
            items,
            Settings(epochs=epochs, threads=threads),
            held_out=held_out(),
            limit=limit,
            progress=bar.write,
            on_step=bar,
        )
    click.echo(
        f"wrote {out}: best epoch {result.best_epoch}, dev mean macro-F1 "
        f"{result.dev['mean']:.3f}, temperature {result.temperature:.2f}, review below "
        f"{result.review_below:.2f}, {result.seconds / 60:.0f} min. Use it with "
        f"`sentiment: {{head: {out}}}`; `bench/sentiment_accuracy.py --model {out}` "
        "compares it with the default on the public test splits."
    )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True)
@click.option(
    "--allow-host",
    multiple=True,
    metavar="NAME",
    help="Also answer requests for this host name (the name people or your reverse "
    "proxy use); repeatable. Default: localhost and 127.0.0.1 only.",
)
@pass_ctx
def serve(ctx: Context, host: str, port: int, allow_host: tuple[str, ...]) -> None:
    """The web dashboard and JSON API (read-only unless LISTENER_WEB_TOKEN is set)."""
    import uvicorn

    from listener.web.app import LOCAL_HOSTS, TOKEN_ENV, create_app

    hosts: tuple[str, ...] = (*LOCAL_HOSTS, *allow_host)
    if not allow_host and host not in (*LOCAL_HOSTS, "::1"):
        hosts = ("*",)
        click.echo(
            f"listening on {host}: requests for any host name are answered; "
            "--allow-host NAME restricts them",
            err=True,
        )
    app = create_app(ctx.config, ctx.db_path(), hosts)
    shown = f"[{host}]" if ":" in host else host
    writable = (
        f"changes need the token in {TOKEN_ENV}"
        if os.environ.get(TOKEN_ENV)
        else f"read-only (set {TOKEN_ENV} to mark items and retry alerts)"
    )
    click.echo(f"listener dashboard: http://{shown}:{port}/ ({writable}); Ctrl-C stops it")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        server_header=False,
    )


def main() -> None:
    cli(prog_name="listener")


if __name__ == "__main__":
    main()
