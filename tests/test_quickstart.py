"""README's quick start, as a newcomer follows it: every command it shows, run as written on a
fresh copy of the repository (the working tree's tracked files) against local feeds, with the
real offline model. A command that fails or prints nothing useful fails this test."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import rss

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()

REVIEWS = [
    ("Spotify keeps crashing since the update, I want a refund", "en"),
    ("Spotify charged me twice this month and support never answers", "en"),
    ("I love Spotify, the new playlists are brilliant", "en"),
    ("Spotify on taas kaatunut, en pääse kuuntelemaan mitään", "fi"),
    ("Spotify — лучший сервис, слушаю каждый день, спасибо!", "ru"),
    ("Deezer cancelled my subscription without asking, terrible service", "en"),
]


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```sh\n(.+?)\n```", section, re.S)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def fresh_copy(to: Path) -> Path:
    """The repository as a fresh clone has it: tracked (and not-ignored new) files only."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in files:
        if (ROOT / name).is_file():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, to / name)
    return to


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def clone(tmp_path, httpserver):
    repo = fresh_copy(tmp_path / "listener")
    items = [
        {"title": text[:40], "description": text, "guid": f"r{i}", "author": f"user{i}"}
        for i, (text, _) in enumerate(REVIEWS)
    ]
    httpserver.expect_request("/reviews.xml").respond_with_data(
        rss(items, "Reviews"), content_type="application/rss+xml"
    )
    # The example's brands, with the example's sources swapped for local feeds.
    (repo / "sources.yaml").write_text(f"""
database: listener.db
brands:
  - {{name: Spotify, query: 'spotify*', competitors: [Deezer]}}
  - {{name: Deezer, query: 'deezer*'}}
sources:
  - {{name: reviews, type: rss, kind: reviews, url: '{httpserver.url_for("/reviews.xml")}'}}
alerts:
  - {{name: bad-run, rule: negative_streak, count: 2, notify: [console]}}
""")
    return repo


def run(repo: Path, line: str, **values: str) -> subprocess.CompletedProcess[str]:
    for name, value in values.items():
        line = line.replace(name, value)
    args = shlex.split(line)
    assert args[0] == ".venv/bin/listener", line
    env = {**os.environ, "PYTHONPATH": str(repo), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "listener.cli", *args[1:]],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_every_quick_start_command_works_on_a_fresh_copy(clone):
    commands = quick_start_commands()
    assert len(commands) >= 10
    item_id = None
    for line in commands:
        if line.endswith(" serve"):
            continue  # below: it runs until stopped
        if "ID" in line.split():
            if item_id is None:
                listed = json.loads(run(clone, ".venv/bin/listener inbox --json").stdout)
                item_id = str(next(i["mention_id"] for i in listed if i["kind"] == "reply"))
            result = run(clone, line, ID=item_id)
        else:
            result = run(clone, line)
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
        out = result.stdout + result.stderr
        assert out.strip(), f"{line} printed nothing"
        assert "Traceback" not in out, f"{line}\n{out}"
        if "collect --once" in line:
            assert "6 new mentions, 6 scored" in out
        if "mentions --limit" in line:
            assert "crashing" in out and "negative" in out
        if "inbox show" in line:
            assert "Draft" in out
        if "inbox mark" in line:
            assert f"#{item_id}: replied by maria" in out
        if line.endswith(" inbox"):
            assert "reply" in out
    exported = list(csv.DictReader((clone / "mentions.csv").open(encoding="utf-8")))
    assert len(exported) == 6 and {r["label"] for r in exported} >= {"negative", "positive"}


def test_serve_prints_where_the_dashboard_is(clone):
    [line] = [c for c in quick_start_commands() if c.endswith(" serve")]
    port = free_port()
    args = [*shlex.split(line)[1:], "--port", str(port)]
    server = subprocess.Popen(
        [sys.executable, "-m", "listener.cli", *args],
        cwd=clone,
        env={**os.environ, "PYTHONPATH": str(clone)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in first and "read-only" in first
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while True:
            try:
                page = httpx.get(url, timeout=60)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.2)
        assert page.status_code == 200 and "Overview" in page.text
    finally:
        server.terminate()
        server.wait(timeout=30)
