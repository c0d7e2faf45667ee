"""The web's pool of open stores: reused when a request ends cleanly, never when one failed
or left a transaction or a half-read export open."""

from __future__ import annotations

from datetime import timedelta

import pytest

from listener.storage import ExportFilter, open_store
from listener.storage.pool import StorePool
from tests.history import MODEL, History, Post


@pytest.fixture
def pool(database):
    open_store(database).close()  # created and migrated, as the web app does at start
    p = StorePool(database, keep=2)
    yield p
    p.close()


def test_a_store_given_back_cleanly_serves_the_next_request(pool):
    with pool.take() as first:
        first.sources()
    with pool.take() as second:
        assert second is first
        second.sources()  # still connected


def test_a_failed_request_closes_its_store(pool):
    with pytest.raises(RuntimeError), pool.take() as failed:
        raise RuntimeError("the handler broke")
    with pool.take() as next_one:
        assert next_one is not failed
        next_one.sources()


def test_a_store_left_in_a_transaction_is_not_reused(pool):
    with pool.take() as left:
        left.db.execute("BEGIN")
        assert not left.reusable()
    with pool.take() as next_one:
        assert next_one is not left


def test_a_half_read_export_is_not_handed_on(pool, database):
    store = open_store(database)
    History(store).add(*[Post("negative", timedelta(hours=i)) for i in range(3)])
    store.close()
    with pool.take() as reader:
        batches = reader.export_batches(MODEL, ExportFilter(), 1)
        assert len(next(batches)) == 1
        assert not reader.reusable()  # its read would hold an old snapshot for the next one
        batches.close()  # the client went away mid-download
        assert reader.reusable()
        assert reader.sources()  # and it still answers


def test_at_most_keep_idle_stores_stay_open(pool):
    with pool.take() as a, pool.take() as b, pool.take() as c:
        held = {id(a), id(b), id(c)}
    assert len(held) == 3
    assert len(pool._idle) == 2
