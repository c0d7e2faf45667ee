from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine
from click.testing import CliRunner
from werkzeug import Request, Response

from alerts.delivery import deliver_pending
from alerts.rules import negative_streak
from listener.cli import cli
from listener.pipeline import ClassifierSlot, build_notifiers, process, run_pass
from listener.storage import LabelledMention
from listener.timeutil import parse_iso, utcnow
from sentiment.base import Prediction
from tests.conftest import rss
from tests.tiny_model import build_tiny_model


def lm(i: int, label: str) -> LabelledMention:
    return LabelledMention(
        i, label, f"2026-11-20T10:{i:02d}:00+00:00", f"http://x/{i}", f"title {i}", "text"
    )


def test_streak_fires_when_the_newest_n_are_negative():
    newest = [lm(5, "negative"), lm(4, "negative"), lm(3, "negative")]
    alert = negative_streak("r", "Acme", 3, newest, lm(2, "positive"))
    assert alert is not None
    assert alert.title == "Acme: 3 negative mentions in a row"
    assert alert.mention_ids == [5, 4, 3]
    assert alert.dedupe_key == "r:Acme:after:2"
    assert "http://x/5" in alert.message
    assert alert.evidence["from"] < alert.evidence["to"]


@pytest.mark.parametrize(
    "newest",
    [
        [lm(5, "negative"), lm(4, "neutral"), lm(3, "negative")],
        [lm(5, "negative"), lm(4, "negative")],  # not enough history yet
    ],
)
def test_streak_does_not_fire(newest):
    assert negative_streak("r", "Acme", 3, newest, None) is None


def test_a_growing_streak_keeps_its_key_and_a_new_one_gets_another():
    first = negative_streak("r", "A", 2, [lm(3, "negative"), lm(2, "negative")], lm(1, "positive"))
    grown = negative_streak("r", "A", 2, [lm(4, "negative"), lm(3, "negative")], lm(1, "positive"))
    later = negative_streak("r", "A", 2, [lm(7, "negative"), lm(6, "negative")], lm(5, "neutral"))
    assert first.dedupe_key == grown.dedupe_key != later.dedupe_key


class KeywordClassifier:
    """A stand-in for the model seam: 'bad' -> negative, else positive. Tests alert logic only."""

    name, revision, batch_size = "keyword", "1", 32

    def classify(self, texts):
        return [
            Prediction("negative", {"negative": 1.0, "neutral": 0.0, "positive": 0.0}, -1.0)
            if "bad" in t
            else Prediction("positive", {"negative": 0.0, "neutral": 0.0, "positive": 1.0}, 1.0)
            for t in texts
        ]


@pytest.fixture
def pipeline(make_config, store, httpserver, monkeypatch):
    monkeypatch.setenv("HOOK_URL", f"json://{httpserver.host}:{httpserver.port}/hook")
    items: list[dict[str, str]] = []
    httpserver.expect_request("/feed.xml").respond_with_handler(
        lambda r: Response(rss(items), content_type="application/rss+xml")
    )
    received: list[dict] = []
    hook_status = {"code": 200}

    def hook(request: Request) -> Response:
        if hook_status["code"] == 200:
            received.append(json.loads(request.data))
        return Response("ok", status=hook_status["code"])

    httpserver.expect_request("/hook", method="POST").respond_with_handler(hook)
    config = make_config(f"""
        brands: [{{name: Acme}}]
        sources:
          - {{name: feed, type: rss, kind: social, url: '{httpserver.url_for("/feed.xml")}',
              brand: Acme, interval: 1s}}
        notifiers: [{{name: hook, url: '${{HOOK_URL}}'}}]
        alerts: [{{rule: negative_streak, count: 3, notify: [hook]}}]
    """)
    slot = ClassifierSlot(config, loader=lambda settings: KeywordClassifier())

    def run(*titles: str) -> object:
        items.extend({"title": t, "guid": t} for t in titles)
        store.db.execute("UPDATE sources SET next_due_at = NULL")
        return run_pass(config, store, slot, build_notifiers(config))

    return run, received, hook_status


def test_streak_alert_is_delivered_once_to_a_real_webhook(pipeline, store):
    run, received, _ = pipeline
    report = run("good 1", "bad 1", "bad 2")
    assert report.alerts == [] and received == []
    report = run("bad 3")
    assert len(report.alerts) == 1 and report.delivered == 1
    assert received[0]["title"] == "Acme: 3 negative mentions in a row"
    assert "bad 3" in received[0]["message"]
    report = run("bad 4")  # same streak, longer: no second alert
    assert report.alerts == [] and len(received) == 1
    run("good 2")
    report = run("bad 5", "bad 6", "bad 7")  # a new streak fires again
    assert len(report.alerts) == 1 and len(received) == 2
    assert store.db["alerts"].count == 2


def test_failed_delivery_is_retried_later_and_sent_once_when_the_endpoint_is_back(pipeline, store):
    run, received, hook_status = pipeline
    hook_status["code"] = 500
    start = utcnow().replace(microsecond=0)  # stored times are to the second
    with time_machine.travel(start, tick=False):
        report = run("bad 1", "bad 2", "bad 3")
        assert len(report.alerts) == 1 and report.delivered == 0 and report.delivery_errors
        assert store.db["deliveries"].get((1, "hook"))["status"] == "pending"
        hook_status["code"] = 200
        assert run().delivered == 0  # backing off: not retried in the very next pass
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        report = run()
        assert report.delivered == 1 and len(received) == 1
        assert run().delivered == 0 and len(received) == 1
    row = store.db["deliveries"].get((1, "hook"))
    assert (row["status"], row["attempts"]) == ("sent", 2)


def test_a_dead_channel_is_tried_once_per_pass_backs_off_and_is_given_up_after_a_day(
    make_config, store, httpserver, tmp_path, database
):
    from alerts.delivery import GIVE_UP_AFTER

    httpserver.expect_request("/hook", method="POST").respond_with_data("down", status=503)
    yaml_path = tmp_path / "sources.yaml"
    yaml_path.write_text(
        f"database: {database}\nbrands: [{{name: A}}]\n"
        f"notifiers: [{{name: hook, url: 'json://{httpserver.host}:"
        f"{httpserver.port}/hook'}}]\n"
    )
    channels = build_notifiers(make_config(yaml_path.read_text()))
    start = utcnow().replace(microsecond=0)  # stored times are to the second
    for n in (1, 2, 3):
        alert = negative_streak(f"r{n}", "A", 1, [lm(n, "negative")], None)
        assert store.add_alert(alert, ["hook"], start)
    sent, errors = deliver_pending(store, channels, now=start)
    assert sent == 0 and len(errors) == 1  # one timeout for the channel, not three
    assert len(httpserver.log) == 1
    attempts = [store.db["deliveries"].get((i, "hook"))["attempts"] for i in (1, 2, 3)]
    assert attempts == [1, 0, 0]
    # keep failing: the waits double (1, 2, 4 ... min) up to an hour
    now, waits = start, []
    while store.db["deliveries"].get((1, "hook"))["status"] == "pending":
        due = store.db["deliveries"].get((1, "hook"))["next_attempt_at"]
        waits.append(parse_iso(due) - now)
        now = parse_iso(due)
        deliver_pending(store, channels, now=now - timedelta(seconds=1))  # not yet due
        row = store.db["deliveries"].get((1, "hook"))
        assert row["attempts"] == len(waits)
        deliver_pending(store, channels, now=now)
    assert waits[:4] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert max(waits) == timedelta(hours=1)
    assert 20 < (now - start).total_seconds() / 3600 < 30  # about a day of trying
    row = store.db["deliveries"].get((1, "hook"))
    assert (row["status"], row["attempts"]) == ("failed", GIVE_UP_AFTER)
    assert "503" in row["last_error"]
    # `listener alerts` shows it; `listener alerts retry 1` queues it again
    out = CliRunner().invoke(cli, ["-c", str(yaml_path), "alerts"]).output
    assert "hook:failed" in out
    result = CliRunner().invoke(cli, ["-c", str(yaml_path), "alerts", "retry", "1"])
    assert result.exit_code == 0 and "1 delivery queued again" in result.output
    row = store.db["deliveries"].get((1, "hook"))
    assert (row["status"], row["next_attempt_at"]) == ("pending", None)


def test_interrupted_send_is_never_repeated(pipeline, store):
    run, received, hook_status = pipeline
    hook_status["code"] = 500
    run("bad 1", "bad 2", "bad 3")
    # as if a worker on another machine died right after claiming
    now = utcnow()
    assert store.claim_delivery(1, "hook", "elsewhere:1:ab", now + timedelta(seconds=60))
    assert store.recover_deliveries(now) == 0  # it may still be sending: left alone
    assert store.recover_deliveries(now + timedelta(seconds=61)) == 1  # its lease lapsed
    hook_status["code"] = 200
    assert run().delivered == 0 and received == []
    assert store.db["deliveries"].get((1, "hook"))["status"] == "unknown"


def test_unavailable_model_leaves_mentions_unscored_until_it_loads(
    make_config, store, httpserver, tmp_path
):
    httpserver.expect_request("/feed.xml").respond_with_data(
        rss([{"title": "acme good", "guid": "1"}, {"title": "acme bad", "guid": "2"}]),
        content_type="application/rss+xml",
    )
    model_dir = tmp_path / "model"
    config = make_config(f"""
        brands: [{{name: Acme}}]
        sources: [{{name: feed, type: rss, kind: social, url: '{httpserver.url_for("/feed.xml")}',
                    brand: Acme}}]
        alerts: [{{rule: negative_streak, count: 2}}]
        sentiment: {{model: '{model_dir}', backend: transformers}}
    """)
    slot = ClassifierSlot(config)
    report = run_pass(config, store, slot)
    assert report.new == 2 and report.scored == 0
    assert str(model_dir) in report.model_error
    build_tiny_model(model_dir, force="negative")
    slot._failed_at = None  # the retry interval has passed
    report = process(config, store, slot, build_notifiers(config))
    assert report.scored == 2 and report.model_error is None
    assert [a.title for a in report.alerts] == ["Acme: 2 negative mentions in a row"]
    scores = list(store.db.query("SELECT model, revision, label FROM scores"))
    assert scores == [{"model": str(model_dir), "revision": "local", "label": "negative"}] * 2


def test_console_channel_prints_the_alert(make_config, store, capsys):
    config = make_config("brands: [{name: A}]")
    alert = negative_streak("r", "A", 1, [lm(1, "negative")], None)
    assert store.add_alert(alert, ["console"], utcnow() - timedelta(seconds=1))
    assert not store.add_alert(alert, ["console"])  # same key: refused
    assert deliver_pending(store, build_notifiers(config)) == (1, [])
    assert "A: 1 negative mention in a row" in capsys.readouterr().out


def test_known_alerts_names_only_stored_keys(store):
    """The alert pass skips candidates whose key is stored; a wrong answer would either resend
    (key missed) or silence a new alert (key invented)."""
    stored = [negative_streak(f"r{i}", "A", 1, [lm(i, "negative")], None) for i in range(1, 602)]
    for alert in stored:
        assert store.add_alert(alert, ["console"])
    new = negative_streak("fresh", "A", 1, [lm(9999, "negative")], None)
    keys = [a.dedupe_key for a in stored] + [new.dedupe_key, stored[0].dedupe_key]
    assert store.known_alerts(keys) == {a.dedupe_key for a in stored}  # 601 keys: chunked
    assert store.known_alerts([]) == set()
