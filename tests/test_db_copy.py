"""`listener db copy`: a SQLite history moved into another database (PostgreSQL in the
run), resumed after an interruption, verified table by table; the copy then works as the
original did."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner

from listener import dbcopy
from listener.cli import cli
from listener.storage import MentionFilter, open_store
from listener.storage.sqlite import SQLiteStorage
from tests.history import MODEL, NOW, History, Post


@pytest.fixture
def history(tmp_path):
    path = tmp_path / "old.db"
    store = SQLiteStorage.open(path)
    h = History(store)
    h.add(
        *(
            Post(label, timedelta(hours=i), rating=1 + i % 5, reach=10 * i, text=f"{text} {i}")
            for i, (label, text) in enumerate(
                [("negative", "Доставка опоздала"), ("positive", "شكرا جزيلا"), ("neutral", "ok")]
                * 7
            )
        )
    )
    store.db["alerts"].insert({"dedupe_key": "k1", "rule": "low_rating", "title": "Acme: 1★"})
    store.db["deliveries"].insert({"alert_id": 1, "channel": "hook", "status": "sent"})
    store.add_correction(3, "negative", by="ana")
    store.close()
    return str(path)


def test_a_history_is_copied_verified_and_usable(history, database):
    result = CliRunner().invoke(cli, ["db", "copy", history, database])
    assert result.exit_code == 0, result.output
    assert "copied and verified" in result.output
    dst = open_store(database)
    try:
        assert dst.db["mentions"].count == 21
        # labels, search in Cyrillic and Arabic, corrections: as on the original
        negatives = dst.mentions_between(
            "Acme",
            *MODEL,
            NOW - timedelta(days=2),
            NOW + timedelta(1),
            MentionFilter(label="negative"),
        )
        assert len(negatives) == 8  # 7 by the model + 1 corrected
        assert len(dst.latest_mentions(search="доставка", limit=50)) == 7
        assert len(dst.latest_mentions(search="شكرا", limit=50)) == 7
        # new rows get new ids after the copied ones
        History(dst, ("new",)).add(Post("negative", timedelta(0), source="new"))
        assert dst.db.execute("SELECT max(id) FROM mentions").fetchone()[0] == 22
    finally:
        dst.close()


def test_an_interrupted_copy_resumes_and_a_changed_one_is_reported(history, database):
    src, dst = open_store(history), open_store(database)
    calls = {"n": 0}

    def crash_after_two_batches(table: str, n: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            dbcopy.copy(src, dst, batch=5, progress=crash_after_two_batches)
        assert 0 < dst.db["mentions"].count < 21
        stored = dbcopy.copy(src, dst, batch=5)
        assert stored["mentions"] == 21 - 5 and stored["sources"] == 0
        assert all(c.same for c in dbcopy.verify(src, dst))
        # written to afterwards: the check says which table differs
        dst.add_correction(5, "positive")
        assert [c.table for c in dbcopy.verify(src, dst) if not c.same] == ["corrections"]
    finally:
        src.close()
        dst.close()
