"""Google Play reviews and replies against a local server built from Google's published
documentation, marked so: the reviews answer is the example of the "Reply to Reviews" guide
(developers.google.com/android-publisher/reply-to-reviews; the device metadata it cuts short
completed from the REST reference's schema), and the reply answer its documented shape. No
recording of the real API is public. The token endpoint checks the signed JWT as Google's does
(RS256 with the service account's key, audience = token_uri, the androidpublisher scope)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug import Request, Response

from alerts import replies
from listener.pipeline import collect_due, reply_pass
from listener.timeutil import utcnow
from listener.workers import Worker
from sources import googleplay

FIXTURE = Path(__file__).parent / "fixtures" / "googleplay" / "reviews.json"
LATER = utcnow() + timedelta(days=1)
APP = "/androidpublisher/v3/applications/com.acme.app/reviews"


class Play:
    def __init__(self, public_key: object, token_uri: str) -> None:
        self.public_key, self.token_uri = public_key, token_uri
        self.tokens = 0
        self.gets = 0
        self.replies: list[dict] = []
        self.refuse_key = False

    def handle(self, request: Request) -> Response:
        if request.path == "/token":
            self.tokens += 1
            if self.refuse_key:
                body = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
                return Response(json.dumps(body), status=400, content_type="application/json")
            claims = jwt.decode(
                request.form["assertion"],
                self.public_key,
                algorithms=["RS256"],
                audience=self.token_uri,
            )
            assert claims["scope"] == googleplay.SCOPE and claims["iss"].endswith(
                "gserviceaccount.com"
            )
            assert request.form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
            token = {"access_token": "ya29.local", "expires_in": 3599, "token_type": "Bearer"}
            return Response(json.dumps(token), content_type="application/json")
        if request.headers.get("Authorization") != "Bearer ya29.local":
            return Response('{"error": {"code": 401, "message": "no"}}', status=401)
        if request.path == APP:
            return Response(FIXTURE.read_text(), content_type="application/json")
        if request.path.startswith(APP + "/") and request.method == "GET":  # reviews.get
            self.gets += 1
            wanted = request.path.rsplit("/", 1)[1]
            found = [
                r for r in json.loads(FIXTURE.read_text())["reviews"] if r["reviewId"] == wanted
            ]
            if not found:
                return Response('{"error": {"code": 404, "message": "Not Found"}}', status=404)
            return Response(json.dumps(found[0]), content_type="application/json")
        if request.path.startswith(APP + "/") and request.path.endswith(":reply"):
            self.replies.append({"path": request.path, **request.get_json()})
            text = request.get_json()["replyText"]
            result = {
                "replyText": text,
                "lastEdited": {"seconds": "1453978803", "nanos": 796000000},
            }
            return Response(json.dumps({"result": result}), content_type="application/json")
        return Response('{"error": {"code": 404, "message": "Not Found"}}', status=404)


@pytest.fixture
def play(httpserver, tmp_path, monkeypatch):
    googleplay.TOKENS.clear()  # no token from another test
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    token_uri = httpserver.url_for("/token")
    account = {
        "type": "service_account",
        "client_email": "listener@acme-play.iam.gserviceaccount.com",
        "private_key": pem,
        "token_uri": token_uri,
    }
    key_file = tmp_path / "play-key.json"
    key_file.write_text(json.dumps(account))
    monkeypatch.setenv("GOOGLE_PLAY_CREDENTIALS", str(key_file))
    server = Play(key.public_key(), token_uri)
    httpserver.expect_request("").respond_with_handler(server.handle)
    return httpserver.url_for("").rstrip("/"), server


def play_config(make_config, base: str):
    return make_config(
        "brands: [{name: Acme}]\n"
        f"sources: [{{name: play, type: googleplay, package: com.acme.app, brand: Acme, "
        f"api: '{base}'}}]\n"
    )


def test_reviews_with_stars_version_device_and_language(play, make_config, store):
    base, server = play
    config = play_config(make_config, base)
    store.sync_sources(config.sources)
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.error is None, outcome.error
    assert outcome.counts.new == 2
    rows = {r["external_id"]: dict(r) for r in store.db.query("SELECT * FROM mentions")}
    jane, john = rows["12345678"], rows["11223344"]
    assert jane["text"] == "This is the best app ever!" and jane["rating"] == 5
    assert jane["author"] == "Jane Bloggs"
    assert jane["published_at"].startswith("2015-10-01T05:20:26")
    assert jane["url"] == (
        "https://play.google.com/store/apps/details?id=com.acme.app&reviewId=12345678"
    )
    raw = json.loads(john["raw"])
    assert raw["app_version"] == "1.2.3" and raw["device"] == "trltecan"
    assert raw["device_metadata"]["manufacturer"] == "Sony"
    assert raw["developer_reply"]["text"] == "That's great to hear!"
    assert john["language"] == "en" and john["language_source"] == "hint"  # the device's setting
    [source] = [s for s in store.sources() if s["id"] == "play"]
    assert source["kind"] == "reviews"

    [again] = collect_due(config, store, now=LATER + timedelta(hours=1))
    assert again.error is None and again.counts.new == 0  # stopped at what it had read
    assert server.tokens == 1  # one signed token request, kept for the hour


def test_a_reply_goes_to_the_review_and_closes_the_item(play, make_config, store):
    base, server = play
    config = play_config(make_config, base)
    store.sync_sources(config.sources)
    collect_due(config, store, now=LATER)
    mid = next(
        r["id"] for r in store.db.query("SELECT id FROM mentions WHERE external_id = '12345678'")
    )
    now = utcnow()
    store.add_inbox_items(
        [{"mention_id": mid, "brand": "Acme", "kind": "thank", "posted_at": now, "due_at": now}],
        now,
    )
    with pytest.raises(replies.ReplyRefused, match="at most 350"):
        replies.approve(config, store, mid, "x" * 351, "cli:anna")
    replies.approve(config, store, mid, "Thank you, Jane!", "cli:anna")
    assert reply_pass(config, store, Worker.here()).sent == 1
    assert server.replies == [{"path": f"{APP}/12345678:reply", "replyText": "Thank you, Jane!"}]
    item = store.inbox_item(mid)
    assert item["status"] == "thanked"
    assert item["closed_at"].startswith("2016-01-28T11:00:03")  # Google's lastEdited
    assert store.reply(mid)["response"]["result"]["replyText"] == "Thank you, Jane!"


def test_credential_problems_are_named_and_never_shown(play, make_config, store, monkeypatch):
    import os

    base, server = play
    key_file = os.environ["GOOGLE_PLAY_CREDENTIALS"]
    config = play_config(make_config, base)
    store.sync_sources(config.sources)
    monkeypatch.delenv("GOOGLE_PLAY_CREDENTIALS")
    [unset] = collect_due(config, store, now=LATER)
    assert "set GOOGLE_PLAY_CREDENTIALS to the path of a service account" in unset.error

    monkeypatch.setenv("GOOGLE_PLAY_CREDENTIALS", "/nonexistent/key.json")
    [missing] = collect_due(config, store, now=LATER + timedelta(hours=1))
    assert "cannot read the key file named by GOOGLE_PLAY_CREDENTIALS" in missing.error

    server.refuse_key = True  # a deleted key: Google answers invalid_grant
    monkeypatch.setenv("GOOGLE_PLAY_CREDENTIALS", key_file)
    [refused] = collect_due(config, store, now=LATER + timedelta(hours=2))
    assert "Google refused the service account" in refused.error
    assert "Invalid JWT Signature" in refused.error
    assert "PRIVATE KEY" not in refused.error
    [state] = [s for s in store.sources() if s["id"] == "play"]
    assert not state["enabled"]  # switched off until `listener sources enable`


def test_an_item_answered_in_play_console_is_closed_at_googles_time(play, make_config, store):
    base, server = play
    config = play_config(make_config, base)
    store.sync_sources(config.sources)
    collect_due(config, store, now=LATER)
    ids = {
        r["external_id"]: r["id"] for r in store.db.query("SELECT id, external_id FROM mentions")
    }
    now = utcnow()
    store.add_inbox_items(
        [
            {
                "mention_id": ids[e],
                "brand": "Acme",
                "kind": "thank",
                "posted_at": now,
                "due_at": now,
            }
            for e in ("12345678", "11223344")
        ],
        now,
    )
    report = reply_pass(config, store, Worker.here())
    assert report.answered_elsewhere == 1
    john = store.inbox_item(ids["11223344"])  # answered in Play Console: "That's great to hear!"
    assert john["status"] == "thanked" and john["closed_by"] == "platform"
    assert john["closed_at"].startswith("2015-02-05T01:57:47")  # the developer comment's time
    [audit] = [a for a in store.audit_log() if a["action"] == "reply-elsewhere"]
    assert audit["target"] == f"inbox {ids['11223344']}"
    assert store.inbox_item(ids["12345678"])["status"] == "open"  # not answered anywhere
    assert server.gets == 2
    reply_pass(config, store, Worker.here())
    assert server.gets == 2  # each open item looked up at most once an hour
