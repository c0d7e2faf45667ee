"""Real `listener run` workers sharing one PostgreSQL database: every source fetched once per
due time, every review stored once, every alert sent once, also when one worker is killed
with SIGKILL mid-run (its leases lapse and the others take its work over)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from listener.storage import open_store
from tests import fleet
from tests.postgres import fresh_database


@pytest.fixture
def pg_database(postgres_server: str | None) -> Iterator[str]:
    if postgres_server is None:
        pytest.skip("no PostgreSQL server here (install Debian's postgresql package)")
    with fresh_database(postgres_server) as url:
        open_store(url).close()  # migrated before the workers race to start
        yield url


def test_workers_share_the_work_and_do_none_of_it_twice(pg_database, tmp_path):
    farm = fleet.Farm(sources=60, entries=10, delay=0.05)
    config = farm.config(tmp_path, pg_database)
    workers = [fleet.start_worker(config) for _ in range(3)]
    try:
        assert fleet.wait_for(lambda: fleet.mentions(pg_database) >= 600, 90)
        assert fleet.wait_for(lambda: fleet.settled(pg_database) >= 60, 60)
        time.sleep(1)  # anything done twice would show by now
    finally:
        fleet.stop(workers)
    v = fleet.verify(pg_database, farm)
    assert [w.returncode for w in workers] == [0, 0, 0]
    assert (v.mentions, v.distinct, v.alerts) == (600, 600, 60)
    assert v.sources_fetched_twice == 0 and v.runs_per_source == 1
    assert v.deliveries == {"sent": 60} and v.posts == 60 and v.repeated_posts == 0


def test_a_killed_worker_loses_nothing_and_its_work_is_taken_over(pg_database, tmp_path):
    farm = fleet.Farm(sources=80, entries=10, delay=0.3)  # slow feeds: fetches in flight
    config = farm.config(tmp_path, pg_database, lease="5s", fetches=4)
    workers = [fleet.start_worker(config) for _ in range(3)]
    try:
        # killed while it holds fetches in flight
        assert fleet.wait_for(lambda: fleet.holding(pg_database, workers[0].pid) >= 2, 60, 0.02)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        assert fleet.wait_for(lambda: fleet.mentions(pg_database) >= 800, 90)
        assert fleet.wait_for(lambda: fleet.settled(pg_database) >= 80, 60)
        time.sleep(6)  # past the killed worker's leases: a repeat would show by now
    finally:
        fleet.stop(workers)
    v = fleet.verify(pg_database, farm)
    assert (v.mentions, v.distinct, v.alerts) == (800, 800, 80)
    # only fetches cut by the kill were made again (at most its 4 slots), and stored once
    assert v.sources_fetched_twice <= 4 and v.runs_per_source == 1
    # a send cut by the kill is 'unknown', never repeated; every other alert went out once
    sent, unknown = v.deliveries.get("sent", 0), v.deliveries.get("unknown", 0)
    assert sent + unknown == 80 and unknown <= 1
    assert sent <= v.posts <= sent + unknown and v.repeated_posts == 0


def test_each_role_does_only_its_part(pg_database, tmp_path):
    farm = fleet.Farm(sources=10, entries=5)
    config = farm.config(tmp_path, pg_database)
    collector = fleet.start_worker(config, roles=["collect"])
    deliverer = None
    try:
        assert fleet.wait_for(lambda: fleet.mentions(pg_database) >= 50, 60)
        time.sleep(2)
        assert fleet.verify(pg_database, farm).alerts == 0  # collecting raises no alerts
        deliverer = fleet.start_worker(config, roles=["deliver"])
        assert fleet.wait_for(lambda: fleet.settled(pg_database) >= 10, 60)
    finally:
        fleet.stop([w for w in (collector, deliverer) if w is not None])
    v = fleet.verify(pg_database, farm)
    assert (v.alerts, v.posts, v.sources_fetched_twice) == (10, 10, 0)
