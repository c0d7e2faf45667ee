"""A fleet of real `listener run` workers on one database, fetching from a farm of local feeds:
shared by tests/test_fleet.py and bench/workers.py.

Each of the farm's sources serves a fixed Atom feed of `entries` reviews (the same at every
fetch, so a fetch done twice shows up as a second hit, never as new data); the first review of
each feed has one star, so every source yields exactly one low-rating alert, sent to the farm's
webhook."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from listener.storage import open_store

ROOT = Path(__file__).resolve().parent.parent


def feed(source: int, entries: int) -> bytes:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # recent: alert rules look back
    reviews = "".join(
        f"<entry><id>urn:s{source}:r{j}</id><title>Acme review {j}</title>"
        f"<updated>{now}</updated>"
        f"<im:rating>{1 if j == 0 else 4}</im:rating>"
        f"<content type='text'>Acme app review {j} from source {source}</content></entry>"
        for j in range(entries)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
        f'xmlns:im="http://itunes.apple.com/rss"><title>source {source}</title>{reviews}</feed>'
    ).encode()


@dataclass
class Farm:
    sources: int
    entries: int
    delay: float = 0.0  # seconds each feed takes to answer, as a remote server would
    hits: Counter[int] = field(default_factory=Counter)
    posts: list[dict[str, Any]] = field(default_factory=list)
    first_hit: float | None = None

    def __post_init__(self) -> None:
        self._bodies = [feed(i, self.entries) for i in range(self.sources)]
        self._lock = threading.Lock()
        farm = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                i = int(self.path.rsplit("/", 1)[-1])
                with farm._lock:
                    farm.hits[i] += 1
                    farm.first_hit = farm.first_hit or time.monotonic()
                time.sleep(farm.delay)
                self._answer(farm._bodies[i], "application/atom+xml")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with farm._lock:
                    farm.posts.append(json.loads(body))
                self._answer(b"ok", "text/plain")

            def _answer(self, body: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a worker killed mid-fetch hangs up: expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def config(self, directory: Path, database: str, lease: str = "5s", fetches: int = 8) -> Path:
        host_port = self.url.removeprefix("http://")
        sources = "\n".join(
            f"  - {{name: s{i:04d}, type: rss, kind: reviews, url: '{self.url}/feed/{i}', "
            "brand: Acme, interval: 1h}"
            for i in range(self.sources)
        )
        path = directory / "sources.yaml"
        path.write_text(
            f"database: '{database}'\n"
            "brands: [{name: Acme}]\n"
            f"sources:\n{sources}\n"
            f"notifiers: [{{name: hook, url: 'json://{host_port}/hook'}}]\n"
            "alerts: [{rule: low_rating, notify: [hook]}]\n"
            "language: {detect: [en]}\n"
            f"workers: {{lease: {lease}, fetches: {fetches}}}\n"
        )
        return path


def start_worker(
    config: Path, roles: Sequence[str] = ("collect", "deliver")
) -> subprocess.Popen[bytes]:
    args = [a for r in roles for a in ("--role", r)]
    return subprocess.Popen(
        [sys.executable, "-m", "listener.cli", "-c", str(config), "run", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.wait(60)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


def _query(database: str, sql: str) -> list[dict[str, Any]]:
    store: Any = open_store(database, migrate=False)  # both backends' `db` runs plain SQL
    try:
        return list(store.db.query(sql))
    finally:
        store.close()


def mentions(database: str) -> int:
    return int(_query(database, "SELECT count(*) AS n FROM mentions")[0]["n"])


def settled(database: str) -> int:
    """Deliveries sent, or left 'unknown' by a send a kill cut."""
    rows = _query(
        database, "SELECT count(*) AS n FROM deliveries WHERE status IN ('sent', 'unknown')"
    )
    return int(rows[0]["n"])


def holding(database: str, pid: int) -> int:
    """How many sources the worker process `pid` holds now."""
    rows = _query(
        database,
        "SELECT pid, sources FROM workers w JOIN (SELECT lease_owner, "
        "count(*) AS sources FROM sources GROUP BY lease_owner) s ON s.lease_owner = w.id",
    )
    return sum(int(r["sources"]) for r in rows if r["pid"] == pid)


def wait_for(done: Callable[[], bool], timeout: float, poll: float = 0.2) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if done():
            return True
        time.sleep(poll)
    return done()


@dataclass
class Verdict:
    mentions: int
    distinct: int
    alerts: int
    deliveries: dict[str, int]
    posts: int
    repeated_posts: int
    sources_fetched_twice: int
    runs_per_source: int  # most fetch runs stored for one source


def verify(database: str, farm: Farm) -> Verdict:
    """What a fleet left behind, for the caller to hold against what it must be."""
    [m] = _query(
        database,
        "SELECT count(*) AS n, count(DISTINCT source_id || ' ' || external_id) AS d FROM mentions",
    )
    alerts = _query(database, "SELECT count(*) AS n FROM alerts")[0]["n"]
    states = _query(database, "SELECT status, count(*) AS n FROM deliveries GROUP BY status")
    runs = _query(
        database,
        "SELECT coalesce(max(n), 0) AS n FROM (SELECT count(*) AS n FROM fetch_runs "
        "GROUP BY source_id) r",
    )[0]["n"]
    seen = Counter(json.dumps(p, sort_keys=True) for p in farm.posts)
    return Verdict(
        mentions=int(m["n"]),
        distinct=int(m["d"]),
        alerts=int(alerts),
        deliveries={r["status"]: int(r["n"]) for r in states},
        posts=len(farm.posts),
        repeated_posts=sum(n - 1 for n in seen.values()),
        sources_fetched_twice=sum(1 for n in farm.hits.values() if n > 1),
        runs_per_source=int(runs),
    )
