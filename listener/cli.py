"""The `listener` command: a thin layer over the library."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from listener import __version__
from listener.config import Config, ConfigError, load_config
from listener.storage import Store


class Context:
    def __init__(self, config_path: Path, db: Path | None) -> None:
        self.config_path = config_path
        self.db = db
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = load_config(self.config_path)
            except ConfigError as exc:
                click.echo(str(exc), err=True)
                sys.exit(2)
        return self._config

    def db_path(self) -> Path:
        return self.db or self.config.database_path()

    def store(self) -> Store:
        return Store.open(self.db_path())


pass_ctx = click.make_pass_decorator(Context)


def _print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    if not rows:
        click.echo("(none)")
        return
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


@click.group()
@click.version_option(__version__, prog_name="listener")
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path),
              default="sources.yaml", envvar="LISTENER_CONFIG", show_default=True,
              help="The sources.yaml to use.")
@click.option("--db", type=click.Path(path_type=Path), envvar="LISTENER_DB",
              help="SQLite file; overrides `database` in the config.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, db: Path | None, verbose: int) -> None:
    """Watch brand mentions and reviews, score their sentiment, alert on trouble."""
    level = [logging.INFO, logging.DEBUG][min(verbose, 1)] if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    if verbose < 2:  # library chatter (HTTP requests, model loading) only at -vv
        for noisy in ("httpx", "httpcore", "apscheduler", "transformers", "urllib3", "apprise"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = Context(config_path, db)


@cli.command()
@pass_ctx
def validate(ctx: Context) -> None:
    """Check sources.yaml; print every problem with its line, exit non-zero if any."""
    config = ctx.config
    click.echo(
        f"{ctx.config_path}: ok ({len(config.brands)} brands, {len(config.sources)} sources, "
        f"{len(config.notifiers)} notifiers, {len(config.alerts)} alert rules)"
    )


@cli.command()
@click.option("--once", is_flag=True, help="Run one pass and exit (for cron).")
@pass_ctx
def collect(ctx: Context, once: bool) -> None:
    """Collect due sources, score new mentions, evaluate alerts.

    With --once: one pass, then exit. Without: the same as `listener run`.
    """
    if not once:
        ctx_run(ctx)
        return
    from listener.pipeline import run_pass

    store = ctx.store()
    try:
        report = run_pass(ctx.config, store)
    finally:
        store.close()
    failed = [o for o in report.sources if o.error]
    click.echo(
        f"{len(report.sources)} sources fetched ({len(failed)} failed), {report.new} new "
        f"mentions, {report.scored} scored, {len(report.alerts)} alerts, "
        f"{report.delivered} notifications sent"
    )
    if report.model_error:
        click.echo("mentions wait unscored until the sentiment model loads (see the error above)",
                   err=True)


def ctx_run(ctx: Context) -> None:
    from listener.scheduler import Monitor

    config = ctx.config
    if ctx.db:
        config = config.model_copy(update={"database": str(ctx.db.resolve())})
    Monitor(config).run_until_signal()


@cli.command()
@pass_ctx
def run(ctx: Context) -> None:
    """Run the monitor: every source at its interval, until Ctrl-C or SIGTERM."""
    ctx_run(ctx)


@cli.command("sources")
@click.option("--json", "as_json", is_flag=True, help="Output JSON.")
@pass_ctx
def sources_cmd(ctx: Context, as_json: bool) -> None:
    """List sources with their state: last run, items stored, next due, last error."""
    store = ctx.store()
    try:
        store.sync_sources(ctx.config.sources)
        rows = store.sources()
    finally:
        store.close()
    for r in rows:
        r["state"] = "ok" if r["enabled"] and not r["last_error"] else (
            "failing" if r["enabled"] else f"off: {r['disabled_reason']}")
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    _print_table(rows, ["id", "type", "brand", "state", "items", "last_run_at", "next_due_at",
                        "consecutive_failures", "last_error"])


@cli.command()
@click.option("--brand", help="Only this brand's mentions.")
@click.option("--search", "query", help="Full-text search (FTS5 syntax, any language).")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Output JSON lines.")
@pass_ctx
def mentions(ctx: Context, brand: str | None, query: str | None, limit: int,
             as_json: bool) -> None:
    """Show recent mentions with their sentiment."""
    store = ctx.store()
    try:
        rows = store.latest_mentions(brand=brand, search=query, limit=limit)
    finally:
        store.close()
    if as_json:
        for r in rows:
            click.echo(json.dumps(r, ensure_ascii=False))
        return
    for r in rows:
        snippet = " ".join(f"{r['title'] or ''} {r['text'] or ''}".split())[:100]
        click.echo(f"{r['id']:>6} {r['label'] or '-':<8} {r['brands'] or '':<12} "
                   f"{(r['published_at'] or r['fetched_at'])[:16]}  {snippet}")


@cli.command("alerts")
@click.option("--limit", default=20, show_default=True)
@pass_ctx
def alerts_cmd(ctx: Context, limit: int) -> None:
    """List fired alerts and where they were delivered."""
    store = ctx.store()
    try:
        rows = store.alerts(limit)
    finally:
        store.close()
    _print_table(rows, ["id", "created_at", "brand", "rule", "title", "deliveries"])


def main() -> None:
    cli(prog_name="listener")


if __name__ == "__main__":
    main()
