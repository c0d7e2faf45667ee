"""`listener run`: each source on its own schedule, driven by the next due times in the database.

One scheduler per database: two processes scheduling the same file would fetch everything twice.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from listener.config import Config
from listener.pipeline import (
    ClassifierSlot,
    build_notifiers,
    collect_source,
    process,
    recover_interrupted_sends,
)
from listener.storage import Storage, describe, open_store, scheduler_lock
from listener.timeutil import parse_iso, utcnow
from sources.http import make_client

log = logging.getLogger("listener")
SHUTDOWN_GRACE_S = 10.0


class Monitor:
    """Source jobs re-schedule themselves at the due time their fetch stored (interval, backoff
    or Retry-After), so a restart resumes the same schedule."""

    def __init__(
        self,
        config: Config,
        process_every: timedelta = timedelta(seconds=30),
        shutdown_grace: float = SHUTDOWN_GRACE_S,
    ) -> None:
        self.config = config
        self.shutdown_grace = shutdown_grace
        # One client for every job: on shutdown, abort() cuts the fetches still running.
        self.client = make_client(allow_private=config.network.allow_private_addresses)
        self._running: set[str] = set()
        self.db_path = config.database_url()
        self.process_every = process_every
        self.slot = ClassifierSlot(config)
        self.channels = build_notifiers(config)
        self.scheduler = BackgroundScheduler(
            timezone="UTC",
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._processing = False
        self._again = False

    def _store(self) -> Storage:
        return open_store(self.db_path)  # a connection per job: sqlite3 objects stay on one thread

    def start(self) -> None:
        store = self._store()
        try:
            store.sync_sources(self.config.sources)
            recover_interrupted_sends(store)
            due = store.next_due()
        finally:
            store.close()
        for name, at in due.items():
            self._schedule(name, at)
        self.scheduler.add_job(
            self._process,
            "interval",
            seconds=self.process_every.total_seconds(),
            id="process",
            next_run_time=utcnow(),
        )
        self.scheduler.start()
        log.info(
            "watching %d sources; database %s; Ctrl-C to stop", len(due), describe(self.db_path)
        )

    def _schedule(self, name: str, due_at: str | None) -> None:
        if self.stopping.is_set():
            return
        run_at = max(utcnow(), parse_iso(due_at) or utcnow())
        self.scheduler.add_job(
            self._collect,
            "date",
            run_date=run_at,
            args=[name],
            id=f"source:{name}",
            replace_existing=True,
        )

    def _collect(self, name: str) -> None:
        store = self._store()
        outcome = None
        with self._lock:
            self._running.add(name)
        try:
            outcome = collect_source(self.config, store, name, self.client)
            due = store.next_due().get(name)  # None once the source is disabled (410)
        except Exception:
            log.exception("%s: collection failed", name)
            due = (utcnow() + self.config.source(name).interval).isoformat()
        finally:
            store.close()
            with self._lock:
                self._running.discard(name)
        if due is not None:
            self._schedule(name, due)
        if outcome and outcome.counts and (outcome.counts.new or outcome.counts.updated):
            self._process_soon()

    def _process_soon(self) -> None:
        """New mentions: score and alert now rather than at the next tick."""
        with self._lock:
            if self._processing:
                self._again = True  # the running pass goes round once more
                return
        if not self.stopping.is_set():
            self.scheduler.modify_job("process", next_run_time=utcnow())

    def _process(self) -> None:
        with self._lock:
            self._processing, self._again = True, False
        store = self._store()
        try:
            while True:
                process(self.config, store, self.slot, self.channels)
                with self._lock:
                    if not self._again or self.stopping.is_set():
                        self._processing = False
                        return
                    self._again = False
        except Exception:
            log.exception("scoring/alerting pass failed; retrying at the next tick")
            with self._lock:
                self._processing = False
        finally:
            store.close()

    def running(self) -> list[str]:
        with self._lock:
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
        finally:
            cutoff.cancel()
            self.client.close()

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
        # One scheduler per database file: a second would fetch every source twice and load a
        # second model. It says so and waits for the first to stop (Ctrl-C still works).
        lock = scheduler_lock(self.db_path)
        if not lock.acquire(timeout=0):
            log.warning(
                "another `listener run` is using %s; waiting for it to stop (one scheduler per "
                "database)",
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
            self.start()
            try:
                while not stop.wait(1.0):
                    pass
            finally:
                self.stop()
        finally:
            lock.release()
