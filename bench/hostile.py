"""What a hostile server costs one collection pass: peak memory and time to give up.

    python bench/hostile.py [--only NAME ...]

A server process on loopback answers each case; each pass runs in a fresh process (so its peak
memory is its own) with one source, and is compared with an ordinary feed of 1,000 entries
served the same way in the same run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CASES = {
    "ordinary": "an ordinary feed, 1,000 entries (the baseline)",
    "gzip-gzip": "gzip, gzip: 6.8 kB that decode to 4 GB",
    "gzip-10g": "gzip: 10 MB (160 members) that decode to 10 GB",
    "oversize": "a 25 MB plain body (cap: 20 MB)",
    "no-length": "an endless body, no Content-Length",
    "dribble": "headers sent one byte every 0.5 s, forever",
}


def ordinary() -> bytes:
    items = "".join(
        f"<item><title>Acme post {i}</title><guid>{i}</guid><description>Order "
        f"{i} never arrived, support does not answer.</description></item>"
        for i in range(1000)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>f'
        f"</title>{items}</channel></rss>"
    ).encode()


def bomb(gigabytes: int, layers: int, fill: bytes, *, one_stream: bool = True) -> bytes:
    """A gzip body that decodes to `gigabytes` GB: one deflate stream (a decoder that inflates
    whatever a network read gives it produces gigabytes at once), or 64 MB members repeated."""
    if one_stream:
        z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        chunk = fill * (1 << 20)
        body = b"".join(z.compress(chunk) for _ in range(gigabytes << 10)) + z.flush()
    else:
        body = gzip.compress(fill * (64 << 20), 9) * (gigabytes * 16)
    for _ in range(layers - 1):
        body = gzip.compress(body, 9)
    return body


def serve(port: int) -> None:
    bodies = {
        "ordinary": (ordinary(), None),
        "gzip-gzip": (bomb(4, 2, b" "), "gzip, gzip"),
        "gzip-10g": (bomb(10, 1, b"\0", one_stream=False), "gzip"),
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            case = self.path.strip("/")
            try:
                if case == "dribble":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    for _ in range(600):
                        self.wfile.write(b"a")
                        self.wfile.flush()
                        time.sleep(0.5)
                    return
                if case in ("oversize", "no-length"):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/rss+xml")
                    if case == "oversize":
                        self.send_header("Content-Length", str(25 << 20))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for _ in range(25 if case == "oversize" else 100_000):
                        self.wfile.write(b"<!-- padding -->" * 65536)
                    return
                body, encoding = bodies[case]
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(body)))
                if encoding:
                    self.send_header("Content-Encoding", encoding)
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up: what we measure

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def one_pass(port: int, case: str) -> None:
    from listener.config import parse_config
    from listener.pipeline import collect_due
    from listener.storage.sqlite import SQLiteStorage

    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(
            f"database: {tmp}/l.db\nbrands: [{{name: Acme}}]\nsources: [{{name: s, type: rss,"
            f" url: 'http://127.0.0.1:{port}/{case}', brand: Acme}}]\n",
            base_dir=Path(tmp),
        )
        store = SQLiteStorage.open(config.database_path())
        store.sync_sources(config.sources)
        start = time.monotonic()
        [outcome] = collect_due(config, store)
        took = time.monotonic() - start
        store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": took,
                "peak_mb": peak,
                "new": outcome.counts.new if outcome.counts else 0,
                "error": outcome.error,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", choices=list(CASES))
    args = parser.parse_args()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        for _ in range(600):  # the server builds the bombs first
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.1)
        rows = []
        for case in args.only or list(CASES):
            out = subprocess.run(
                [sys.executable, __file__, "--pass", str(port), case],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            rows.append((case, json.loads(out.strip().splitlines()[-1])))
    finally:
        server.kill()
    base = dict(rows).get("ordinary")
    print(
        f"{'case':<11} {'what the server does':<47} {'s':>6} {'peak MB':>8} {'x base':>7}  outcome"
    )
    for case, r in rows:
        ratio = f"{r['peak_mb'] / base['peak_mb']:.2f}" if base else "-"
        outcome = (r["error"] or f"{r['new']} stored").split(": ", 1)[-1][:70]
        print(
            f"{case:<11} {CASES[case]:<47} {r['seconds']:>6.1f} {r['peak_mb']:>8.0f} "
            f"{ratio:>7}  {outcome}"
        )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "--pass":
        one_pass(int(sys.argv[2]), sys.argv[3])
    else:
        main()
