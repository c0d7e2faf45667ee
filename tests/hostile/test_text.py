"""Hostile mention text through the whole path: stored, matched, scored, alerted, rendered."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import regex

from alerts import engine
from alerts.delivery import build_notifiers, deliver_pending
from alerts.render import neutralise
from listener.config import Sentiment, parse_config
from listener.query import parse_query
from sentiment import load_classifier
from tests.history import MODEL, NOW, History, Post, stored_text
from tests.tiny_model import build_tiny_model

ZALGO = "A" + "\u0301\u0336\u0489" * 200 + "cme h̸̡̪̯ͨ͊̽̅̾̎Ȩ̬̩̾͛ͪ̈́̀́͘ ̶̧̨̱̹̭̯ͧ̾ͬC̷̙̲̝͖ͭ̏ͥͮ͟Oͮ͏̮̪̝͍M̲̖͊̒ͪͩͬ̚̚͜Ȇ̴̟̟͙̞ͩ͌͝S"
MEGA = "acme is broken " * 70_000  # ~1 MB


def test_zalgo_and_control_characters_are_neutralised():
    out = neutralise(ZALGO + "\x00\x1b[31m\u202eevil\u202c\u200b")
    assert "\x00" not in out and "\x1b" not in out and "\u202e" not in out
    assert not regex.search(r"\p{M}{4}", out)  # no mark stacks taller than three
    assert "cme" in out and "evil" in out  # readable text survives


def test_a_megabyte_post_is_bounded_everywhere(store, tmp_path):
    start = time.monotonic()
    assert parse_query("acme").matches(MEGA)
    [mid] = History(store).add(Post("negative", timedelta(hours=1), rating=1, text=MEGA))
    clf = load_classifier(Sentiment(model=str(build_tiny_model(tmp_path / "m"))))
    [prediction] = clf.classify([MEGA])  # truncated to the model's length, not crashed
    assert prediction.label in ("negative", "neutral", "positive")
    config = parse_config("brands: [{name: Acme}]\nalerts: [{rule: low_rating}]\n")
    [alert] = engine.evaluate(config, store, MODEL, NOW)
    assert len(alert.message) < 500  # a snippet, not the post
    assert store.latest_mentions(search="broken")[0]["id"] == mid
    assert time.monotonic() - start < 30


def test_notifier_secrets_stay_out_of_logs_when_delivery_fails(store, caplog, monkeypatch):
    monkeypatch.setenv("HOOK_URL", "json://127.0.0.1:9/SECRET-TOKEN-123")
    config = parse_config(
        "brands: [{name: Acme}]\n"
        "notifiers: [{name: hook, url: '${HOOK_URL}'}]\n"
        "alerts: [{rule: low_rating, notify: [hook]}]\n"
    )
    History(store).add(Post("negative", timedelta(hours=1), rating=1))
    caplog.set_level(logging.DEBUG)
    engine.evaluate(config, store, MODEL, NOW)
    sent, errors = deliver_pending(store, build_notifiers(config), now=NOW)
    assert sent == 0 and errors
    assert "SECRET-TOKEN-123" not in caplog.text
    assert "SECRET-TOKEN-123" not in " ".join(errors)
    assert "SECRET-TOKEN-123" not in stored_text(store)
