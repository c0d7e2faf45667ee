"""`listener run`: a worker that claims due sources, scores what is unscored and runs the alert
pass, for the roles it was started with, until Ctrl-C or SIGTERM.

Several workers may share a PostgreSQL database (listener.workers says how they never do the same
work twice); a SQLite file has one `listener run` at a time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from listener.config import Config
from listener.pipeline import (
    ClassifierSlot,
    PassReport,
    alert_pass,
    build_notifiers,
    classify_pending,
    collect_source,
)
from listener.storage import Storage, describe, open_store, scheduler_lock
from listener.timeutil import utcnow
from listener.workers import ROLES, Heartbeat, Worker
from sources.http import make_client

log = logging.getLogger("listener")
SHUTDOWN_GRACE_S = 10.0
BUSY_RETRY = timedelta(seconds=2)  # the alert pass was running on another worker


def _not_a_skipped_run(record: logging.LogRecord) -> bool:
    # A tick or nudge arriving while the job runs is skipped by design: the run under way
    # started after it, so it covers it (see _Job).
    return "maximum number of running instances" not in record.getMessage()


logging.getLogger("apscheduler.scheduler").addFilter(_not_a_skipped_run)


class _Job:
    """A periodic job that a nudge runs again soon: at once when idle, and once more right after
    the current run when busy (APScheduler drops a run asked for while one is running)."""

    def __init__(self, monitor: Monitor, name: str, fn: Callable[[], None]) -> None:
        self.monitor, self.name, self.fn = monitor, name, fn
        self._busy = self._again = False

    def __call__(self) -> None:
        lock = self.monitor.lock
        with lock:
            self._busy, self._again = True, False
        try:
            while True:
                self.fn()
                with lock:
                    if not self._again or self.monitor.stopping.is_set():
                        return
                    self._again = False
        except Exception:
            log.exception("%s failed; retrying at the next tick", self.name)
        finally:
            with lock:
                self._busy = False

    def nudge(self) -> None:
        with self.monitor.lock:
            if self._busy:
                self._again = True
                return
        self.later(timedelta(0))

    def later(self, delay: timedelta) -> None:
        """Run next after `delay` (from inside the job too: after it ends, if that is later)."""
        if not self.monitor.stopping.is_set():
            with contextlib.suppress(Exception):  # shutting down meanwhile: nothing to move
                self.monitor.scheduler.modify_job(self.name, next_run_time=utcnow() + delay)


class Monitor:
    """One worker. `collect` claims due sources every `poll` (and as fetch slots free up) and
    fetches them on a pool; `score` scores unscored mentions every `score_every` (and when this
    worker stored new ones); `deliver` runs the alert pass every `process_every` (and when this
    worker scored or stored something). Due times, leases and deliveries live in the database,
    so a restart, or another worker, resumes the same schedule."""

    def __init__(
        self,
        config: Config,
        roles: Iterable[str] = ROLES,
        process_every: timedelta = timedelta(seconds=30),
        shutdown_grace: float = SHUTDOWN_GRACE_S,
        poll: timedelta = timedelta(seconds=2),
        score_every: timedelta = timedelta(seconds=5),
    ) -> None:
        self.config = config
        self.worker = Worker.here(roles, lease=config.workers.lease)
        self.shutdown_grace = shutdown_grace
        self.db_path = config.database_url()
        self.every = {"collect": poll, "score": score_every, "deliver": process_every}
        # One client for every fetch: on shutdown, abort() cuts the fetches still running.
        self.client = make_client(allow_private=config.network.allow_private_addresses)
        self.fetches = ThreadPoolExecutor(config.workers.fetches, "listener-fetch")
        self.slot = ClassifierSlot(config)
        self.channels = build_notifiers(config) if self.worker.does("deliver") else {}
        self.scheduler = BackgroundScheduler(
            timezone="UTC",
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )
        self.heartbeat = Heartbeat(self._store, self.worker)
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self._running: set[str] = set()
        self._jobs: dict[str, _Job] = {}
        self._registered = False

    def _store(self) -> Storage:
        return open_store(self.db_path)  # a connection per job: sqlite3 objects stay on one thread

    def start(self) -> None:
        store = self._store()
        try:
            store.sync_sources(self.config.sources)
            sources = len(store.next_due())
        finally:
            store.close()
        self.heartbeat.__enter__()  # registers; frees what workers that died here held
        self._registered = True
        jobs = {"collect": self._claim_sources, "score": self._score, "deliver": self._deliver}
        for role in ROLES:
            if self.worker.does(role):
                job = self._jobs[role] = _Job(self, role, jobs[role])
                self.scheduler.add_job(
                    job,
                    "interval",
                    seconds=self.every[role].total_seconds(),
                    id=role,
                    next_run_time=utcnow(),
                )
        self.scheduler.start()
        log.info(
            "watching %d sources as worker %s (%s); database %s; Ctrl-C to stop",
            sources,
            self.worker.id,
            ", ".join(r for r in ROLES if self.worker.does(r)),
            describe(self.db_path),
        )

    def _nudge(self, role: str) -> None:
        if job := self._jobs.get(role):
            job.nudge()

    def _claim_sources(self) -> None:
        with self.lock:
            free = self.config.workers.fetches - len(self._running)
        if free <= 0 or self.stopping.is_set():
            return
        now = utcnow()
        store = self._store()
        try:
            names = store.claim_due_sources(self.worker.id, now, self.worker.until(now), free)
            for name in names:
                with self.lock:
                    self._running.add(name)
                try:
                    self.fetches.submit(self._collect, name)
                except RuntimeError:  # shutting down: give it back unfetched
                    store.release_source(name, self.worker.id)
                    with self.lock:
                        self._running.discard(name)
        finally:
            store.close()

    def _collect(self, name: str) -> None:
        store = self._store()
        outcome = None
        try:
            outcome = collect_source(self.config, store, name, self.client, self.worker.id)
        except Exception:  # its lease lapses and the source is tried again then
            log.exception("%s: collection failed", name)
        finally:
            store.close()
            with self.lock:
                self._running.discard(name)
        self._nudge("collect")  # a fetch slot is free
        if outcome and outcome.counts and (outcome.counts.new or outcome.counts.updated):
            self._nudge("score" if self.worker.does("score") else "deliver")

    def _score(self) -> None:
        store = self._store()
        try:
            scored = classify_pending(store, self.slot, worker=self.worker)
        finally:
            store.close()
        self.slot.unload_if_idle()
        if scored:
            self._nudge("deliver")

    def _deliver(self) -> None:
        store = self._store()
        try:
            model = self.slot.alert_model(store)
            ran = alert_pass(self.config, store, model, self.channels, self.worker, PassReport())
        finally:
            store.close()
        if not ran:
            # Another worker's pass may have started before what this one stored: look again
            # shortly rather than at the next tick.
            self._jobs["deliver"].later(BUSY_RETRY)

    def running(self) -> list[str]:
        with self.lock:
            return sorted(self._running)

    def abort_fetches(self) -> None:
        if n := self.client.abort():
            log.warning(
                "stopping: cut %d fetches still running; they are fetched again at the next start",
                n,
            )

    def stop(self) -> None:
        """Let running fetches finish and store for up to shutdown_grace seconds, then cut
        the ones still waiting on a server: a stuck fetch never holds up a shutdown, and
        nothing is lost (a cut fetch stores nothing, so its cursor stays)."""
        self.stopping.set()
        log.info(
            "stopping: letting running fetches finish and store what they fetched (at most %g s)",
            self.shutdown_grace,
        )
        cutoff = threading.Timer(self.shutdown_grace, self.abort_fetches)
        cutoff.daemon = True
        cutoff.start()
        try:
            self.scheduler.shutdown(wait=True)
            self.fetches.shutdown(wait=True, cancel_futures=True)
        finally:
            cutoff.cancel()
            self.client.close()
            if self._registered:  # give back what this worker still holds
                self.heartbeat.__exit__(None, None, None)

    def run_until_signal(self) -> None:
        stop = threading.Event()
        signals = 0

        def on_signal(*_: object) -> None:
            nonlocal signals
            signals += 1
            if signals == 1:
                stop.set()
            elif signals == 2:
                waiting = ", ".join(self.running()) or "the scoring/alerting pass"
                log.warning(
                    "still stopping: waiting for %s; cutting fetches now. Press "
                    "Ctrl-C once more to quit at once.",
                    waiting,
                )
                self.abort_fetches()
            else:
                log.warning(
                    "quitting without waiting: a pass in progress is redone at the next start"
                )
                os._exit(130)

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
        # One `listener run` per SQLite file: it says so and waits for the first to stop
        # (Ctrl-C still works). PostgreSQL takes many workers (lock is None).
        lock = scheduler_lock(self.db_path)
        if lock is None:
            self._run(stop)
            return
        if not lock.acquire(timeout=0):
            log.warning(
                "another `listener run` is using %s; waiting for it to stop (one per SQLite "
                "file; use PostgreSQL to run several workers)",
                describe(self.db_path),
            )
            while not stop.is_set():
                if lock.acquire(timeout=1.0):
                    break
            if stop.is_set():
                lock.release()
                return
            log.info("the other `listener run` stopped; starting")
        try:
            self._run(stop)
        finally:
            lock.release()

    def _run(self, stop: threading.Event) -> None:
        self.start()
        try:
            while not stop.wait(1.0):
                pass
        finally:
            self.stop()
