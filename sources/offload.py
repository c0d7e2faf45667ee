"""CPU-bound work of a collection pass in worker processes.

Fetch threads wait on the network with the GIL released, but parsing a feed (feedparser) and
detecting languages (lingua) hold it: in threads they run one at a time however many cores
there are. While a pass with many sources runs, `processes(n)` opens a pool of n worker
processes and `offload(fn, ...)` runs fn in one of them; outside a pass, or with no pool, fn
runs in the calling thread as before. Arguments and results cross by pickling, so fn must be a
module-level function of plain data.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

log = logging.getLogger("listener")

P = ParamSpec("P")
R = TypeVar("R")

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()
# Imported once in the fork server, so each worker starts with them loaded.
PRELOAD = ["sources.rss", "listener.entries"]


def cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextmanager
def processes(workers: int) -> Iterator[None]:
    """Offloaded work goes to `workers` processes until the block ends (workers < 2, or a
    pool already open: nothing changes). A fork server starts them, never a fork of this
    process: it has threads (the scheduler's, the fetches'), and a fork copies their locks."""
    global _pool
    with _lock:
        if _pool is not None or workers < 2:
            opened = None
        else:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            opened = _pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=context,
                initializer=_watch_parent,
                initargs=(os.getpid(),),
            )
    try:
        yield
    finally:
        if opened is not None:
            with _lock:
                _pool = None
            opened.shutdown(wait=True, cancel_futures=True)


def _watch_parent(pid: int) -> None:
    """In each worker: exit when the process that opened the pool is gone. Killed (SIGKILL,
    the OOM killer) it never shuts the pool down, and a worker waiting for work would wait
    forever."""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:  # alive, under another user (cannot happen here)
                pass

    threading.Thread(target=watch, daemon=True, name="watch-parent").start()


def offload(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """fn(*args, **kwargs) in a worker process while a pool is open, else here. A pool that
    broke (a worker killed, say by the OOM killer) is not retried: the work is done here."""
    global _pool
    pool = _pool
    if pool is None:
        return fn(*args, **kwargs)
    try:
        future = pool.submit(fn, *args, **kwargs)
    except (BrokenProcessPool, RuntimeError):  # broken, or shut down meanwhile
        return fn(*args, **kwargs)
    try:
        return future.result()
    except BrokenProcessPool:
        log.warning("a parsing process died; parsing in this process for the rest of the pass")
        with _lock:
            if _pool is pool:
                _pool = None
        return fn(*args, **kwargs)
