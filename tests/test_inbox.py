"""The owners' inbox through the CLI, on a frozen clock: items appear, drafts come in the
mention's language, marking works, overdue items raise one alert, metrics add up."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine
from click.testing import CliRunner

from alerts.inbox import draft, inbox_kind, response_metrics
from listener.cli import cli
from listener.config import InboxSettings
from listener.storage import open_store
from tests.history import MODEL, NOW, History, Post

H = timedelta(hours=1)


@pytest.fixture
def project(tmp_path, database):
    (tmp_path / "sources.yaml").write_text(
        f"database: {database}\n"
        "brands: [{name: Acme}]\n"
        "alerts: [{rule: overdue}]\n"
        "sentiment: {model: m, revision: '1', offline: true, backend: transformers}\n"
        "inbox:\n  reply_within: 24h\n  templates:\n"
        "    reply: {en: 'Sorry {author}! {brand} will fix it.'}\n"
    )
    store = open_store(database)
    hist = History(store)
    ids = hist.add(
        Post("negative", 2 * H, text="Toimitus myöhässä taas", language="fi", author="Aino"),
        Post("positive", 3 * H, rating=5, text="Love it", language="en", author="Bo"),
        Post("negative", 30 * H, rating=1, text="Never again", language="en"),
        Post("neutral", H, text="Store opens at 9"),
        Post("negative", 20 * 24 * H, text="ancient history"),
    )
    store.close()
    return tmp_path, ids


def cli_at(project, when, *args):
    with time_machine.travel(when, tick=False):
        return CliRunner().invoke(
            cli, ["-c", str(project / "sources.yaml"), *args], catch_exceptions=False
        )


def test_inbox_flow(project):
    path, (fi, happy, angry, _neutral, _old) = project
    # a pass with no sources still keeps the inbox and alerts current
    out = cli_at(path, NOW, "collect", "--once").output
    assert "1 alerts" in out  # the 1-star review posted 30 h ago is already overdue
    items = json.loads(cli_at(path, NOW, "inbox", "--json").stdout)
    assert [(i["mention_id"], i["kind"]) for i in items] == [
        (angry, "reply"),
        (fi, "reply"),
        (happy, "thank"),
    ]  # oldest due first
    assert items[0]["due"].startswith("LATE") and items[1]["waiting"] == "2 h"

    show = cli_at(path, NOW, "inbox", "show", str(fi)).output
    assert "Toimitus myöhässä taas" in show
    assert "Draft (fi), not sent" in show and "Hei Aino" in show
    assert "Answer here: https://example.com/" in show
    assert (
        "Sorry there! Acme will fix it." in cli_at(path, NOW, "inbox", "show", str(angry)).output
    )  # edited template

    overdue = json.loads(cli_at(path, NOW, "inbox", "--overdue", "--json").stdout)
    assert [i["mention_id"] for i in overdue] == [angry]
    assert "marked" not in cli_at(path, NOW, "inbox", "assign", str(fi), "maria").output
    assert (
        "replied by maria"
        in cli_at(path, NOW + H, "inbox", "mark", str(fi), "replied", "--by", "maria").output
    )
    cli_at(path, NOW + H, "inbox", "mark", str(happy), "thanked")
    left = json.loads(cli_at(path, NOW + H, "inbox", "--json").stdout)
    assert [i["mention_id"] for i in left] == [angry]

    # the next day the Finnish item is not overdue (it was answered); nothing alerts twice
    out = cli_at(path, NOW + 30 * H, "collect", "--once").output
    assert "0 alerts" in out
    stats = cli_at(path, NOW + 30 * H, "inbox", "stats").output
    assert "median_hours_to_reply  3.0" in stats
    assert "share_within_target    0.5" in stats
    assert "share_thanked          1.0" in stats
    result = CliRunner().invoke(
        cli, ["-c", str(path / "sources.yaml"), "inbox", "mark", "9999", "replied"]
    )
    assert result.exit_code == 1 and "no inbox item for mention 9999" in result.output


@pytest.mark.parametrize(
    ("label", "text_label", "score", "rating", "review", "expected"),
    [
        ("negative", "negative", -0.9, None, False, ("reply", False)),
        ("neutral", "neutral", 0.0, 2, False, ("reply", False)),
        ("positive", "positive", 0.9, None, False, ("thank", False)),
        ("positive", "positive", 0.3, None, False, (None, False)),  # not confidently positive
        ("positive", "positive", 0.9, None, True, (None, False)),  # the model is unsure
        ("neutral", "neutral", 0.0, 3, False, (None, False)),
        ("positive", "positive", 0.9, 5, False, ("thank", False)),
        ("neutral", "neutral", 0.1, 4, False, ("thank", False)),  # 4 stars, words not negative
        # 5 stars and "charged me twice": fused to neutral, but the words complain
        ("neutral", "negative", -0.8, 5, False, ("reply", True)),
    ],
)
def test_what_enters_the_inbox(label, text_label, score, rating, review, expected):
    assert (
        inbox_kind(label, score, rating, 0.6, text_label=text_label, needs_review=review)
        == expected
    )


def test_a_correction_decides_the_inbox_kind():
    assert inbox_kind("positive", -0.5, None, 0.6, text_label="negative", corrected="positive") == (
        "thank",
        False,
    )
    assert inbox_kind("negative", 0.9, 5, 0.6, text_label="positive", corrected="negative") == (
        "reply",
        False,
    )


@pytest.mark.parametrize("lang", ["en", "bg", "et", "fi", "ar", "ru"])
def test_drafts_exist_in_every_language_we_promise(lang):
    templates = InboxSettings().all_templates()
    for kind in ("reply", "thank"):
        used, text = draft(kind, lang, "Nadia", "Acme", templates)
        assert used == lang and "Nadia" in text and "Acme" in text
    assert draft("reply", "xx", None, "Acme", templates)[1].startswith("Hi there")


def test_template_with_unknown_placeholder_is_a_config_error():
    with pytest.raises(ValueError, match="unknown placeholder"):
        InboxSettings(templates={"reply": {"en": "Hi {name}"}})


def test_response_metrics_on_known_items():
    iso = lambda d: (NOW + d).isoformat()  # noqa: E731
    items = [
        {
            "kind": "reply",
            "status": "replied",
            "posted_at": iso(-10 * H),
            "due_at": iso(14 * H),
            "closed_at": iso(-8 * H),
        },
        {
            "kind": "reply",
            "status": "replied",
            "posted_at": iso(-40 * H),
            "due_at": iso(-16 * H),
            "closed_at": iso(-4 * H),
        },
        {
            "kind": "reply",
            "status": "open",
            "posted_at": iso(-30 * H),
            "due_at": iso(-6 * H),
            "closed_at": None,
        },
        {
            "kind": "thank",
            "status": "thanked",
            "posted_at": iso(-3 * H),
            "due_at": iso(69 * H),
            "closed_at": iso(-H),
        },
        {
            "kind": "thank",
            "status": "open",
            "posted_at": iso(-3 * H),
            "due_at": iso(69 * H),
            "closed_at": None,
        },
    ]
    m = response_metrics(items, NOW)
    assert m["median_hours_to_reply"] == 19.0  # 2 h and 36 h
    assert m["share_within_target"] == round(1 / 3, 4)  # 1 on time of 3 that are due
    assert m["share_thanked"] == 0.5 and m["open_overdue"] == 1


def test_only_recent_labelled_mentions_are_inbox_candidates(project, database):
    _, ids = project
    store = open_store(database)
    found = {r["id"] for r in store.inbox_candidates(MODEL, NOW - 14 * 24 * H)}
    assert found == set(ids[:4])  # not the 20-day-old one
    store.close()
