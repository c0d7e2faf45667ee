"""The storage seam: backends chosen by the `database:` setting, filter objects instead of SQL,
and the storage errors callers catch."""

from __future__ import annotations

from datetime import timedelta

import pytest

from listener.query import QuerySyntaxError
from listener.storage import (
    InvalidSearchQuery,
    MentionFilter,
    NotFound,
    UnknownBackend,
    backend_of,
    describe,
    open_store,
    scheduler_lock,
)
from listener.storage.sqlite import SQLiteStorage
from tests.history import MODEL, NOW, History, Post


def test_a_path_and_a_sqlite_url_open_the_same_file(tmp_path):
    path = tmp_path / "l.db"
    open_store(path).close()
    store = open_store(f"sqlite:///{path}")  # absolute: four slashes in all
    assert isinstance(store, SQLiteStorage)
    assert store.db.execute("PRAGMA database_list").fetchone()[2] == str(path)
    store.close()
    assert backend_of("data/l.db") == ("sqlite", "data/l.db")
    assert backend_of("sqlite:///data/l.db") == ("sqlite", "data/l.db")
    assert backend_of(r"C:\data\l.db") == ("sqlite", r"C:\data\l.db")


def test_an_unknown_database_scheme_is_refused_by_name():
    with pytest.raises(UnknownBackend, match=r"'mysql'.*known: postgres, postgresql, sqlite"):
        open_store("mysql://u@127.0.0.1/l")


def _history(store):
    h = History(store)
    h.add(
        Post("negative", timedelta(hours=1), rating=1, reach=50),
        Post("negative", timedelta(hours=2), reach=5000),
        Post("positive", timedelta(hours=3), rating=5),
        Post("neutral", timedelta(hours=4), rating=2),
        Post("negative", timedelta(days=3), reach=9000),  # outside the window
    )
    return h


def _between(store, where=None):
    return store.mentions_between("Acme", *MODEL, NOW - timedelta(days=1), NOW, where)


def test_mention_filters_select_what_rules_ask_for(store):
    _history(store)
    assert len(_between(store)) == 4
    assert [m.label for m in _between(store, MentionFilter(label="negative"))] == [
        "negative",
        "negative",
    ]
    assert [m.reach for m in _between(store, MentionFilter(label="negative", min_reach=1000))] == [
        5000
    ]
    # lowest rating first; unrated mentions are left out once ratings are asked for
    rated = _between(store, MentionFilter(rated=True, order="lowest_rating"))
    assert [m.rating for m in rated] == [1, 2, 5]
    assert [m.rating for m in _between(store, MentionFilter(max_rating=2))] == [1, 2]
    assert len(_between(store, MentionFilter(limit=1))) == 1


def test_storage_errors_are_the_ones_callers_already_catch(store):
    with pytest.raises(NotFound, match="no mention with id 99") as missing:
        store.add_correction(99, "negative")
    assert isinstance(missing.value, KeyError)
    with pytest.raises(InvalidSearchQuery, match="column") as bad:
        store.latest_mentions(search='acme AND ("refund')
    assert isinstance(bad.value, QuerySyntaxError)


def test_logs_show_a_database_url_without_its_password():
    assert describe("postgresql://app:s3cret@db.example.com:5432/l") == (
        "postgresql://app:***@db.example.com:5432/l"
    )
    assert describe("postgresql://app@db/l") == "postgresql://app@db/l"


def test_one_scheduler_per_sqlite_file_and_many_workers_on_postgresql(database, backend):
    first, second = scheduler_lock(database), scheduler_lock(database)
    if backend == "postgresql":
        assert first is None and second is None  # leases keep workers apart instead
        return
    assert first is not None and second is not None
    assert first.acquire(timeout=0)
    assert not second.acquire(timeout=0.3)  # a second `listener run` waits
    first.release()
    assert second.acquire(timeout=5)
    second.release()
