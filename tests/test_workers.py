"""Several workers on one database: each due source, each mention to score and the alert pass
is held by one worker at a time; a lapsed lease is taken over and the late result dropped; a
worker that died on this host is noticed at once. Each test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import timedelta

import pytest

from listener.storage import LeaseLost, MatchedEntry, open_store
from listener.timeutil import utcnow
from listener.workers import Heartbeat, Worker, gone_here, reap
from sentiment.base import Prediction
from sources.base import Entry, FetchResult, SourceState
from tests.history import NOW, History, Post

OTHER = ("other-model", "2")
LEASE = timedelta(seconds=60)


def _sources(store, n: int) -> list[str]:
    names = [f"src{i:02d}" for i in range(n)]
    for name in names:
        store.db["sources"].insert(
            {"id": name, "type": "rss", "enabled": 1, "consecutive_failures": 0}
        )
    return names


def _fetch(store, source: str, worker: str, external_id: str = "x1"):
    e = Entry(external_id, "https://example.com/x", None, "t", "acme text", None, None, NOW, "h")
    return store.save_fetch(
        source,
        FetchResult([e], SourceState()),
        [MatchedEntry(e, ("Acme",))],
        started=NOW,
        finished=NOW,
        next_due=NOW + timedelta(hours=1),
        worker=worker,
    )


def test_roles_are_checked():
    with pytest.raises(ValueError, match=r"unknown roles \[.bogus.\]"):
        Worker.here(["collect", "bogus"])


def test_each_due_source_is_claimed_by_one_worker(store):
    names = _sources(store, 6)
    a = store.claim_due_sources("a", NOW, NOW + LEASE, 4)
    b = store.claim_due_sources("b", NOW, NOW + LEASE, 4)
    assert len(a) == 4 and len(b) == 2 and sorted(a + b) == names
    assert store.claim_due_sources("c", NOW, NOW + LEASE, 4) == []  # all held
    # storing the fetch ends the lease and moves the due time: nobody claims it again now
    _fetch(store, a[0], "a")
    assert store.claim_due_sources("c", NOW, NOW + LEASE, 4) == []
    # a source given back unfetched (a shutdown cut its fetch) is due again at once
    store.release_source(a[1], "a")
    assert store.claim_due_sources("c", NOW, NOW + LEASE, 4) == [a[1]]


def test_a_lapsed_lease_is_taken_over_and_the_late_result_is_dropped(store):
    [name] = _sources(store, 1)
    assert store.claim_due_sources("slow", NOW, NOW + LEASE, 1) == [name]
    later = NOW + LEASE + timedelta(seconds=1)
    assert store.claim_due_sources("fast", later, later + LEASE, 1) == [name]
    with pytest.raises(LeaseLost, match="fast holds it now"):
        _fetch(store, name, "slow")
    with pytest.raises(LeaseLost):
        store.record_failure(
            name, "boom", http_status=500, started=NOW, finished=NOW, next_due=NOW, worker="slow"
        )
    assert store.db["mentions"].count == 0 and store.db["fetch_runs"].count == 0
    assert _fetch(store, name, "fast").new == 1
    assert store.db["fetch_runs"].count == 1 and store.failures(name) == 0


def test_workers_racing_for_sources_never_share_one(database):
    setup = open_store(database)
    names = _sources(setup, 40)
    setup.close()
    got: list[list[str]] = []
    start = threading.Barrier(6)

    def claimer(i: int) -> None:
        store = open_store(database)
        mine: list[str] = []
        start.wait()
        try:
            while batch := store.claim_due_sources(f"w{i}", NOW, NOW + LEASE, 3):
                mine += batch
                time.sleep(0.05)  # fetching them: the others claim meanwhile
        finally:
            store.close()
        got.append(mine)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    claimed = [n for mine in got for n in mine]
    assert sorted(claimed) == names  # every source once, none twice
    assert sum(1 for mine in got if mine) >= 2  # and the work was shared


def test_mentions_to_score_are_split_between_workers(store):
    h = History(store)
    ids = h.add(*(Post("negative", timedelta(hours=i)) for i in range(1, 8)))
    a = store.claim_unscored("a", *OTHER, 3, NOW, NOW + LEASE)
    b = store.claim_unscored("b", *OTHER, 10, NOW, NOW + LEASE)
    assert len(a) == 3 and len(b) == 4
    assert sorted(m.id for m in a + b) == sorted(ids)
    assert store.claim_unscored("c", *OTHER, 10, NOW, NOW + LEASE) == []
    # a's scores and the end of its claims are one write
    p = Prediction("negative", {"negative": 0.9, "neutral": 0.05, "positive": 0.05}, -0.9)
    store.save_scores(*OTHER, [(m.id, p, None) for m in a[:2]], now=NOW, worker="a")
    # b died: after its lease, its mentions go to c; a still holds its last one
    later = NOW + LEASE + timedelta(seconds=1)
    c = store.claim_unscored("c", *OTHER, 10, later, later + LEASE)
    assert sorted(m.id for m in c) == sorted([*(m.id for m in b), a[2].id])
    assert store.release_score_claims("c") == 5


def test_the_alert_pass_runs_on_one_worker_at_a_time(store):
    assert store.claim_task("deliver", "a", NOW, NOW + LEASE)
    assert store.claim_task("deliver", "a", NOW, NOW + LEASE)  # renewing is holding
    assert not store.claim_task("deliver", "b", NOW, NOW + LEASE)
    store.release_task("deliver", "a")
    assert store.claim_task("deliver", "b", NOW, NOW + LEASE)
    later = NOW + LEASE + timedelta(seconds=1)
    assert store.claim_task("deliver", "a", later, later + LEASE)  # b's lease lapsed


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_worker_that_died_on_this_host_is_noticed_at_once(store):
    [name] = _sources(store, 1)
    here = Worker.here().id.split(":")[0]  # host, and pid namespace where there is one
    dead = f"{here}:{_dead_pid()}:ab"
    assert gone_here(dead) and not gone_here(Worker.here().id)
    assert not gone_here(f"another-host:{_dead_pid()}:ab")  # elsewhere: wait for the lease
    store.register_worker(dead, here, 1, ["collect"], NOW)
    store.claim_due_sources(dead, NOW, NOW + LEASE, 1)
    store.db["alerts"].insert({"id": 1, "dedupe_key": "k", "rule": "r", "title": "t"})
    store.db["deliveries"].insert(
        {"alert_id": 1, "channel": "hook", "status": "pending", "attempts": 0}
    )
    assert store.claim_delivery(1, "hook", dead, NOW + LEASE)
    assert reap(store, NOW) == [dead]
    assert store.claim_due_sources("me", NOW, NOW + LEASE, 1) == [name]
    # its send may or may not have gone out: never sent again, listed for a person
    assert store.deliveries(1)[0]["status"] == "unknown"
    assert store.workers() == []


def test_the_heartbeat_keeps_a_long_fetch_held_and_a_clean_stop_frees_it(store, database):
    [name] = _sources(store, 1)
    worker = Worker.here(lease=timedelta(seconds=1.5))
    with Heartbeat(lambda: open_store(database), worker):
        assert [w["id"] for w in store.workers()] == [worker.id]
        now = utcnow()
        assert store.claim_due_sources(worker.id, now, worker.until(now), 1) == [name]
        time.sleep(2.5)  # longer than the lease: renewed meanwhile
        now = utcnow()
        assert store.claim_due_sources("other", now, now + LEASE, 1) == []
        assert store.workers()[0]["sources"] == 1
    # stopped cleanly: what it held is free at once, and it is no longer listed
    assert store.claim_due_sources("other", now, now + LEASE, 1) == [name]
    assert store.workers() == []
