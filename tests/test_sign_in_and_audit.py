"""Writes from the web need a person signed in (name + token, once), forms carry a CSRF value,
wrong tokens are throttled, and every change (web, API, CLI) is in the audit log, written in
the same transaction as the change itself."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import time_machine
from click.testing import CliRunner

from alerts.inbox import sync_inbox
from listener import changes
from listener.cli import cli
from listener.config import parse_config
from listener.storage import open_store
from listener.web.app import create_app
from listener.web.sessions import Sessions, Throttle, clean_name, local_path
from tests.history import MODEL, NOW, History, Post
from tests.webserver import serve

TOKEN = "sign-in-token"
H = timedelta(hours=1)


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("LISTENER_WEB_TOKEN", TOKEN)


@pytest.fixture
def project(tmp_path, database):
    (tmp_path / "sources.yaml").write_text(
        f"database: {database}\n"
        "brands: [{name: Acme}]\n"
        "sentiment: {model: m, revision: '1', offline: true, backend: transformers}\n"
    )
    config = parse_config(
        (tmp_path / "sources.yaml").read_text(), base_dir=tmp_path, need_notifier_env=False
    )
    store = open_store(database)
    ids = History(store).add(
        Post("negative", 2 * H, text="Late again", author="Aino"),
        Post("negative", 3 * H, rating=1, text="Broken on arrival"),
        Post("positive", 4 * H, rating=5, text="Love it", author="Bo"),
    )
    sync_inbox(config, store, MODEL, NOW)
    store.close()
    return tmp_path, config, database, ids


# ---- sessions, names, redirects, throttling -------------------------------------------------


def test_a_session_names_its_person_until_it_expires_or_the_token_changes(monkeypatch):
    sessions = Sessions("LISTENER_WEB_TOKEN")
    with time_machine.travel(NOW, tick=False):
        cookie = sessions.issue("Mari")
    with time_machine.travel(NOW + 11 * H, tick=False):
        session = sessions.read(cookie)
        assert session is not None and session.name == "Mari" and session.actor == "web:Mari"
        assert sessions.csrf_ok(session, session.csrf)
        assert not sessions.csrf_ok(session, "") and not sessions.csrf_ok(session, "x" * 32)
        assert TOKEN not in cookie
        forged = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
        assert sessions.read(forged) is None
        assert sessions.read(None) is None and sessions.read("x" * 5000) is None
    with time_machine.travel(NOW + 13 * H, tick=False):
        assert sessions.read(cookie) is None  # a working day, then sign in again
    with time_machine.travel(NOW + H, tick=False):
        monkeypatch.setenv("LISTENER_WEB_TOKEN", "rotated")
        assert sessions.read(cookie) is None  # a new token ends every session
        monkeypatch.delenv("LISTENER_WEB_TOKEN")
        assert sessions.read(cookie) is None and not sessions.token_ok(TOKEN)


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("  Mari  Tamm ", "Mari Tamm"),
        ("Мария", "Мария"),
        ("مريم", "مريم"),
        ("", None),
        ("x" * 61, None),
        ("<script>", None),
        ('a"b', None),
        ("a\x00b", None),
    ],
)
def test_sign_in_names(given, shown):
    assert clean_name(given) == shown


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("/inbox?status=open", True),
        ("/mentions", True),
        ("//evil.example/", False),
        ("/\\evil.example", False),
        ("https://evil.example/", False),
        ("javascript:alert(1)", False),
        ("/x\r\nSet-Cookie: a=b", False),
        ("", False),
    ],
)
def test_redirects_only_to_paths_of_this_site(target, allowed):
    assert local_path(target, "/") == (target if allowed else "/")


def test_wrong_tokens_are_throttled_per_client():
    throttle = Throttle(limit=3, window_s=60, clients=2)
    for t in range(3):
        assert throttle.retry_after("a", now=t) == 0
        throttle.failed("a", now=t)
    assert throttle.retry_after("a", now=3) == 58  # until the first failure is a minute old
    assert throttle.retry_after("b", now=3) == 0  # others are not locked out
    assert throttle.retry_after("a", now=61) == 0
    throttle.failed("b", now=4)
    throttle.failed("c", now=5)  # bounded: the oldest client is forgotten
    assert len(throttle._fails) == 2


# ---- the audit log --------------------------------------------------------------------------


def test_a_change_and_its_audit_row_are_one_transaction(store):
    mention_id = History(store).add(Post("negative", H, text="Slow"))[0]
    changes.correct_label(store, mention_id, "positive", "web:Mari", note="sarcasm? no")
    with pytest.raises(KeyError):
        changes.correct_label(store, 999_999, "positive", "web:Mari")
    with pytest.raises(RuntimeError), store.audited("web:Mari", "label", "mention x"):
        store.add_correction(mention_id, "neutral", by="web:Mari")
        raise RuntimeError("the process fails mid-change")
    [row] = store.audit_log()
    assert (row["actor"], row["action"], row["target"]) == (
        "web:Mari",
        "label",
        f"mention {mention_id}",
    )
    assert row["detail"] == {"label": "positive", "note": "sarcasm? no"}
    [correction] = [c for c in store.corrections() if c["mention_id"] == mention_id]
    assert correction["label"] == "positive"  # the failed change left nothing behind


def test_bulk_changes_go_on_past_items_that_cannot_change(project):
    _, _, database, (late, broken, happy) = project
    store = open_store(database)
    try:
        result = changes.bulk(
            store, [late, broken, happy, 424242, late], "web:Mari", status="replied"
        )
        assert result.changed == 2
        assert result.refused_ids == [happy, 424242]  # a happy reviewer is thanked; no such item
        again = changes.bulk(store, [late, broken], "web:Mari", assignee="Mari")
        assert again.changed == 2 and not again.refused
        assert changes.bulk(store, [late], "web:Mari", assignee="Mari").changed == 0
        assert store.inbox_count(assignee="Mari") == 2 and store.inbox_count(assignee="") == 1
        actions = [(a["action"], a["target"]) for a in store.audit_log()]
    finally:
        store.close()
    assert actions == [
        ("assign", f"inbox {broken}"),
        ("assign", f"inbox {late}"),
        ("mark", f"inbox {broken}"),
        ("mark", f"inbox {late}"),
    ]


def test_the_cli_records_who_ran_it(project):
    path, _, _, (late, _, _) = project
    runner = CliRunner()
    conf = ["-c", str(path / "sources.yaml")]
    assert runner.invoke(cli, [*conf, "label", str(late), "neutral"]).exit_code == 0
    assert runner.invoke(cli, [*conf, "inbox", "assign", str(late), "Bo"]).exit_code == 0
    out = runner.invoke(cli, [*conf, "audit"]).output
    lines = out.splitlines()
    assert lines[0].split() == ["at", "actor", "action", "target", "details"]
    assert "cli:" in lines[1] and "assign" in lines[1] and "assignee: Bo" in lines[1]
    assert "label" in lines[2] and "label: neutral" in lines[2]


# ---- over HTTP ------------------------------------------------------------------------------


def test_sign_in_sign_out_and_the_audit_page(project):
    _, config, _, (late, _, _) = project
    with serve(create_app(config)) as base, httpx.Client(base_url=base, timeout=120) as web:
        assert web.get("/audit", follow_redirects=False).headers["location"] == (
            "/signin?next=%2Faudit"
        )
        bad = web.post("/signin", data={"name": "<b>", "token": TOKEN})
        assert bad.status_code == 422 and "give your name" in bad.text
        ok = web.post(
            "/signin",
            data={"name": "Mari", "token": TOKEN, "next": "https://evil.example/"},
            follow_redirects=False,
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/"
        page = web.get(f"/inbox/{late}").text
        assert "Mari" in page and 'name="csrf"' in page
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        assigned = web.post(
            f"/inbox/{late}/assign",
            data={"assignee": "Bo", "csrf": csrf},
            follow_redirects=False,
        )
        assert assigned.status_code == 303
        audit = web.get("/audit").text
        assert "web:Mari" in audit and f"inbox {late}" in audit and "assignee: Bo" in audit
        assert web.post("/signout", data={}).status_code == 403  # not without the form's value
        out = web.post("/signout", data={"csrf": csrf}, follow_redirects=False)
        assert out.status_code == 303 and "listener_session" not in web.cookies
        assert web.get("/audit", follow_redirects=False).status_code == 303


def test_wrong_tokens_lock_an_address_out_for_a_while(project, monkeypatch):
    _, config, _, _ = project
    with serve(create_app(config)) as base, httpx.Client(base_url=base, timeout=120) as web:
        for _ in range(10):
            assert web.post("/signin", data={"name": "x", "token": "guess"}).status_code == 403
        locked = web.post("/signin", data={"name": "x", "token": TOKEN})
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 500
        assert "listener_session" not in web.cookies  # even the right token waits
        monkeypatch.delenv("LISTENER_WEB_TOKEN")
    with serve(create_app(config)) as base, httpx.Client(base_url=base, timeout=120) as web:
        read_only = web.post("/signin", data={"name": "x", "token": TOKEN})
        assert read_only.status_code == 403 and "read-only" in read_only.text
        assert "Sign in" not in web.get("/inbox").text


def test_the_api_writes_with_the_token_and_is_audited_as_api(project):
    _, config, _, (late, broken, happy) = project
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with serve(create_app(config)) as base, httpx.Client(base_url=base, timeout=120) as api:
        assert api.post(f"/api/inbox/{late}/assign?assignee=Bo").status_code == 403
        item = api.post(f"/api/inbox/{late}/assign?assignee=Bo", headers=bearer).json()
        assert item["assignee"] == "Bo"
        assert (
            api.post(f"/api/inbox/{late}/assign?assignee=%3Cb%3E", headers=bearer).status_code
            == 422
        )
        assert api.get("/api/inbox?assignee=Bo").json()[0]["mention_id"] == late
        assert [i["mention_id"] for i in api.get("/api/inbox?assignee=-").json()] == [
            broken,
            happy,
        ]
        label = api.post(f"/api/mentions/{broken}/label?label=neutral", headers=bearer)
        assert label.json() == {"mention_id": broken, "label": "neutral"}
        assert (
            api.post("/api/mentions/999999/label?label=neutral", headers=bearer).status_code == 404
        )
        assert api.get("/api/audit").status_code == 403
        log = api.get("/api/audit", headers=bearer).json()
    assert [(a["actor"], a["action"], a["target"]) for a in log] == [
        ("api", "label", f"mention {broken}"),
        ("api", "assign", f"inbox {late}"),
    ]
