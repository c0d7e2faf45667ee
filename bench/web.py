"""The web page and API under concurrent clients on loopback: requests/s, p50/p95/p99 latency
per endpoint (the dashboard's overview, mentions feed, alert page and report among them), and
each page's first view (nothing kept yet), on SQLite and on PostgreSQL side by side, against
the same FastAPI and uvicorn serving constant JSON to the same clients (the limit of the
stack, measured in the same run).

    python bench/web.py [--clients 50] [--seconds 30] [--mentions 1000000] [--backends ...]

The server (uvicorn, one process) and the clients run in separate processes. The request loop
is bounded by time and stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.backends import LABEL, Backends, add_arguments, ratio_line  # noqa: E402

PATHS = [
    "/",
    "/?brand=Acme&days=90",
    "/mentions",
    "/mentions?brand=Acme&label=negative&stars=1-2",
    "/mentions?q=delivery",
    "/alerts/1",
    "/report",
    "/api/overview",
    "/api/metrics?period=week",
    "/api/alerts",
    "/inbox",
    "/api/inbox",
    "/search?q=delivery",
    "/api/mentions?q=acme",
]


def build(db: str, n: int) -> None:
    from datetime import timedelta

    from alerts import engine
    from alerts.inbox import sync_inbox
    from bench import alerts as bench_alerts  # the history and config it serves
    from listener.config import parse_config
    from listener.timeutil import utcnow

    bench_alerts.NOW = utcnow()
    store = bench_alerts.build(db, n, recent=2000, month=min(20_000, n // 2))
    config = parse_config(f"database: {db}\n" + bench_alerts.CONFIG)
    sync_inbox(config, store, ("m", "1"), bench_alerts.NOW)
    with contextlib.redirect_stdout(io.StringIO()):  # the console notifier's lines are noise here
        engine.evaluate(config, store, ("m", "1"), bench_alerts.NOW - timedelta(minutes=1))
    store.close()


def serve(db: str, port: int) -> None:
    import uvicorn

    from bench import alerts as bench_alerts  # the history and config it serves
    from listener.config import parse_config
    from listener.web.app import create_app

    config = parse_config(f"database: {db}\n" + bench_alerts.CONFIG)
    uvicorn.run(create_app(config), host="127.0.0.1", port=port, log_level="warning")


def serve_constant(port: int) -> None:
    """The limit: the same FastAPI and uvicorn answering every path with constant JSON, no
    database, no templates."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    body = {"brand": "Acme", "volume": 1234, "net_sentiment": -0.12, "labels": [1, 2, 3]}

    @app.get("/{path:path}")
    def constant(path: str) -> dict[str, object]:
        return body

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def load(base: str, clients: int, seconds: float) -> dict[str, list[float]]:
    import httpx

    timings: dict[str, list[float]] = {p: [] for p in PATHS}
    errors = []
    deadline = time.monotonic() + seconds

    def client(k: int) -> None:
        rng = random.Random(k)
        with httpx.Client(base_url=base, timeout=30) as http:
            while time.monotonic() < deadline:
                path = rng.choice(PATHS)
                t = time.perf_counter()
                r = http.get(path)
                elapsed = time.perf_counter() - t
                if r.status_code != 200:
                    errors.append((path, r.status_code))
                timings[path].append(elapsed)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print(f"{len(errors)} errors, e.g. {errors[:3]}")
    return timings


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--mentions", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=18766)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    add_arguments(parser)
    args = parser.parse_args()
    if args.serve == "constant":
        serve_constant(args.port)
        return
    if args.serve:
        serve(args.serve, args.port)
        return
    constant = [t for ts in run_clients("constant", args).values() for t in ts]
    limit = len(constant) / args.seconds
    print(
        f"constant JSON, same FastAPI and uvicorn: {limit:.0f} req/s, "
        f"p50 {pct(constant, 50):.0f} ms, p99 {pct(constant, 99):.0f} ms"
    )
    summary: dict[str, dict[str, float]] = {
        "req/s": {},
        "p50 ms": {},
        "p95 ms": {},
        "p99 ms": {},
    }
    with Backends(args.backends, args.postgres) as backends:
        for name in backends.names:
            with backends.database(name, "web") as database:
                build(database, args.mentions)
                timings = run_clients(database, args)
            total = [t for ts in timings.values() for t in ts]
            summary["req/s"][name] = len(total) / args.seconds
            summary["p50 ms"][name] = pct(total, 50)
            summary["p95 ms"][name] = pct(total, 95)
            summary["p99 ms"][name] = pct(total, 99)
            print(
                f"{LABEL[name]}: {args.clients} clients, {args.seconds:.0f} s, "
                f"{args.mentions:,} mentions: {len(total):,} requests, "
                f"{len(total) / args.seconds:.0f} req/s "
                f"({len(total) / args.seconds / limit:.0%} of constant JSON), "
                f"p50 {pct(total, 50):.0f} ms, p95 {pct(total, 95):.0f} ms, "
                f"p99 {pct(total, 99):.0f} ms"
            )
            for path, ts in timings.items():
                print(
                    f"  {path:<46} n={len(ts):<5} p50 {pct(ts, 50):6.0f} ms  "
                    f"p95 {pct(ts, 95):6.0f} ms  p99 {pct(ts, 99):6.0f} ms"
                )
    for what, values in summary.items():
        print(ratio_line(what, values, "", higher_is_better=what == "req/s"))
    print(json.dumps({k: {n: round(v) for n, v in vs.items()} for k, vs in summary.items()}))


def run_clients(database: str, args: argparse.Namespace) -> dict[str, list[float]]:
    """Start the server on `database` ("constant": the limit) in its own process, load it,
    stop it."""
    import httpx

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", database, "--port", str(args.port)]
    )
    try:
        base = f"http://127.0.0.1:{args.port}"
        for _ in range(100):
            try:
                httpx.get(base + "/openapi.json", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        if database != "constant":  # the first view of each page: computed, nothing kept yet
            cold = {}
            for path in PATHS:
                t = time.perf_counter()
                httpx.get(base + path, timeout=60)
                cold[path] = (time.perf_counter() - t) * 1000
            print(
                "  first view, one client: "
                + ", ".join(f"{p} {ms:.0f} ms" for p, ms in cold.items())
            )
        return load(base, args.clients, args.seconds)
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
