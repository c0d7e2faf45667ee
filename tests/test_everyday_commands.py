"""A newcomer's everyday commands, through the CLI: search in the brand query language, fixed
CSV columns, read-only commands without notifier secrets, models asked for by name, brands
in any case, validate, inbox marks and retries that say what happened, empty states, progress
bars only on a terminal."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from listener.cli import cli
from listener.config import parse_config
from listener.storage import open_store
from listener.timeutil import utcnow
from listener.web.app import create_app
from tests.history import MODEL, History, Post
from tests.tiny_model import build_tiny_model
from tests.webserver import http, serve

H = timedelta(hours=1)
TEXTS = [
    ("negative", "Zentra: it's broken again, I want my money back"),
    ("negative", "Zentra sent the e-mail twice and charged twice"),
    ("positive", "Zentra Arena tickets were easy to buy"),
    ("negative", "Зентру не дозвониться, поддержка Зентры молчит"),
    ("positive", "このアプリは最高です Zentra"),
    ("negative", "والزنترا لا تعمل منذ أمس Zentra"),
    ("positive", "Zentra works"),  # from the app store source, rated 5
]


@pytest.fixture
def project(tmp_path, monkeypatch, database):
    monkeypatch.delenv("TEAM_HOOK", raising=False)
    config = tmp_path / "sources.yaml"
    config.write_text(
        f"database: {database}\n"
        "brands:\n  - {name: Zentra, competitors: [Globex]}\n  - {name: Globex}\n"
        "notifiers: [{name: team, url: '${TEAM_HOOK}'}]\n"
        "alerts: [{rule: negative_streak, count: 2, notify: [team]}]\n"
        "sentiment: {model: m, revision: '1'}\n"
    )
    store = open_store(database)
    History(store, sources=("general",), tied={"app": "Zentra"}).add(
        *[
            Post(label, i * H, source="general", brand="Zentra", text=text, title="")
            for i, (label, text) in enumerate(TEXTS[:6])
        ],
        Post("positive", 7 * H, source="app", brand="Zentra", rating=5, text=TEXTS[6][1], title=""),
    )
    store.db.execute("UPDATE sources SET last_run_at = '2026-11-20T00:00:00+00:00'")
    store.close()
    return tmp_path


def invoke(project: Path, *args: str):
    return CliRunner().invoke(cli, ["-c", str(project / "sources.yaml"), *args])


def found(project: Path, query: str) -> list[str]:
    result = invoke(project, "mentions", "--json", "--search", query)
    assert result.exit_code == 0, result.output
    return [json.loads(line)["text"] for line in result.stdout.splitlines()]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("it's", [0]),  # was: fts5 syntax error
        ("e-mail", [1]),  # was: no such column: mail
        ("zentra -arena", [0, 1, 4, 5, 6]),  # was: no such column
        ('"money back" OR tickets', [0, 2]),
        ("charged AND twice", [1]),
        ("зентр*", [3]),  # inflected forms, as brand queries match them
        ("アプリ", [4]),  # inside a Japanese sentence (no spaces between words)
        ("زنترا", [5]),  # with the Arabic proclitics وال
        ("NOT", []),
    ],
)
def test_search_takes_the_brand_query_language(project, query, expected):
    if query == "NOT":
        result = invoke(project, "mentions", "--search", "NOT")
        assert result.exit_code == 2 and "--search 'NOT'" in result.output
        assert "Traceback" not in result.output
        return
    assert sorted(found(project, query)) == sorted(TEXTS[i][1] for i in expected)


def test_search_errors_are_messages_in_the_web_too(project):
    config = parse_config(
        (project / "sources.yaml").read_text(), base_dir=project, need_notifier_env=False
    )
    with serve(create_app(config)) as base:
        api = http.get(base + "/api/mentions", params={"q": '"unterminated'})
        assert api.status_code == 400 and "unterminated quote" in api.json()["detail"]
        page = http.get(base + "/search", params={"q": '"unterminated'})
        assert page.status_code == 200 and "Not a valid search: unterminated quote" in page.text
        hits = http.get(base + "/api/mentions", params={"q": "it's"}).json()
        assert [h["text"] for h in hits] == [TEXTS[0][1]]


def test_metrics_csv_has_the_same_columns_on_every_row(project):
    result = invoke(project, "metrics", "--by", "source", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert len(rows) >= 3 and len({len(r) for r in rows}) == 1
    assert "csat" in rows[0] and "satisfied" not in rows[0]


def test_read_only_commands_need_no_notifier_secret(project):
    for args in (
        ["mentions"],
        ["inbox"],
        ["metrics"],
        ["export", "--format", "jsonl"],
        ["sources"],
        ["alerts"],
        ["drivers", "--brand", "Zentra"],
    ):
        result = invoke(project, *args)
        assert result.exit_code == 0, (args, result.output)
    for args in (["collect", "--once"], ["alerts", "test"], ["validate"]):
        result = invoke(project, *args)
        assert result.exit_code == 2, (args, result.output)
        assert "notifiers[0].url: environment variable TEAM_HOOK is not set" in result.output


def test_brands_match_in_any_case_and_unknown_ones_are_errors(project):
    lower = invoke(project, "mentions", "--json", "--brand", "zentra")
    assert lower.exit_code == 0 and len(lower.stdout.splitlines()) == 7
    drivers = invoke(project, "drivers", "--brand", "ZENTRA")
    assert drivers.exit_code == 0
    for args in (["mentions", "--brand", "Zentr"], ["drivers", "--brand", "acme"]):
        result = invoke(project, *args)
        assert result.exit_code == 2
        assert "no brand named" in result.output and "(have: Zentra, Globex)" in result.output


def test_validate_takes_a_path_and_reports_references_with_schema_errors(tmp_path):
    bad = tmp_path / "other.yaml"
    bad.write_text(
        "brands:\n  - {name: A, competitors: [Nope]}\n"
        "sources:\n  - {name: s, type: rss, url: 'http://x.example/f', interval: soon}\n"
        "alerts:\n  - {rule: negative_streak, notify: [slack]}\n"
    )
    result = CliRunner().invoke(cli, ["validate", str(bad)])
    assert result.exit_code == 2
    out = result.output
    assert "other.yaml:4: sources[0].interval: 'soon' is not a duration" in out
    assert "other.yaml:2: brands[0].competitors[0]: no brand named 'Nope'" in out
    assert "other.yaml:6: alerts[0].notify[0]: no notifier named 'slack'" in out
    good = tmp_path / "good.yaml"
    good.write_text("brands: [{name: A}]\n")
    ok = CliRunner().invoke(cli, ["validate", str(good)])
    assert ok.exit_code == 0 and "good.yaml: ok (1 brands" in ok.output


def test_a_model_asked_for_by_name_is_used_or_fails_loudly(project, tmp_path):
    missing = invoke(project, "rescore", "--model", str(tmp_path / "nonexistent" / "dir"))
    assert missing.exit_code == 1
    assert "no such directory" in missing.output and "offline model" not in missing.output
    config = project / "sources.yaml"
    config.write_text(config.read_text().replace("model: m,", "model: cardifnlp/typo-model,"))
    typo = invoke(project, "model", "info")
    assert typo.exit_code == 1
    assert "cardifnlp/typo-model" in typo.output and "not in the local cache" in typo.output
    tiny = build_tiny_model(tmp_path / "tiny", force="negative")
    ok = invoke(project, "rescore", "--model", str(tiny))
    assert ok.exit_code == 0 and "scored 7 mentions" in ok.output
    assert "\r" not in ok.output and "it/s" not in ok.output  # no progress bar when captured


def test_progress_bar_on_a_terminal(project, tmp_path):
    tiny = build_tiny_model(tmp_path / "tiny", force="negative")
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "listener.cli",
            "-c",
            str(project / "sources.yaml"),
            "rescore",
            "--model",
            str(tiny),
        ],
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "120"},
    )
    os.close(follower)
    shown = b""
    while chunk := _read(leader):
        shown += chunk
    os.close(leader)
    assert done.returncode == 0 and "scored 7 mentions" in done.stdout
    assert b"scoring with" in shown and b"7/7" in shown


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # the terminal's other end is closed: everything was read
        return b""


def test_inbox_marks_say_what_happened(project, database):
    store = open_store(database)
    item = store.db.execute(
        "SELECT m.id FROM mentions m WHERE m.text LIKE 'Zentra: it''s broken%'"
    ).fetchone()[0]
    from alerts.inbox import sync_inbox

    config = parse_config(
        (project / "sources.yaml").read_text(), base_dir=project, need_notifier_env=False
    )
    sync_inbox(config, store, MODEL, utcnow())
    store.close()
    thanked = invoke(project, "inbox", "mark", str(item), "thanked")
    assert thanked.exit_code == 1
    assert "is a complaint to answer (reply): mark it replied or ignored" in thanked.output
    assert (
        "replied by ana"
        in invoke(project, "inbox", "mark", str(item), "replied", "--by", "ana").output
    )
    again = invoke(project, "inbox", "mark", str(item), "ignored")
    assert again.exit_code == 0
    assert f"#{item}: replied -> ignored (it had been marked replied by ana on " in again.output
    same = invoke(project, "inbox", "mark", str(item), "ignored")
    assert "was already ignored; nothing changed" in same.output


def test_retry_on_a_pending_delivery_says_when_it_goes(project, database):
    store = open_store(database)
    store.db.execute(
        "INSERT INTO alerts (id, dedupe_key, rule, rule_id, scope, brand, title, message, "
        "evidence, mention_ids, created_at) VALUES (1, 'k', 'negative_streak', 'n', 'Zentra', "
        "'Zentra', 't', 'm', '{}', '[]', '2026-11-20T00:00:00+00:00')"
    )
    store.db.execute(
        "INSERT INTO deliveries (alert_id, channel, status, attempts, next_attempt_at, "
        "last_error) VALUES (1, 'team', 'pending', 3, '2026-11-20T10:04:00+00:00', 'HTTP 503')"
    )
    store.close()
    result = invoke(project, "alerts", "retry", "1")
    assert result.exit_code == 0
    assert "0 deliveries queued again" in result.output
    assert (
        "alert 1 to team: pending, already retrying on its own (3 attempts so far, next try "
        "2026-11-20T10:04 UTC; last error: HTTP 503)"
    ) in result.output
    assert invoke(project, "alerts", "retry", "99").exit_code == 1


def test_empty_views_say_why(tmp_path, httpserver, database):
    httpserver.expect_request("/down.xml").respond_with_data("no", status=503)
    config = tmp_path / "sources.yaml"
    config.write_text(
        f"database: {database}\n"
        "brands: [{name: Zentra}]\n"
        f"sources: [{{name: down, type: rss, url: '{httpserver.url_for('/down.xml')}', "
        "brand: Zentra}]\nsentiment: {model: m, revision: '1'}\n"
    )
    run = lambda *a: CliRunner().invoke(cli, ["-c", str(config), *a])  # noqa: E731
    first = run("mentions")
    assert first.exit_code == 0
    assert "no mentions; nothing collected yet: `listener collect --once`" in first.output
    assert run("collect", "--once").exit_code == 1
    for args, empty in (
        (["mentions"], "no mentions"),
        (["alerts"], "no alerts have fired"),
        (["inbox"], "no open inbox items"),
    ):
        out = run(*args).output
        assert f"{empty}; 1 of 1 sources are failing: `listener sources` says why" in out


def test_tune_head_scores_the_current_head_out_of_fold_where_it_was_trained():
    from sentiment.heads import cross_validated, load_head, predict
    from sentiment.labelled import public
    from sentiment.tuning import _current_fairly

    examples = public()[:120] + [
        e.__class__(e.language, e.label, e.text, "corrections") for e in public()[120:160]
    ]
    emb = np.random.default_rng(0).normal(size=(len(examples), 384)).astype(np.float32)
    head = load_head("listener-1")
    assert set(head.spec["examples"]) == {"arsarcasm", "et-valence"}
    labels = _current_fairly("listener-1", emb, examples)
    redone = cross_validated(
        emb[:120],
        [e.label for e in examples[:120]],
        [e.language for e in examples[:120]],
        l2=head.spec["l2"],
        blend_with=head.spec["blend_with"],
    )
    assert labels[:120] == redone  # re-trained without each fold: not scored in-sample
    assert labels[120:] == predict(head, emb[120:])  # never trained on: the head as it is
