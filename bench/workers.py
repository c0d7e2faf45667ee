"""Workers benchmark: real `listener run` processes sharing one PostgreSQL database.

    python bench/workers.py [--sources 400] [--entries 50] [--delay 0.05] [--counts 1,2,4]
                            [--database postgresql://...]   # default: a server started here

For 1, 2 and 4 workers (roles collect + deliver) on the same fetch workload (a local farm of
Atom feeds, each answering after --delay seconds as a remote server would, each with one
1-star review that fires one alert), prints mentions stored per second from the first fetch
to the last mention stored, with the ratio to one worker measured in the same run; then the
same workload with one of 4 workers killed with SIGKILL while it holds fetches. For each run it
checks: every mention stored once, every source fetched and stored once per due time, every
alert sent at most once (a send cut by the kill is 'unknown', never repeated). One worker on a
SQLite file runs the same workload for comparison.

The database server runs on this machine with fsync on; the figures include the feeds' parsing,
language detection and matching, not only the database.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from listener.storage import open_store
from tests import fleet
from tests.postgres import fresh_database, server


def run(
    database: str, workers: int, args: argparse.Namespace, kill: bool = False
) -> tuple[float, fleet.Verdict, float]:
    farm = fleet.Farm(args.sources, args.entries, args.delay)
    total = args.sources * args.entries
    with tempfile.TemporaryDirectory() as tmp:
        config = farm.config(Path(tmp), database, lease="10s", fetches=args.fetches)
        open_store(database).close()  # migrated before the workers start
        procs = [fleet.start_worker(config) for _ in range(workers)]
        try:
            if kill:
                fleet.wait_for(lambda: fleet.holding(database, procs[0].pid) >= 2, 120, 0.02)
                procs[0].send_signal(signal.SIGKILL)
                procs[0].wait()
            if not fleet.wait_for(lambda: fleet.mentions(database) >= total, 1800, 0.05):
                raise SystemExit(f"{workers} workers: not all mentions stored in 30 min")
            done = time.monotonic()
            fleet.wait_for(lambda: fleet.settled(database) >= args.sources, 300)
            settle = time.monotonic() - done
            time.sleep(2)
        finally:
            fleet.stop(procs)
    farm.close()
    assert farm.first_hit is not None
    return total / (done - farm.first_hit), fleet.verify(database, farm), settle


def report(label: str, rate: float, base: float, v: fleet.Verdict, total: int, n: int) -> None:
    sent, unknown = v.deliveries.get("sent", 0), v.deliveries.get("unknown", 0)
    ok = (
        v.mentions == v.distinct == total
        and v.runs_per_source == 1
        and v.alerts == n
        and v.repeated_posts == 0
        and sent + unknown == n
    )
    print(
        f"{label:<28} {rate:>9,.0f} mentions/s  x{rate / base:4.2f}   stored {v.mentions:,} "
        f"(distinct {v.distinct:,}), most runs of one source {v.runs_per_source}, sources "
        f"fetched twice {v.sources_fetched_twice}, alerts {v.alerts}, sent {sent}, "
        f"unknown {unknown}, posts repeated {v.repeated_posts}  {'OK' if ok else 'WRONG'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=400)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--fetches", type=int, default=8, help="fetch slots per worker")
    parser.add_argument("--counts", default="1,2,4")
    parser.add_argument("--database", help="admin URL of a PostgreSQL server to use")
    args = parser.parse_args()
    total = args.sources * args.entries
    print(
        f"workload: {args.sources} sources x {args.entries} reviews = {total:,} mentions, "
        f"{args.delay * 1000:.0f} ms per fetch, {args.fetches} fetch slots per worker; "
        f"{os.cpu_count()} CPUs"
    )
    with ExitStack() as stack:
        admin = args.database or stack.enter_context(server(durable=True))
        if admin is None:
            raise SystemExit("no PostgreSQL here: pass --database or install postgresql")
        base = 0.0
        for n in [int(c) for c in args.counts.split(",")]:
            with fresh_database(admin) as url:
                rate, v, _ = run(url, n, args)
            base = base or rate
            report(
                f"PostgreSQL, {n} worker{'s' if n > 1 else ''}", rate, base, v, total, args.sources
            )
        with fresh_database(admin) as url:
            rate, v, _ = run(url, 4, args, kill=True)
        report("PostgreSQL, 4, one killed", rate, base, v, total, args.sources)
        with tempfile.TemporaryDirectory() as tmp:
            rate, v, _ = run(str(Path(tmp) / "listener.db"), 1, args)
        report("SQLite file, 1 worker", rate, base, v, total, args.sources)


if __name__ == "__main__":
    main()
