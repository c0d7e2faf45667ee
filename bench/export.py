"""Parquet export of a large history: `listener export --format parquet` over 1,000,000 stored
mentions (every one scored, times in no relation to the order they were stored, as
bench/alerts.py builds them: the worst case for reading in time order), in fresh processes,
against the export's own query read to the end, oldest first and in stored order, and against
reading the mentions table alone, on SQLite and PostgreSQL side by side.

    python bench/export.py [--size 1000000] [--rounds 3] [--before DIR] [--backends sqlite]

--before DIR runs the same command from another checkout (`git worktree add DIR <commit>`) in
alternating rounds with this one, so a change is measured against what it replaced on the same
database, machine and minute.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.alerts import build
from bench.backends import LABEL, Backends, add_arguments
from listener.storage import ExportFilter, open_store

ROOT = Path(__file__).resolve().parent.parent
CONFIG = "database: {database}\nbrands: [{{name: Acme}}]\nsentiment: {{model: m, revision: '1'}}\n"


# The command in the child, reporting its own peak: VmHWM belongs to the process image, where
# getrusage's and wait4's maxrss also count the parent's memory at the fork before exec.
CHILD = (
    "import atexit, os, sys\n"
    "def peak():\n"
    "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
    "    open(os.environ['PEAK_FILE'], 'w').write(hwm.split()[1])\n"
    "atexit.register(peak)\n"
    "sys.argv[0] = 'listener'\n"
    "from listener.cli import cli\n"
    "cli()\n"
)


def export_once(checkout: Path, config: Path, out: Path) -> tuple[float, float]:
    """Seconds and peak MB of one `listener export --format parquet` from `checkout`."""
    peak_file = out.with_suffix(".peak")
    env = {**os.environ, "PYTHONPATH": str(checkout), "PEAK_FILE": str(peak_file)}
    command = ["-c", str(config), "export", "--format", "parquet", "-o", str(out)]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *command],
        cwd=checkout,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"export from {checkout} failed: {done.stderr.decode()[-2000:]}")
    return seconds, int(peak_file.read_text()) / 1024


def query_alone(database: str, time_order: bool) -> float:
    """The export's query (every column) read to its last row, nothing written: oldest first
    (CSV, JSON Lines, and Parquet before) or in stored order (Parquet now)."""
    store = open_store(database)
    try:
        started = time.perf_counter()
        batches = store.export_batches(("m", "1"), ExportFilter(), 5000, time_order=time_order)
        n = sum(len(b) for b in batches)
        seconds = time.perf_counter() - started
    finally:
        store.close()
    assert n > 0
    return seconds


def row_order(database: str) -> float:
    """Every mention's columns in the order rows are stored: reading without the time sort."""
    store = open_store(database)
    try:
        started = time.perf_counter()
        cursor = store.db.execute("SELECT * FROM mentions")
        while cursor.fetchmany(5000):
            pass
        seconds = time.perf_counter() - started
    finally:
        store.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with")
    add_arguments(parser)
    args = parser.parse_args()
    checkouts = {"this checkout": ROOT}
    if args.before:
        checkouts = {"before": args.before.resolve(), **checkouts}
    with Backends(args.backends, args.postgres) as backends, tempfile.TemporaryDirectory() as tmp:
        for name in backends.names:
            with backends.database(name, "export") as database:
                started = time.perf_counter()
                build(database, args.size).close()
                print(f"{LABEL[name]}: {args.size:,} mentions built in ", end="")
                print(f"{time.perf_counter() - started:.0f} s")
                config = Path(tmp) / "sources.yaml"
                config.write_text(CONFIG.format(database=database))
                times: dict[str, list[float]] = {
                    k: [] for k in [*checkouts, "time order", "stored order", "rows"]
                }
                peaks: dict[str, list[float]] = {k: [] for k in checkouts}
                for _ in range(args.rounds):
                    for label, checkout in checkouts.items():
                        seconds, mb = export_once(checkout, config, Path(tmp) / "out.parquet")
                        times[label].append(seconds)
                        peaks[label].append(mb)
                    times["time order"].append(query_alone(database, time_order=True))
                    times["stored order"].append(query_alone(database, time_order=False))
                    times["rows"].append(row_order(database))
                report(name, args.size, times, peaks)


def report(
    name: str, size: int, times: dict[str, list[float]], peaks: dict[str, list[float]]
) -> None:
    median = {k: statistics.median(v) for k, v in times.items()}
    now = median["this checkout"]
    for label in peaks:
        print(
            f"  listener export --format parquet ({label}): {median[label]:.1f} s "
            f"({size / median[label]:,.0f} rows/s), peak {max(peaks[label]):,.0f} MB"
        )
    if "before" in median:
        print(f"  speed-up against before: {median['before'] / now:.2f}x")
    for order in ("time order", "stored order"):
        print(f"  the export's query alone, {order}: {median[order]:.1f} s")
    print(f"  SELECT * FROM mentions, read to the end: {median['rows']:.1f} s")
    print(f"  export / its query alone in stored order: {now / median['stored order']:.2f}x")


if __name__ == "__main__":
    main()
