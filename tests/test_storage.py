from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta

from listener.pipeline import collect_due
from listener.storage import open_store
from listener.storage.sqlite import SQLiteStorage
from listener.storage.sqlite.schema import migrations
from listener.timeutil import utcnow
from tests.conftest import rss

LATER = utcnow() + timedelta(days=1)


def test_migrations_twice_are_a_no_op(tmp_path):
    path = tmp_path / "x.db"
    SQLiteStorage.open(path).close()
    store = SQLiteStorage.open(path)
    assert migrations.pending(store.db) == []
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    applied = store.db.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0]
    migrations.apply(store.db)
    assert store.db.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0] == applied
    store.close()


def _config(make_config, url):
    return make_config(f"""
        brands: [{{name: Acme}}]
        sources: [{{name: feed, type: rss, url: '{url}', brand: Acme}}]
    """)


def _serve_feed(httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(
        rss([{"title": f"acme {i}", "guid": str(i)} for i in range(5)]),
        content_type="application/rss+xml",
        headers={"ETag": '"new"'},
    )


def test_crash_between_fetch_and_commit_keeps_the_old_cursor(
    make_config, store, httpserver, monkeypatch
):
    _serve_feed(httpserver)
    config = _config(make_config, httpserver.url_for("/feed.xml"))
    store.sync_sources(config.sources)
    store.db["sources"].update("feed", {"etag": '"old"'})
    kind = type(store)  # the backend's class: the crash is in its write
    original = kind._upsert_mentions

    def crash(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise RuntimeError("power cut")

    monkeypatch.setattr(kind, "_upsert_mentions", crash)
    [outcome] = collect_due(config, store, now=LATER)
    assert "power cut" in outcome.error  # an error on that source, not a crash of the pass
    assert store.db["mentions"].count == 0
    assert store.db["sources"].get("feed")["etag"] == '"old"'
    assert [r["status"] for r in store.db["fetch_runs"].rows] == ["error"]
    monkeypatch.setattr(kind, "_upsert_mentions", original)
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.counts.new == 5
    assert store.db["sources"].get("feed")["etag"] == '"new"'


def test_process_killed_mid_transaction_loses_nothing_stored(
    tmp_path, make_config, httpserver, database
):
    """SIGKILL inside the write: the database stays consistent and the next run stores it all."""
    _serve_feed(httpserver)
    config_path = tmp_path / "sources.yaml"
    config_path.write_text(
        f"database: {database}\nbrands: [{{name: Acme}}]\n"
        f"sources: [{{name: feed, type: rss, url: '{httpserver.url_for('/feed.xml')}', "
        "brand: Acme}]\n"
    )
    script = textwrap.dedent(f"""
        import os, signal
        from listener.config import load_config
        from listener.pipeline import collect_due
        from listener.storage import open_store
        config = load_config({str(config_path)!r})
        store = open_store(config.database_url())
        original = type(store)._upsert_mentions
        def die(self, *a, **k):
            original(self, *a, **k)
            os.kill(os.getpid(), signal.SIGKILL)
        type(store)._upsert_mentions = die
        store.sync_sources(config.sources)
        collect_due(config, store)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    store = open_store(database)
    assert store.db["mentions"].count == 0
    assert store.db["sources"].get("feed")["etag"] is None
    config = _config(make_config, httpserver.url_for("/feed.xml"))
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.counts.new == 5
    if isinstance(store, SQLiteStorage):
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()


def test_full_text_search_in_cyrillic_and_arabic(store, make_config):
    from listener.storage import MatchedEntry
    from sources.base import Entry, FetchResult, SourceState

    config = make_config("brands: [{name: A}]\nsources: [{name: s, type: rss, url: 'http://x/'}]")
    store.sync_sources(config.sources)
    texts = ["Ёлка от Яндекса сломалась", "الخدمة سيئة جدًا في زين", "Kärkkäinen vastasi nopeasti"]
    entries = [
        Entry(str(i), None, None, "", t, None, None, None, str(i)) for i, t in enumerate(texts)
    ]
    store.save_fetch(
        "s",
        FetchResult(entries, SourceState()),
        [MatchedEntry(e, ("A",)) for e in entries],
        started=utcnow(),
        finished=utcnow(),
        next_due=utcnow(),
    )
    assert [m["text"] for m in store.latest_mentions(search="елка")] == [texts[0]]
    assert [m["text"] for m in store.latest_mentions(search="ЯНДЕКСА")] == [texts[0]]
    assert [m["text"] for m in store.latest_mentions(search="جدا")] == [texts[1]]
    assert [m["text"] for m in store.latest_mentions(search="karkkainen")] == [texts[2]]
    assert [m["text"] for m in store.latest_mentions(search="kärkkäinen")] == [texts[2]]


def test_a_source_that_cannot_be_stored_does_not_stop_the_others(
    make_config, store, httpserver, monkeypatch
):
    _serve_feed(httpserver)
    url = httpserver.url_for("/feed.xml")
    config = make_config(f"""
        brands: [{{name: Acme}}]
        sources:
          - {{name: bad, type: rss, url: '{url}?bad', brand: Acme}}
          - {{name: good, type: rss, url: '{url}', brand: Acme}}
    """)
    store.sync_sources(config.sources)
    original = type(store)._upsert_mentions

    def crash_on_bad(self, source_id, *args, **kwargs):
        if source_id == "bad":
            raise OSError("disk I/O error")
        return original(self, source_id, *args, **kwargs)

    monkeypatch.setattr(type(store), "_upsert_mentions", crash_on_bad)
    outcomes = {o.source: o for o in collect_due(config, store, now=LATER)}
    assert "disk I/O error" in outcomes["bad"].error
    assert outcomes["good"].counts.new == 5
    assert store.db["sources"].get("bad")["consecutive_failures"] == 1
