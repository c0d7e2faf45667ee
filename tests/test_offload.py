"""Parsing in worker processes during a large pass: same results as in threads, errors and a
dead worker handled, nothing when no pool is open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from werkzeug import Response

from listener.pipeline import collect_due
from listener.timeutil import utcnow
from sources.base import FetchError
from sources.offload import offload, processes
from tests.conftest import rss


def where() -> int:
    return os.getpid()


def refuse(url: str) -> None:
    raise FetchError(f"{url}: not a feed", http_status=200, disable=True)


def die_unless_in(pid: int) -> str:
    if os.getpid() != pid:
        os._exit(1)  # a worker killed mid-parse (say by the OOM killer)
    return "parsed here"


def test_work_runs_in_a_worker_process_only_while_a_pool_is_open():
    assert offload(where) == os.getpid()
    with processes(2):
        assert offload(where) != os.getpid()
    assert offload(where) == os.getpid()


def test_a_fetch_error_raised_in_a_worker_arrives_whole():
    with processes(2), pytest.raises(FetchError, match="not a feed") as caught:
        offload(refuse, "https://example.com/feed")
    assert (caught.value.http_status, caught.value.disable) == (200, True)


def test_a_dead_worker_falls_back_to_parsing_here():
    with processes(2):
        assert offload(die_unless_in, os.getpid()) == "parsed here"
        assert offload(where) == os.getpid()  # the rest of the pass parses here too


def test_a_pass_in_processes_stores_what_a_pass_in_threads_stores(make_config, store, httpserver):
    def feed(n: int) -> bytes:
        return rss([{"title": f"acme {n}-{i} toimitus myöhässä taas", "guid": f"{n}-{i}"}
                    for i in range(5)])  # fmt: skip

    for n in range(6):
        httpserver.expect_request(f"/f{n}.xml").respond_with_handler(
            lambda r, n=n: Response(feed(n), content_type="application/rss+xml")
        )
    stored = {}
    for processes_setting in (0, 2):
        sources = "\n".join(
            f"  - {{name: p{processes_setting}f{n}, type: rss, "
            f"url: '{httpserver.url_for(f'/f{n}.xml')}'}}"
            for n in range(6)
        )
        config = make_config(
            f"brands: [{{name: Acme}}]\nworkers: {{processes: {processes_setting}}}\n"
            f"sources:\n{sources}\n"
        )
        store.sync_sources(config.sources)
        outcomes = collect_due(config, store, now=utcnow().replace(year=2100))
        assert all(o.error is None for o in outcomes)
        stored[processes_setting] = sorted(
            (r["external_id"], r["title"], r["language"], r["language_source"])
            for r in store.db.query(
                "SELECT external_id, title, language, language_source FROM mentions "
                "WHERE source_id LIKE ?",
                [f"p{processes_setting}%"],
            )
        )
    assert len(stored[0]) == 30 and stored[0] == stored[2]
    assert {r[2] for r in stored[2]} == {"fi"}  # detected in the worker


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] in "ZX"
    except (FileNotFoundError, IndexError):
        return True


def test_workers_do_not_outlive_a_killed_pass():
    script = (
        "import os, sys, time\n"
        "from sources.offload import offload, processes\n"
        "with processes(2):\n"
        "    print(offload(os.getpid), flush=True)\n"
        "    time.sleep(60)\n"
    )
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    worker = int(proc.stdout.readline())
    assert not gone(worker)
    proc.send_signal(signal.SIGKILL)  # no shutdown of the pool: the workers must notice
    proc.wait()
    deadline = time.monotonic() + 15
    while not gone(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(worker)
