"""One pass of the monitor: collect due sources -> classify unscored mentions -> alerts.

`listener collect --once`, the scheduler in `listener run` and the tests all call these functions.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import random
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

import sources as collectors
from alerts import engine, replies
from alerts.delivery import build_notifiers, deliver_pending, digest_times
from alerts.inbox import sync_inbox
from alerts.notifiers import Notifier
from alerts.replies import ReplyPassReport
from alerts.rules import Alert
from listener.config import Config
from listener.entries import prepare
from listener.matching import brands_for
from listener.query import Query
from listener.scoring import save_chunk, score_chunk
from listener.storage import FetchCounts, LeaseLost, MatchedEntry, Storage, open_store
from listener.timeutil import utcnow
from listener.workers import ALERT_PASS, Heartbeat, Worker
from sentiment import (
    Classifier,
    ModelUnavailable,
    candidate_keys,
    configured_key,
    load_classifier,
)
from sources.base import Entry, FetchError, FetchResult, SourceState
from sources.http import client_or_own
from sources.offload import cores, offload, processes

log = logging.getLogger("listener")

MAX_BACKOFF = timedelta(hours=6)
MODEL_RETRY = timedelta(minutes=10)
MAX_SOURCES_PER_PASS = 100_000


@dataclass
class SourceOutcome:
    source: str
    counts: FetchCounts | None = None
    error: str | None = None
    not_modified: bool = False
    seconds: float = 0.0


@dataclass
class PassReport:
    sources: list[SourceOutcome] = field(default_factory=list)
    scored: int = 0
    model_error: str | None = None
    alerts: list[Alert] = field(default_factory=list)
    delivered: int = 0
    delivery_errors: list[str] = field(default_factory=list)
    replies: ReplyPassReport = field(default_factory=ReplyPassReport)

    @property
    def new(self) -> int:
        return sum(o.counts.new for o in self.sources if o.counts)

    @property
    def failed(self) -> int:
        return sum(1 for o in self.sources if o.error)


def next_due_after_failure(
    now: datetime,
    interval: timedelta,
    failures: int,
    retry_after: timedelta | None,
    rand: Callable[[], float] = random.random,
) -> datetime:
    """Exponential backoff from the source's interval, capped, with jitter so that sources
    failing together do not retry together; Retry-After is a floor, never shortened."""
    backoff = min(interval * (2 ** max(failures - 1, 0)), max(MAX_BACKOFF, interval))
    backoff = backoff * (0.9 + 0.2 * rand())
    if retry_after is not None:
        backoff = max(backoff, retry_after)
    return now + backoff


def fetch_source(
    config: Config, name: str, state: SourceState, client: httpx.Client
) -> FetchResult:
    """Network half of a collection: no database access, safe to run in a worker thread."""
    source = config.source(name)
    return collectors.get_collector(source.type).fetch(source, state, client)


def store_result(
    config: Config,
    store: Storage,
    name: str,
    result: FetchResult | FetchError,
    started: datetime,
    seconds: float = 0.0,
    now: Callable[[], datetime] = utcnow,
    worker: str | None = None,
) -> SourceOutcome:
    """Database half: mentions + run record + new state + the end of `worker`'s lease on the
    source in one transaction, or the error."""
    source = config.source(name)
    finished = now()
    if isinstance(result, FetchError) and result.interrupted:
        # Cut by our own shutdown: nothing stored, state unchanged, fetched again next start
        # (or by another worker now).
        if worker is not None:
            store.release_source(name, worker)
        log.info("%s: %s", name, result)
        return SourceOutcome(name, error=str(result), seconds=seconds)
    if isinstance(result, FetchError):
        failures = store.failures(name) + 1
        store.record_failure(
            name,
            str(result),
            http_status=result.http_status,
            started=started,
            finished=finished,
            disable=result.disable,
            next_due=next_due_after_failure(
                finished, source.interval, failures, result.retry_after
            ),
            worker=worker,
        )
        log.warning("%s: %s", name, result)
        return SourceOutcome(name, error=str(result), seconds=seconds)
    clamp_future(result.entries, finished)
    matched = [
        MatchedEntry(e, b)
        for e in result.entries
        if (b := brands_for(e, source.brand, config.brands))
    ]
    due = finished + max(source.interval, result.retry_after or timedelta(0))
    counts = store.save_fetch(
        name, result, matched, started=started, finished=finished, next_due=due, worker=worker
    )
    for warning in result.warnings:
        log.warning("%s: %s", name, warning)
    if result.url_changed_to:
        log.info("%s: moved permanently, now fetching %s", name, result.url_changed_to)
    if result.not_modified:
        log.info("%s: not modified (%.1fs)", name, seconds)
    else:
        log.info(
            "%s: %d entries, %d new, %d updated, %d matched no brand (%.1fs)",
            name,
            counts.entries,
            counts.new,
            counts.updated,
            counts.skipped,
            seconds,
        )
    if counts.rejected:
        log.warning(
            "%s: %d entries could not be read and were skipped; first: %s",
            name,
            counts.rejected,
            (result.rejected or ["(see the fetch run)"])[0],
        )
    return SourceOutcome(name, counts=counts, not_modified=result.not_modified, seconds=seconds)


FUTURE_SLACK = timedelta(minutes=10)


def clamp_future(entries: list[Entry], fetched: datetime) -> None:
    """A date in the future (a wrong clock or time zone at the source) would sort first for
    days: it becomes the fetch time; the date as sent stays in raw."""
    for e in entries:
        if e.published_at is not None and e.published_at > fetched + FUTURE_SLACK:
            e.raw = {**e.raw, "published_as_sent": e.published_at.isoformat()}
            e.published_at = fetched


def _timed_fetch(
    config: Config, name: str, state: SourceState, client: httpx.Client
) -> tuple[FetchResult | FetchError, datetime, float]:
    started, start = utcnow(), time.monotonic()
    try:
        fetched = fetch_source(config, name, state, client)
        # Checked and language-tagged here, in a worker process during a large pass.
        result: FetchResult | FetchError = offload(prepare, fetched, config.language)
    except FetchError as exc:
        result = exc
    except Exception as exc:  # a collector bug must not stop the other sources
        log.exception("%s: collector crashed", name)
        result = FetchError(f"collector crashed: {type(exc).__name__}: {exc}")
    return result, started, time.monotonic() - start


def _store_safely(
    config: Config,
    store: Storage,
    name: str,
    result: FetchResult | FetchError,
    started: datetime,
    seconds: float,
    worker: str | None = None,
) -> SourceOutcome:
    """A source whose result cannot be stored (a bad entry, a full disk) fails alone: its
    transaction rolled back, its old cursor kept, the other sources still stored."""
    try:
        return store_result(config, store, name, result, started, seconds, worker=worker)
    except LeaseLost as exc:  # another worker fetched it meanwhile: its result stands
        log.warning("%s", exc)
        return SourceOutcome(name, error=str(exc), seconds=seconds)
    except Exception as exc:
        log.exception("%s: could not store the fetch", name)
        error = FetchError(f"could not store the fetch: {type(exc).__name__}: {exc}")
        try:
            return store_result(config, store, name, error, started, seconds, worker=worker)
        except Exception:
            if worker is not None:  # nothing stored: free it for the next try
                store.release_source(name, worker)
            return SourceOutcome(name, error=str(error), seconds=seconds)


def collect_source(
    config: Config,
    store: Storage,
    name: str,
    client: httpx.Client | None = None,
    worker: str | None = None,
) -> SourceOutcome:
    """Fetch and store one source (one `worker` holds, if given)."""
    state = store.source_state(name)
    with client_or_own(client, allow_private=config.network.allow_private_addresses) as http:
        result, started, seconds = _timed_fetch(config, name, state, http)
    return _store_safely(config, store, name, result, started, seconds, worker)


# Below this many due sources a pass parses in its own threads: starting worker processes
# (a fork server importing feedparser and lingua, ~1 s) would cost more than it saves.
PROCESSES_FROM = 50


def parse_processes(config: Config, due: int) -> int:
    """How many worker processes parse and detect languages in a pass of `due` sources."""
    setting = config.workers.processes
    if setting is not None:
        return setting
    return cores() if due >= PROCESSES_FROM else 0


def collect_due(
    config: Config,
    store: Storage,
    *,
    now: datetime | None = None,
    workers: int = 8,
    client: httpx.Client | None = None,
    worker: Worker | None = None,
) -> list[SourceOutcome]:
    """Claim every source due at `now` that no other worker holds, fetch them concurrently and
    store each result on this thread as it arrives. At most 2 x workers fetches are in
    flight, so results never pile up in memory; the claims not reached yet are renewed by the
    worker's heartbeat meanwhile."""
    worker = worker or Worker.here()
    due = store.claim_due_sources(
        worker.id, now or utcnow(), worker.until(utcnow()), MAX_SOURCES_PER_PASS
    )
    if not due:
        return []
    outcomes: list[SourceOutcome] = []
    waiting = iter(due)
    in_flight: dict[Future[Any], str] = {}
    try:
        with (
            client_or_own(client, allow_private=config.network.allow_private_addresses) as http,
            processes(parse_processes(config, len(due))),
            ThreadPoolExecutor(max_workers=max(1, min(workers, len(due)))) as pool,
        ):

            def submit_next() -> None:
                name = next(waiting, None)
                if name is not None:
                    state = store.source_state(name)
                    in_flight[pool.submit(_timed_fetch, config, name, state, http)] = name

            for _ in range(2 * workers):
                submit_next()
            while in_flight:
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = in_flight.pop(future)
                    submit_next()
                    result, started, seconds = future.result()
                    outcomes.append(
                        _store_safely(config, store, name, result, started, seconds, worker.id)
                    )
    finally:
        # Reached only if storing raised: what was not stored is given back, due as it was.
        for name in [*in_flight.values(), *waiting]:
            store.release_source(name, worker.id)
    return outcomes


def return_freed_memory() -> None:
    """Hand freed heap back to the OS (glibc keeps it for reuse otherwise, and the process
    would look as large as with the model); nothing elsewhere."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


class ClassifierSlot:
    """Loads the model on first use; after a failure, retries no more often than MODEL_RETRY,
    so collection never waits on a model that is not there."""

    def __init__(self, config: Config, loader: Callable[..., Classifier] = load_classifier):
        self.settings = config.sentiment
        self.matchers = {b.name: b.matcher for b in config.brands}
        self._loader = loader
        self._classifier: Classifier | None = None
        self.error: str | None = None
        self._failed_at: float | None = None
        self._used_at = 0.0
        self._unloaded: tuple[str, str | None] | None = None  # the key of a model it dropped

    def get(self) -> Classifier | None:
        if self._classifier is not None:
            self._used_at = time.monotonic()
            return self._classifier
        if self._failed_at is not None and (
            time.monotonic() - self._failed_at < MODEL_RETRY.total_seconds()
        ):
            return None
        try:
            self._classifier = self._loader(self.settings)
            self._used_at = time.monotonic()
            self.error = None
            c = self._classifier
            log.info("sentiment model loaded: %s (%s)", c.name, c.revision)
        except ModelUnavailable as exc:
            self.error = str(exc)
            self._failed_at = time.monotonic()
            log.error("%s", exc)
        return self._classifier

    def unload_if_idle(self, now: float | None = None) -> bool:
        """Drop the model when nothing asked for it for `sentiment.unload_after`: an idle
        `listener run` then holds the memory of a process without it, and loads it again
        (seconds) when new mentions come. True if it was unloaded now."""
        after = self.settings.unload_after
        if self._classifier is None or after is None:
            return False
        now = time.monotonic() if now is None else now
        if now - self._used_at < after.total_seconds():
            return False
        c, self._classifier = self._classifier, None
        self._unloaded = (c.name, c.revision)
        del c
        gc.collect()
        return_freed_memory()
        log.info("sentiment model unloaded after %s without work: %s", after, self._unloaded[0])
        return True

    def has_work(self, store: Storage) -> bool:
        """Whether any mention waits for a score from this model: a pass with nothing new
        never loads it (seconds and a gigabyte and more per `collect --once`)."""
        c = self._classifier
        if c:
            keys = [(c.name, c.revision)]
        else:  # the model it unloaded is the one that loads again
            keys = [self._unloaded] if self._unloaded else candidate_keys(self.settings)
        return any(store.unscored(name, rev, 1) for name, rev in keys)

    @property
    def model_key(self) -> tuple[str, str | None]:
        c = self._classifier
        if c:
            return (c.name, c.revision)
        return self._unloaded or configured_key(self.settings)

    def alert_model(self, store: Storage) -> tuple[str, str | None]:
        """Whose labels the alert rules read: the loaded model's; on a worker that scores
        nothing, the configured model's, or the model that scored last (the offline fallback
        another worker loaded)."""
        return self.model_key if self._classifier else store.scored_model(self.model_key)


def classify_pending(
    store: Storage,
    slot: ClassifierSlot,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    worker: Worker | None = None,
) -> int:
    """Score mentions that have no score from the current model and that no other worker is
    scoring, batch by batch."""
    if not slot.has_work(store):
        return 0
    classifier = slot.get()
    if classifier is None:
        return 0
    return score_unscored(
        store,
        classifier,
        review_threshold(slot.settings, classifier),
        score_chunk_size(classifier),
        limit,
        matchers=slot.matchers,
        progress=progress,
        worker=worker,
    )


def review_threshold(settings: Any, classifier: Classifier) -> float:
    """sentiment.review_below if set, else the model's own (chosen on its calibrated dev
    data), else 0.5."""
    if settings.review_below is not None:
        return float(settings.review_below)
    own = getattr(classifier, "review_below", None)
    return float(own) if own is not None else 0.5


def score_chunk_size(classifier: Classifier) -> int:
    """Texts per classify call, and per transaction of scores. Larger calls let the classifier
    group texts of like token length into fuller batches: on the offline model 512 texts per
    call scored 1.1-1.2x faster than 128 (bench/sentiment_speed.py), and a chunk still commits
    within seconds on a CPU."""
    return max(512, classifier.batch_size * 4)


def score_unscored(
    store: Storage,
    classifier: Classifier,
    review_below: float,
    chunk: int,
    limit: int | None = None,
    *,
    matchers: Mapping[str, Query] | None = None,
    progress: Callable[[int, int], None] | None = None,
    worker: Worker | None = None,
) -> int:
    """Score, in chunks, every mention this classifier (name + revision) has not scored yet,
    and, for a mention that names several brands, each brand on its own passage (see
    sentiment.targets). Each chunk is claimed for `worker` (other workers skip it) and
    committed on its own, scores, brand scores and the end of the claim in one transaction,
    so an interrupted run keeps what it scored."""
    worker = worker or Worker.here()
    try:
        return _score_claimed(
            store, classifier, review_below, chunk, limit, matchers or {}, progress, worker
        )
    finally:
        store.release_score_claims(worker.id)  # texts it failed on: free for a retry


def _score_claimed(
    store: Storage,
    classifier: Classifier,
    review_below: float,
    chunk: int,
    limit: int | None,
    matchers: Mapping[str, Query],
    progress: Callable[[int, int], None] | None,
    worker: Worker,
) -> int:
    done = handled = 0  # handled also counts texts the model failed on (recorded, skipped)
    total = 0
    if progress is not None:
        total = store.count_unscored(classifier.name, classifier.revision)
        total = total if limit is None else min(total, limit)
        progress(0, total)
    while limit is None or handled < limit:
        size = chunk if limit is None else min(chunk, limit - handled)
        now = utcnow()
        pending = store.claim_unscored(
            worker.id, classifier.name, classifier.revision, size, now, worker.until(now)
        )
        if not pending:
            break
        named = store.brands_of([m.id for m in pending])
        scored = score_chunk(classifier, pending, review_below, named, matchers)
        done += save_chunk(store, (classifier.name, classifier.revision), scored, worker.id)
        handled += len(pending)
        if progress is not None:
            progress(handled, total)
        log.info("scored %d mentions with %s", done, classifier.name)
    return done


def evaluate_alerts(
    config: Config, store: Storage, model: tuple[str, str | None], now: datetime | None = None
) -> list[Alert]:
    """Keep the inbox current, then run every alert rule (alerts.engine)."""
    sync_inbox(config, store, model, now)
    return engine.evaluate(config, store, model, now)


def process(
    config: Config,
    store: Storage,
    slot: ClassifierSlot,
    channels: dict[str, Notifier],
    report: PassReport | None = None,
    progress: Callable[[int, int], None] | None = None,
    worker: Worker | None = None,
) -> PassReport:
    """Everything after collection that the worker's roles cover: scoring (`score`), then the
    inbox, alert rules and deliveries (`deliver`)."""
    worker = worker or Worker.here()
    report = report or PassReport()
    if worker.does("score"):
        report.scored = classify_pending(store, slot, progress=progress, worker=worker)
        report.model_error = slot.error
    if worker.does("deliver"):
        alert_pass(config, store, slot.alert_model(store), channels, worker, report)
    return report


def alert_pass(
    config: Config,
    store: Storage,
    model: tuple[str, str | None],
    channels: dict[str, Notifier],
    worker: Worker,
    report: PassReport,
) -> bool:
    """Inbox, alert rules and deliveries, on one worker at a time (a task lease): False if
    another worker is running it now (it covers what this one would have done)."""
    now = utcnow()
    if not store.claim_task(ALERT_PASS, worker.id, now, worker.until(now)):
        log.debug("another worker is running the alert pass")
        return False
    try:
        recover_interrupted_sends(store)
        report.alerts = evaluate_alerts(config, store, model)
        report.delivered, report.delivery_errors = deliver_pending(
            store, channels, digest_times(config), worker=worker
        )
        report.replies = reply_pass(config, store, worker)
    finally:
        store.release_task(ALERT_PASS, worker.id)
    return True


def reply_pass(config: Config, store: Storage, worker: Worker) -> ReplyPassReport:
    """Replies: interrupted sends settled, items the team answered on the platform closed,
    auto_reply drafts queued, due replies posted."""
    again, unknown = replies.recover(config, store)
    if again or unknown:
        log.warning(
            "%d replies were interrupted mid-send: %d will be sent again (the platform cannot "
            "take them twice), %d marked 'unknown' for a person to check",
            again + unknown,
            again,
            unknown,
        )
    elsewhere = replies.check_elsewhere(config, store)
    if n := replies.auto_approve(config, store):
        log.info("%d automatic replies queued (auto_reply)", n)
    report = replies.send_due(config, store, worker)
    report.answered_elsewhere = elsewhere
    return report


def recover_interrupted_sends(store: Storage) -> None:
    """A delivery left 'sending' by a worker whose lease lapsed may or may not have gone out:
    mark it 'unknown' (shown by `listener alerts`) rather than risk sending it twice."""
    if n := store.recover_deliveries():
        log.warning(
            "%d alert deliveries were interrupted mid-send; marked 'unknown', not re-sent", n
        )


def run_pass(
    config: Config,
    store: Storage,
    slot: ClassifierSlot | None = None,
    channels: dict[str, Notifier] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PassReport:
    """One whole pass (`listener collect --once`) as a worker of every role: it takes only
    work no other worker holds, so it may run beside `listener run`. progress(done, total)
    while scoring."""
    worker = Worker.here(lease=config.workers.lease)
    with Heartbeat(lambda: open_store(config.database_url()), worker):
        store.sync_sources(config.sources)
        report = PassReport(
            sources=collect_due(config, store, workers=config.workers.fetches, worker=worker)
        )
        return process(
            config,
            store,
            slot or ClassifierSlot(config),
            channels if channels is not None else build_notifiers(config),
            report,
            progress,
            worker,
        )


__all__ = ["build_notifiers", "deliver_pending", "run_pass"]
