"""Replies posted where the mention was written: approved by a person (or auto_reply), sent
once, recorded with the platform's answer, the item closed at the platform's time.

Mastodon is replayed from real recordings of Mastodon.py's test suite (halcy/Mastodon.py, MIT,
commit b9f2eff, `tests/cassettes/mastodon/`): the mention comes from a recorded notifications
answer, and each POST /api/v1/statuses is answered with the recorded answer to a real reply.
The server honours Idempotency-Key as Mastodon does (the same key gives back the same status).
Bluesky's server is built from the AT Protocol's lexicons (createSession, createRecord,
getRecord: no recording of a write exists), marked so below.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from werkzeug import Request, Response

from alerts import replies
from listener.pipeline import collect_due, reply_pass
from listener.storage import FeedFilter, ReplyBusy
from listener.timeutil import utcnow
from listener.workers import Worker
from sources.base import ReplyAttempt, ReplyTarget
from sources.bluesky import BlueskyCollector, BlueskySource, record_key, reply_record

CASSETTES = Path(__file__).parent / "cassettes" / "mastodon"
FIXTURES = Path(__file__).parent / "fixtures" / "bluesky"
LATER = utcnow() + timedelta(days=1)


def recorded(cassette: str, method: str, path: str, nth: int = 0) -> str:
    doc = yaml.safe_load((CASSETTES / f"{cassette}.yaml").read_text(encoding="utf-8"))
    found = [
        i["response"]["body"]["string"]
        for i in doc["interactions"]
        if i["request"]["method"] == method and i["request"]["uri"].split("?")[0].endswith(path)
    ]
    return str(found[nth])


REPLY_ANSWER = json.loads(recorded("test_status_reply", "POST", "/api/v1/statuses", nth=1))


class Instance:
    """A Mastodon instance answering with recorded bodies; statuses are created once per
    Idempotency-Key. `hold` makes the next POST wait (to kill the sender mid-send)."""

    def __init__(self) -> None:
        self.posts: list[Request] = []
        self.created: dict[str, dict] = {}
        self.answer: tuple[int, str] | None = None  # a forced answer: (status, body)
        self.hold = threading.Event()
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.elsewhere: list[dict] = []  # replies made outside listener

    def handle(self, request: Request) -> Response:
        if request.headers.get("Authorization") != "Bearer token-1":
            return Response('{"error": "The access token is invalid"}', status=401)
        if request.path == "/api/v1/notifications":
            body = recorded("test_notifications_mentions_only", "GET", "/api/v1/notifications")
            after = request.args.get("min_id")
            items = [i for i in json.loads(body) if after is None or int(i["id"]) > int(after)]
            return Response(json.dumps(items), content_type="application/json")
        if request.method == "POST" and request.path == "/api/v1/statuses":
            self.posts.append(request)
            form = dict(request.form)
            if self.answer is not None:
                return Response(self.answer[1], status=self.answer[0])
            key = request.headers.get("Idempotency-Key", "")
            status = self.created.get(key)
            if status is None:  # as Mastodon: a new status, unless this key made one
                status = dict(REPLY_ANSWER, in_reply_to_id=form.get("in_reply_to_id"))
                self.created[key] = status
            if self.hold.is_set():
                self.arrived.set()
                self.release.wait(60)  # the sender is killed meanwhile
            return Response(json.dumps(status), content_type="application/json")
        if request.path == "/api/v1/accounts/verify_credentials":
            body = recorded("test_status_reply", "GET", "/api/v1/accounts/verify_credentials")
            return Response(body, content_type="application/json")
        if request.path.endswith("/context"):
            # The shape of the recorded context answer (test_status_context), holding the
            # recorded reply when the team answered from its own app.
            status_id = request.path.split("/")[-2]
            later = [dict(r, in_reply_to_id=status_id) for r in self.elsewhere]
            doc = {"ancestors": [], "descendants": later}
            return Response(json.dumps(doc), content_type="application/json")
        return Response("[]", content_type="application/json")


@pytest.fixture
def instance(httpserver, monkeypatch):
    server = Instance()
    httpserver.expect_request("").respond_with_handler(server.handle)
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", "token-1")
    return httpserver.url_for("").rstrip("/"), server


def mastodon_config(make_config, base: str, extra: str = ""):
    return make_config(
        "brands: [{name: Acme, query: mastodonpy_test}]\n"
        f"sources: [{{name: masto, type: mastodon, instance: '{base}', mentions: true{extra}}}]\n"
    )


def collected_item(config, store, kind: str = "reply", mixed: bool = False) -> int:
    """Collect the recorded mention and make it an inbox item (as sync_inbox would after
    scoring, which these tests do not need)."""
    store.sync_sources(config.sources)
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.error is None, outcome.error
    [row] = store.mention_feed(("none", None), FeedFilter())
    now = utcnow()
    item = {
        "mention_id": row["id"],
        "brand": "Acme",
        "kind": kind,
        "posted_at": now - timedelta(hours=1),
        "due_at": now + timedelta(hours=23),
        "mixed": mixed,
    }
    assert store.add_inbox_items([item], now) == 1
    return int(row["id"])


def test_an_approved_reply_is_posted_once_and_closes_the_item(instance, make_config, store):
    base, server = instance
    config = mastodon_config(make_config, base)
    mid = collected_item(config, store)
    said = replies.approve(config, store, mid, "Sorry to hear that! DM us.", "cli:anna")
    assert "reply approved" in said
    report = reply_pass(config, store, Worker.here())
    assert report.sent == 1 and report.errors == []

    [post] = server.posts
    mention = store.mention(mid)
    raw = json.loads(mention["raw"])
    assert post.form["in_reply_to_id"] == raw["id"]  # the status id on this instance
    assert post.form["status"] == f"@{raw['account']['acct']} Sorry to hear that! DM us."
    assert post.form["visibility"] == raw["visibility"]  # never more public than the mention
    assert post.headers["Idempotency-Key"] == f"listener-{mid}-1"

    item = store.inbox_item(mid)
    assert item["status"] == "replied" and item["closed_by"] == "cli:anna"
    assert item["closed_at"].startswith("2026-08-01T13:53:15")  # the platform's time
    reply = store.reply(mid)
    assert reply["status"] == "sent" and reply["platform_url"] == REPLY_ANSWER["url"]
    actions = [a["action"] for a in store.audit_log()]
    assert actions[:2] == ["reply-sent", "reply-approve"]
    sent = store.audit_log()[0]
    assert sent["actor"] == "listener" and sent["detail"]["response"]["id"] == REPLY_ANSWER["id"]

    assert reply_pass(config, store, Worker.here()).sent == 0  # never twice
    assert len(server.posts) == 1
    with pytest.raises(replies.ReplyRefused, match="replied"):
        replies.approve(config, store, mid, "again?", "cli:anna")


def test_a_refusal_is_recorded_with_the_platforms_words(instance, make_config, store):
    base, server = instance
    config = mastodon_config(make_config, base)
    mid = collected_item(config, store)
    server.answer = (422, '{"error": "Validation failed: Text character limit of 500 exceeded"}')
    replies.approve(config, store, mid, None, "cli:anna")  # the draft
    report = reply_pass(config, store, Worker.here())
    assert report.sent == 0 and report.failed == 1
    assert "Validation failed: Text character limit" in report.errors[0]
    reply = store.reply(mid)
    assert reply["status"] == "failed" and "HTTP 422" in reply["last_error"]
    assert store.inbox_item(mid)["status"] == "open"
    reply_pass(config, store, Worker.here())
    assert len(server.posts) == 1  # a refusal is not retried by itself

    # Approved again (edited), it is a new attempt with a new key, and goes out.
    server.answer = None
    replies.approve(config, store, mid, "Shorter.", "web:bo")
    assert reply_pass(config, store, Worker.here()).sent == 1
    assert server.posts[-1].headers["Idempotency-Key"] == f"listener-{mid}-2"
    assert store.inbox_item(mid)["closed_by"] == "web:bo"


def test_a_server_error_is_retried_later_with_the_same_key(instance, make_config, store):
    base, server = instance
    config = mastodon_config(make_config, base)
    mid = collected_item(config, store)
    replies.approve(config, store, mid, "On it.", "cli:anna")
    server.answer = (503, '{"error": "Service Unavailable"}')
    assert reply_pass(config, store, Worker.here()).sent == 0
    reply = store.reply(mid)
    assert reply["status"] == "approved" and reply["next_attempt_at"] is not None
    assert reply_pass(config, store, Worker.here()).sent == 0  # not before its retry time
    assert len(server.posts) == 1
    server.answer = None
    worker = Worker.here()
    report = replies.send_due(config, store, worker, clock=lambda: utcnow() + timedelta(hours=1))
    assert report.sent == 1
    assert {p.headers["Idempotency-Key"] for p in server.posts} == {f"listener-{mid}-1"}


SENDER = """
import sys
from listener.config import load_config
from listener.pipeline import reply_pass
from listener.storage import open_store
from listener.workers import Worker
config = load_config(sys.argv[1])
store = open_store(config.database_url())
reply_pass(config, store, Worker.here())
"""


def test_a_reply_killed_mid_send_is_never_posted_twice(instance, make_config, store, tmp_path):
    base, server = instance
    config = mastodon_config(make_config, base)
    mid = collected_item(config, store)
    replies.approve(config, store, mid, "On it.", "cli:anna")
    (tmp_path / "sources.yaml").write_text(
        f"database: {config.database}\nbrands: [{{name: Acme, query: mastodonpy_test}}]\n"
        f"sources: [{{name: masto, type: mastodon, instance: '{base}', mentions: true}}]\n"
    )
    server.hold.set()
    sender = subprocess.Popen(
        [sys.executable, "-c", SENDER, str(tmp_path / "sources.yaml")],
        env={**os.environ, "MASTODON_ACCESS_TOKEN": "token-1"},
    )
    try:
        assert server.arrived.wait(60), "the sender never posted"
        os.kill(sender.pid, signal.SIGKILL)  # the status exists; the sender never heard so
    finally:
        sender.wait(30)
    server.hold.clear()
    server.release.set()
    assert store.reply(mid)["status"] == "sending"
    assert reply_pass(config, store, Worker.here()).sent == 0  # its lease has not lapsed yet

    # The dead worker's claims are given back; Mastodon keeps the key an hour, so it is sent
    # again with the same key and the instance hands back the status it already made.
    store.expire_holders(store.lease_holders(), utcnow())
    report = reply_pass(config, store, Worker.here())
    assert report.sent == 1
    assert len(server.created) == 1 and len(server.posts) == 2
    assert {p.headers["Idempotency-Key"] for p in server.posts} == {f"listener-{mid}-1"}
    assert store.inbox_item(mid)["status"] == "replied"
    assert "reply-resume" in [a["action"] for a in store.audit_log()]


def test_an_interruption_older_than_the_key_is_left_for_a_person(instance, make_config, store):
    base, server = instance
    config = mastodon_config(make_config, base)
    mid = collected_item(config, store)
    replies.approve(config, store, mid, "On it.", "cli:anna")
    gone = Worker.here()
    key = store.reply(mid)["idempotency_key"]
    long_ago = utcnow() - timedelta(hours=2)
    assert store.claim_reply(mid, key, gone.id, long_ago + timedelta(minutes=1), long_ago)
    assert replies.recover(config, store) == (0, 1)
    reply = store.reply(mid)
    assert reply["status"] == "unknown" and reply["last_error"] == "interrupted while sending"
    assert reply_pass(config, store, Worker.here()).sent == 0 and server.posts == []
    with pytest.raises(ReplyBusy):
        store.cancel_reply(mid)
    # A person checked: it is not there. Approved again, it goes.
    replies.approve(config, store, mid, "On it.", "cli:anna")
    assert reply_pass(config, store, Worker.here()).sent == 1


def test_what_cannot_be_approved_is_said(instance, make_config, store):
    base, _ = instance
    config = mastodon_config(make_config, base)
    mid = collected_item(config, store)
    with pytest.raises(replies.ReplyRefused, match="at most 450"):
        replies.approve(config, store, mid, "x" * 451, "cli:anna")
    with pytest.raises(replies.ReplyRefused, match="empty"):
        replies.approve(config, store, mid, "   ", "cli:anna")
    with pytest.raises(replies.ReplyRefused, match="no inbox item"):
        replies.approve(config, store, 99999, "hi", "cli:anna")
    replies.approve(config, store, mid, "hi", "cli:anna")
    assert "cancelled" in replies.cancel(store, mid, "cli:anna")
    assert reply_pass(config, store, Worker.here()).sent == 0
    assert store.reply(mid)["status"] == "cancelled"


def test_sources_without_a_reply_api_are_answered_where_posted(make_config, store, tmp_path):
    from tests.history import History, Post

    config = make_config(
        "brands: [{name: Acme}]\nsources: [{name: s, type: rss, url: 'https://e.example/f'}]\n"
    )
    [mid] = History(store, sources=("s",)).add(Post("negative", timedelta(hours=1)))
    now = utcnow()
    store.add_inbox_items(
        [{"mention_id": mid, "brand": "Acme", "kind": "reply", "posted_at": now, "due_at": now}],
        now,
    )
    with pytest.raises(replies.ReplyRefused, match="answer it where it was posted"):
        replies.approve(config, store, mid, "hi", "cli:anna")


def test_auto_reply_thanks_after_its_delay_and_never_answers_mixed(instance, make_config, store):
    base, server = instance
    config = mastodon_config(make_config, base, ", auto_reply: {kinds: [thank], delay: 2h}")
    mid = collected_item(config, store, kind="thank")
    assert replies.auto_approve(config, store) == 1
    reply = store.reply(mid)
    assert reply["approved_by"] == "auto:masto" and "Thank you" in reply["text"]
    assert reply_pass(config, store, Worker.here()).sent == 0  # the delay: still stoppable
    report = replies.send_due(
        config, store, Worker.here(), clock=lambda: utcnow() + timedelta(hours=3)
    )
    assert report.sent == 1 and len(server.posts) == 1
    assert store.inbox_item(mid)["status"] == "thanked"
    assert replies.auto_approve(config, store) == 0  # answered: never again


def test_auto_reply_leaves_complaints_and_mixed_items_to_people(instance, make_config, store):
    base, _ = instance
    config = mastodon_config(make_config, base, ", auto_reply: {kinds: [thank]}")
    mid = collected_item(config, store, kind="reply", mixed=True)
    assert replies.auto_approve(config, store) == 0
    assert store.reply(mid) is None


def test_auto_reply_needs_a_source_that_can_reply(make_config):
    from listener.config import ConfigError

    with pytest.raises(ConfigError, match="rss sources cannot post replies"):
        make_config(
            "brands: [{name: Acme}]\n"
            "sources: [{name: s, type: rss, url: 'https://e.example/f', auto_reply: {}}]\n"
        )


# --- Bluesky: a PDS built from the lexicons (com.atproto.server.createSession,
# com.atproto.repo.createRecord / getRecord); no recording of a write exists.

TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")


class Pds:
    def __init__(self) -> None:
        self.records: dict[str, dict] = {}
        self.creates = 0

    def handle(self, request: Request) -> Response:
        did = "did:plc:brandaccount"
        if request.path.endswith("com.atproto.server.createSession"):
            body = {"accessJwt": "a1", "refreshJwt": "r1", "did": did, "handle": "acme.bsky.social"}
            return Response(json.dumps(body), content_type="application/json")
        if request.headers.get("Authorization") != "Bearer a1":
            return Response('{"error": "AuthMissing"}', status=401)
        if request.path.endswith("com.atproto.repo.createRecord"):
            self.creates += 1
            doc = request.get_json()
            rkey = doc["rkey"]
            if not TID.match(rkey):
                return Response('{"error": "InvalidRequest"}', status=400)
            if rkey in self.records:  # as the reference PDS does today for a taken key
                return Response('{"error": "InternalServerError"}', status=500)
            uri = f"at://{did}/{doc['collection']}/{rkey}"
            self.records[rkey] = {"uri": uri, "cid": f"bafy{rkey}", "value": doc["record"]}
            answer = {"uri": uri, "cid": f"bafy{rkey}", "validationStatus": "valid"}
            return Response(json.dumps(answer), content_type="application/json")
        if request.path.endswith("app.bsky.feed.getPostThread"):
            # app.bsky.feed.defs#threadViewPost, replies as postViews of the records held.
            uri = request.args["uri"]
            replies = [
                {
                    "$type": "app.bsky.feed.defs#threadViewPost",
                    "post": {
                        "uri": r["uri"],
                        "cid": r["cid"],
                        "author": {"did": r["uri"].split("/")[2], "handle": "someone.bsky.social"},
                        "record": r["value"],
                        "indexedAt": r["value"]["createdAt"],
                    },
                }
                for r in self.records.values()
                if r["value"]["reply"]["parent"]["uri"] == uri
            ]
            thread = {"$type": "app.bsky.feed.defs#threadViewPost", "post": {"uri": uri}}
            return Response(json.dumps({"thread": {**thread, "replies": replies}}))
        if request.path.endswith("com.atproto.repo.getRecord"):
            record = self.records.get(request.args["rkey"])
            if record is None:
                return Response('{"error": "RecordNotFound"}', status=400)
            return Response(json.dumps(record), content_type="application/json")
        return Response('{"error": "MethodNotImplemented"}', status=501)


def test_a_bluesky_reply_is_one_record_in_the_thread_however_often_tried(httpserver, monkeypatch):
    from sources.http import make_client

    pds = Pds()
    httpserver.expect_request("").respond_with_handler(pds.handle)
    monkeypatch.setenv("BLUESKY_HANDLE", "acme.bsky.social")
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", "app-pass")
    base = httpserver.url_for("").rstrip("/")
    source = BlueskySource(name="b", type="bluesky", query="acme", service=base)
    post = json.loads((FIXTURES / "searchPosts.json").read_text())["posts"][0]  # real
    target = ReplyTarget(post["uri"], None, post["author"]["handle"], "en", post)
    attempt = ReplyAttempt("listener-7-1", datetime(2026, 11, 24, 9, 30, tzinfo=UTC))
    with make_client() as client:
        first = BlueskyCollector().reply(source, target, "Thanks!", attempt, client)
        again = BlueskyCollector().reply(source, target, "Thanks!", attempt, client)
    assert first.platform_id == again.platform_id and len(pds.records) == 1
    assert pds.creates == 2  # the second try met its own record, and took it as sent
    [record] = pds.records.values()
    value = record["value"]
    assert value["reply"]["parent"] == {"uri": post["uri"], "cid": post["cid"]}
    assert value["reply"]["root"] == value["reply"]["parent"]  # the post starts its thread
    assert value["langs"] == ["en"] and value["createdAt"].startswith("2026-11-24T09:30")
    assert first.url.startswith("https://bsky.app/profile/acme.bsky.social/post/")
    assert TID.match(record_key(attempt))
    other = ReplyAttempt("listener-7-2", attempt.approved_at)
    assert record_key(other) != record_key(attempt)


def test_a_bluesky_post_answered_from_the_brands_account_is_found(httpserver, monkeypatch):
    """The thread is read for a reply by the signed-in account; replies by others are not the
    team's answer."""
    from sources.http import make_client

    pds = Pds()
    httpserver.expect_request("").respond_with_handler(pds.handle)
    monkeypatch.setenv("BLUESKY_HANDLE", "acme.bsky.social")
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", "app-pass")
    base = httpserver.url_for("").rstrip("/")
    source = BlueskySource(name="b", type="bluesky", query="acme", service=base)
    post = json.loads((FIXTURES / "searchPosts.json").read_text())["posts"][0]  # real
    target = ReplyTarget(post["uri"], None, post["author"]["handle"], "en", post)
    stranger = reply_record(
        target, "Same here!", ReplyAttempt("x", datetime(2026, 11, 24, tzinfo=UTC))
    )
    pds.records["other"] = {
        "uri": "at://did:plc:stranger/app.bsky.feed.post/3kother",
        "cid": "bafyother",
        "value": stranger,
    }
    with make_client() as client:
        assert BlueskyCollector().find_reply(source, target, client) is None
        attempt = ReplyAttempt("listener-8-1", datetime(2026, 11, 24, 10, 0, tzinfo=UTC))
        posted = BlueskyCollector().reply(source, target, "Thanks!", attempt, client)
        found = BlueskyCollector().find_reply(source, target, client)
    assert found is not None and found.platform_id == posted.platform_id
    assert found.at == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # the post's createdAt


def test_approve_a_reply_in_the_browser_and_see_it_posted(
    instance, make_config, store, page, monkeypatch
):
    from listener.web.app import create_app
    from tests.webserver import http, serve, sign_in

    base, server = instance
    monkeypatch.setenv("LISTENER_WEB_TOKEN", "tok")
    config = mastodon_config(make_config, base)
    mid = collected_item(config, store)
    with serve(create_app(config)) as site:
        page.goto(f"{site}/inbox/{mid}")
        assert page.locator("#draft").count() == 1  # signed out: the draft, no form
        sign_in(page, site, "anna", "tok")
        page.goto(f"{site}/inbox/{mid}")
        box = page.locator("#reply-input")
        assert box.input_value().startswith("Hi ")  # the draft, in the mention's language
        box.fill("Sorry! We have sent you a DM.")
        page.click("#reply-form button[value=approve]")
        page.wait_for_selector("#reply-done")
        assert page.locator("#reply-status").inner_text() == "approved, waiting to be posted"
        assert server.posts == []  # nothing goes out before the pass
        assert reply_pass(config, store, Worker.here()).sent == 1
        page.reload()
        assert page.locator("#reply-status").inner_text() == "posted"
        assert page.locator("#reply-posted").get_attribute("href") == REPLY_ANSWER["url"]
        assert page.locator("#reply-form").count() == 0  # sent: nothing left to approve
        assert page.locator("#status").inner_text() == "(replied)"
        assert server.posts[0].form["status"].endswith("Sorry! We have sent you a DM.")

        item = http.get(f"{site}/api/inbox/{mid}").json()
        assert item["reply"]["status"] == "sent" and item["reply"]["approved_by"] == "web:anna"
        assert "idempotency_key" in item["reply"] and "lease_owner" not in item["reply"]
        refused = http.post(
            f"{site}/api/inbox/{mid}/reply?draft=true", headers={"Authorization": "Bearer tok"}
        )
        assert refused.status_code == 409 and "replied" in refused.json()["detail"]
        assert http.post(f"{site}/api/inbox/{mid}/reply?draft=true").status_code == 403


def test_the_api_approves_and_cancels(instance, make_config, store, monkeypatch):
    from listener.web.app import create_app
    from tests.webserver import http, serve

    base, _ = instance
    monkeypatch.setenv("LISTENER_WEB_TOKEN", "tok")
    config = mastodon_config(make_config, base)
    mid = collected_item(config, store)
    auth = {"Authorization": "Bearer tok"}
    with serve(create_app(config)) as site:
        ok = http.post(f"{site}/api/inbox/{mid}/reply?draft=true", headers=auth)
        assert ok.status_code == 200 and ok.json()["reply"]["status"] == "approved"
        assert ok.json()["reply"]["approved_by"] == "api"
        both = http.post(f"{site}/api/inbox/{mid}/reply?draft=true&cancel=true", headers=auth)
        assert both.status_code == 422
        gone = http.post(f"{site}/api/inbox/{mid}/reply?cancel=true", headers=auth)
        assert gone.json()["reply"]["status"] == "cancelled"
        assert http.post(f"{site}/api/inbox/999/reply?draft=true", headers=auth).status_code == 404


def test_the_cli_approves_shows_and_cancels(instance, make_config, store, tmp_path):
    from click.testing import CliRunner

    from listener.cli import cli

    base, _ = instance
    config = mastodon_config(make_config, base)
    mid = collected_item(config, store)
    yaml_path = tmp_path / "sources.yaml"
    yaml_path.write_text(
        f"database: {config.database}\nbrands: [{{name: Acme, query: mastodonpy_test}}]\n"
        f"sources: [{{name: masto, type: mastodon, instance: '{base}', mentions: true}}]\n"
    )

    def run(*args: str):
        return CliRunner().invoke(cli, ["-c", str(yaml_path), "inbox", *args])

    shown = run("show", str(mid)).output
    assert f"post it with `listener inbox reply {mid} --draft`" in shown
    assert "reply approved" in run("reply", str(mid), "--text", "We are on it.").output
    shown = run("show", str(mid)).output
    assert "Reply approved by cli:" in shown and "We are on it." in shown
    both = run("reply", str(mid), "--draft", "--cancel")
    assert both.exit_code == 2 and "one of --text, --draft or --cancel" in both.output
    assert "reply cancelled" in run("reply", str(mid), "--cancel").output
    again = run("reply", str(mid), "--cancel")
    assert again.exit_code == 1 and "was already cancelled" in again.output


def test_auto_reply_leaves_an_old_backlog_to_people(instance, make_config, store):
    base, _ = instance
    config = mastodon_config(make_config, base, ", auto_reply: {kinds: [thank], delay: 1h}")
    mid = collected_item(config, store, kind="thank")
    assert replies.auto_approve(config, store, now=utcnow() + timedelta(hours=8)) == 0
    assert store.reply(mid) is None  # switched on over old items: no thank-you days late


def test_a_mention_answered_from_the_brands_own_app_is_closed(instance, make_config, store):
    """The team answered the mention in a Mastodon app: the item closes at the instance's time
    of that reply, and a reply from anyone else in the thread closes nothing."""
    base, server = instance
    config = mastodon_config(make_config, base)
    mention = collected_item(config, store)
    stranger = json.loads(recorded("test_status_reply", "POST", "/api/v1/statuses", nth=0))
    server.elsewhere = [stranger]  # someone else's reply in the thread
    assert reply_pass(config, store, Worker.here()).answered_elsewhere == 0
    assert store.inbox_item(mention)["status"] == "open"

    store.db.execute("UPDATE inbox SET platform_checked_at = NULL")  # as an hour later
    server.elsewhere = [stranger, REPLY_ANSWER]  # the recorded reply by the token's account
    assert reply_pass(config, store, Worker.here()).answered_elsewhere == 1
    item = store.inbox_item(mention)
    assert item["status"] == "replied" and item["closed_by"] == "platform"
    assert item["closed_at"].startswith("2026-08-01T13:53:15")  # the reply's created_at
    assert server.posts == []  # listener posted nothing itself
    [audit] = [a for a in store.audit_log() if a["action"] == "reply-elsewhere"]
    assert audit["actor"] == "platform" and audit["target"] == f"inbox {mention}"
