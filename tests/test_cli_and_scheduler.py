"""The commands a user runs, end to end, against a local feed server and a tiny local model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from werkzeug import Request, Response

from listener.cli import cli
from listener.storage import open_store
from listener.timeutil import parse_iso, utcnow
from tests.conftest import rss
from tests.tiny_model import build_tiny_model


@pytest.fixture
def project(tmp_path, httpserver, database):
    """A sources.yaml with two feeds (one broken) and a local model forcing 'negative'."""
    model = build_tiny_model(tmp_path / "model", force="negative")
    httpserver.expect_request("/feed.xml").respond_with_data(
        rss([{"title": f"acme bad {i}", "guid": str(i)} for i in range(3)]),
        content_type="application/rss+xml",
    )
    httpserver.expect_request("/broken.xml").respond_with_data("nope", status=500)
    (tmp_path / "sources.yaml").write_text(f"""
database: {database}
brands: [{{name: Acme}}]
sources:
  - {{name: feed, type: rss, kind: social, url: '{httpserver.url_for("/feed.xml")}', brand: Acme,
      interval: 1h}}
  - {{name: broken, type: rss, kind: social, url: '{httpserver.url_for("/broken.xml")}',
      brand: Acme}}
alerts: [{{rule: negative_streak, count: 3}}]
sentiment: {{model: '{model}'}}
""")
    return tmp_path


def invoke(project: Path, *args: str):
    return CliRunner().invoke(cli, ["-c", str(project / "sources.yaml"), *args])


def test_collect_once_runs_a_whole_pass(project):
    result = invoke(project, "collect", "--once")
    assert result.exit_code == 1, result.output  # cron notices: one source failed
    assert (
        "2 sources fetched (1 failed), 3 new mentions, 3 scored, 1 alerts, 1 notifications sent"
    ) in result.output
    assert "1 sources failed: `listener sources` says why" in result.output
    assert "Acme: 3 negative mentions in a row" in result.output  # the console channel
    again = invoke(project, "collect", "--once")
    assert "0 sources fetched" in again.output  # nothing due yet: intervals are respected
    assert again.exit_code == 0


def test_sources_mentions_and_alerts_commands(project):
    invoke(project, "collect", "--once")
    out = invoke(project, "sources").output
    assert "feed" in out and "failing" in out and "HTTP 500" in out
    rows = json.loads(invoke(project, "sources", "--json").stdout)
    assert {r["id"]: r["items"] for r in rows} == {"broken": 0, "feed": 3}
    mentions = [
        json.loads(line)
        for line in invoke(project, "mentions", "--json", "--search", "BAD").stdout.splitlines()
    ]
    assert len(mentions) == 3 and {m["label"] for m in mentions} == {"negative"}
    assert "negative mentions in a row" in invoke(project, "alerts").output


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def _count(database: str, sql: str) -> int:
    """Polls the database `listener run` is writing: never migrates it (that would race the
    process creating it), and an unmigrated or locked database counts as nothing yet."""
    if "://" not in database and not Path(database).exists():
        return 0
    store = open_store(database, migrate=False)
    try:
        return store.db.execute(sql).fetchone()[0]
    except Exception:  # no tables yet, or locked: nothing to count
        return 0
    finally:
        store.close()


def test_run_schedules_sources_and_stops_cleanly_on_sigterm(project, httpserver, database):
    slow_started = []

    def slow(request: Request) -> Response:
        slow_started.append(time.monotonic())
        time.sleep(1.5)  # still fetching when SIGTERM arrives
        return Response(
            rss([{"title": "acme late", "guid": "late"}]), content_type="application/rss+xml"
        )

    httpserver.expect_request("/slow.xml").respond_with_handler(slow)
    config = (
        (project / "sources.yaml")
        .read_text()
        .replace(
            "alerts:",
            f"  - {{name: slow, type: rss, kind: social, "
            f"url: '{httpserver.url_for('/slow.xml')}', brand: Acme}}\nalerts:",
        )
    )
    (project / "sources.yaml").write_text(config)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "listener.cli", "-c", str(project / "sources.yaml"), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    db = database
    try:
        _wait_for(lambda: _count(db, "SELECT count(*) FROM scores") >= 3 and slow_started)
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode()
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    assert "stopping" in output
    # the fetch in flight at SIGTERM finished and was stored, not lost
    assert _count(db, "SELECT count(*) FROM mentions WHERE title = 'acme late'") == 1, output
    assert _count(db, "SELECT count(*) FROM alerts") == 1
    # next due times survive the restart: the hourly feed is not due again
    store = open_store(database)
    next_due = parse_iso(store.db["sources"].get("feed")["next_due_at"])
    store.close()
    assert next_due > utcnow() + timedelta(minutes=50)


def test_sources_enable(project, database):
    invoke(project, "collect", "--once")
    store = open_store(database)
    store.db["sources"].update("broken", {"enabled": 0, "disabled_reason": "HTTP 410 Gone"})
    store.close()
    assert "off: HTTP 410 Gone" in invoke(project, "sources").output
    assert "broken: enabled" in invoke(project, "sources", "enable", "broken").output
    assert "off:" not in invoke(project, "sources").output
    result = invoke(project, "sources", "enable", "ghost")
    assert result.exit_code == 1 and "no source 'ghost'" in result.output
