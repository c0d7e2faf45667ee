"""One collection pass over many sources on a local HTTP server: wall time and peak memory,
at a base size and at 10x the mentions (cost should grow linearly, not worse).

    python bench/load.py [--sources 1000] [--entries 10 100]

Each size runs in a fresh process (so peak memory is its own) against a feed server in another
process on loopback. Every source is due; entries carry no language hint, so detection runs too.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEXT = "Ordered on Monday, still no delivery and support does not answer. Acme please help."


def feed(source: int, n: int) -> bytes:
    items = "".join(
        f"<item><title>Acme post {source}-{i}</title><guid>{source}-{i}</guid>"
        f"<pubDate>Fri, 20 Nov 2026 10:{i % 60:02d}:00 GMT</pubDate>"
        f"<description>{TEXT} #{i}</description></item>"
        for i in range(n)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>feed {source}</title>{items}</channel></rss>"
    ).encode()


def serve(port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            _, _, source, n = self.path.split("/")
            body = feed(int(source), int(n))
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def collect(port: int, sources: int, entries: int) -> None:
    from listener.config import parse_config
    from listener.pipeline import collect_due
    from listener.storage.sqlite import SQLiteStorage

    with tempfile.TemporaryDirectory() as tmp:
        srcs = ", ".join(
            f"{{name: s{i}, type: rss, url: 'http://127.0.0.1:{port}/f/{i}/"
            f"{entries}', brand: Acme}}"
            for i in range(sources)
        )
        config = parse_config(
            f"database: {tmp}/x.db\nbrands: [{{name: Acme}}]\nsources: [{srcs}]\n"
        )
        store = SQLiteStorage.open(config.database_path())
        store.sync_sources(config.sources)
        start = time.perf_counter()
        outcomes = collect_due(config, store)
        seconds = time.perf_counter() - start
        stored = store.db["mentions"].count
        store.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "mentions": stored,
                "failed": sum(1 for o in outcomes if o.error),
                "peak_mb": peak_mb,
                "feedparser_seconds": feedparser_alone(sources, entries),
            }
        )
    )


def feedparser_alone(sources: int, entries: int) -> float:
    """Seconds `feedparser.parse` alone takes over the same bodies, in the same process: the
    limit a pass is compared with."""
    import feedparser

    bodies = [feed(i, entries) for i in range(sources)]
    start = time.perf_counter()
    for body in bodies:
        feedparser.parse(body, response_headers={"content-type": "application/rss+xml"})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument(
        "--entries", type=int, nargs="+", default=[10, 100], help="entries per feed, one run each"
    )
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--collect", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.port)
        return
    if args.collect is not None:
        collect(args.port, args.sources, args.collect)
        return
    server = subprocess.Popen([sys.executable, __file__, "--serve", "--port", str(args.port)])
    time.sleep(1.0)
    try:
        results = []
        for n in args.entries:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--collect",
                    str(n),
                    "--sources",
                    str(args.sources),
                    "--port",
                    str(args.port),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(r)
            rate, limit = r["mentions"] / r["seconds"], r["mentions"] / r["feedparser_seconds"]
            print(
                f"{args.sources} sources x {n} entries: {r['mentions']:,} mentions stored in "
                f"{r['seconds']:.1f} s ({rate:,.0f}/s), "
                f"{r['failed']} failed, peak RSS {r['peak_mb']:.0f} MB; feedparser.parse alone "
                f"on the same bodies {limit:,.0f} entries/s: the pass at {rate / limit:.0%} of it"
            )
        if len(results) > 1:
            a, b = results[0], results[-1]
            print(
                f"{b['mentions'] / a['mentions']:.0f}x the mentions took "
                f"{b['seconds'] / a['seconds']:.1f}x the time and "
                f"{b['peak_mb'] / a['peak_mb']:.2f}x the peak memory"
            )
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
