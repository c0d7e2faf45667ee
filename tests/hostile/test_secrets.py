"""Secrets from environment variables: never in a log line (at any verbosity), the database or
what a command prints, even where a URL carries the secret in its path or query."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from werkzeug import Request, Response

from listener import secrets
from listener.storage import open_store
from tests.conftest import rss
from tests.history import stored_text

HOOK_SECRET = "T0AAAAAAA/B0BBBBBBB/Xy7Zq9Wv3Ut1Sr5Pq2On4Ml6"
FEED_TOKEN = "tok-8f3a9c2e7d1b"


def listener(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "listener.cli", "-c", str(project / "sources.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
    )


def test_a_webhook_path_stays_out_of_debug_logs(tmp_path, httpserver):
    httpserver.expect_request(f"/services/{HOOK_SECRET}", method="POST").respond_with_data("ok")
    hook = f"json://127.0.0.1:{httpserver.port}/services/{HOOK_SECRET}"
    (tmp_path / "sources.yaml").write_text(
        "brands: [{name: Acme}]\nnotifiers: [{name: team, url: '${TEAM_HOOK}'}]\n"
    )
    done = listener(tmp_path, "-vv", "alerts", "test", env={"TEAM_HOOK": hook})
    assert done.returncode == 0, done.stderr
    assert len(httpserver.log) == 1  # the message went out
    output = done.stdout + done.stderr
    assert "POST" in output  # urllib3's request line is logged at -vv...
    assert "Xy7Zq9Wv3Ut1Sr5Pq2On4Ml6" not in output  # ...without the webhook's secret path
    assert "B0BBBBBBB" not in output


def test_a_token_in_a_feed_url_is_used_but_never_stored_or_shown(tmp_path, httpserver, database):
    seen_tokens = []

    def feed(request: Request) -> Response:
        seen_tokens.append(request.args.get("token"))
        return Response(rss([{"title": "acme", "guid": "1"}]), content_type="application/rss+xml")

    httpserver.expect_request("/feed.xml").respond_with_handler(feed)
    httpserver.expect_request("/gone.xml").respond_with_data("no", status=404)
    (tmp_path / "sources.yaml").write_text(f"""
database: {database}
brands: [{{name: Acme}}]
sources:
  - {{name: feed, type: rss, brand: Acme, interval: 1s,
      url: '{httpserver.url_for("/feed.xml")}?token=${{FEED_TOKEN}}'}}
  - {{name: gone, type: rss, brand: Acme,
      url: '{httpserver.url_for("/gone.xml")}?token=${{FEED_TOKEN}}'}}
sentiment: {{backend: transformers, model: /nonexistent}}
""")
    env = {"FEED_TOKEN": FEED_TOKEN}
    runs = [listener(tmp_path, "-vv", "collect", "--once", env=env)]
    time.sleep(1.1)  # past the 1 s interval: the second run fetches again
    runs.append(listener(tmp_path, "-vv", "collect", "--once", env=env))
    shown = [
        listener(tmp_path, "sources", env=env),
        listener(tmp_path, "sources", "--json", env=env),
    ]
    assert seen_tokens == [FEED_TOKEN, FEED_TOKEN]  # fetched with the real token, twice
    for done in runs + shown:
        assert FEED_TOKEN not in done.stdout + done.stderr
    sources = json.loads(shown[1].stdout)
    gone = next(s for s in sources if s["id"] == "gone")
    assert "?token=${FEED_TOKEN}" in gone["url"] and "HTTP 404" in gone["last_error"]
    store = open_store(database)
    dump = stored_text(store)
    store.close()
    assert FEED_TOKEN not in dump and "${FEED_TOKEN}" in dump


def test_a_redirect_cannot_pull_a_variable_out_of_the_environment(monkeypatch):
    monkeypatch.setenv("FEED_KEY", "real-secret-1234")
    secrets.register("FEED_KEY", "real-secret-1234")
    # A Location header that spells ${FEED_KEY} literally is stored as a literal.
    stored = secrets.mask_env("https://evil.example/${FEED_KEY}")
    assert secrets.reveal(stored) == "https://evil.example/${FEED_KEY}"
    # Only the registered secret's own place is filled back in.
    own = secrets.mask_env("https://feeds.example/?k=real-secret-1234")
    assert own == "https://feeds.example/?k=${FEED_KEY}"
    assert secrets.reveal(own) == "https://feeds.example/?k=real-secret-1234"
    monkeypatch.setenv("HOME_SECRET", "not-registered-9876")
    assert secrets.reveal("https://x.example/${HOME_SECRET}") == "https://x.example/${HOME_SECRET}"
