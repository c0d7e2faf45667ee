"""App Store Connect reviews and replies against a local server built from Apple's published
App Store Connect API reference, marked so: its reviews are the reference's two example reviews
(tests/fixtures/appstoreconnect), in more pages where a test needs them; its refusals are the
reference's error documents. No recording of the real API is public. The server checks each
request's token as Apple does: ES256 with the team key, the key ID in the header, the issuer,
the audience appstoreconnect-v1 and a lifetime of 20 minutes at most."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug import Request, Response

from alerts import replies
from listener.pipeline import collect_due, reply_pass
from listener.timeutil import utcnow
from listener.workers import Worker
from sources import appstoreconnect

FIXTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "appstoreconnect" / "customer_reviews.json").read_text()
)
LATER = utcnow() + timedelta(days=1)
APP = "682658836"
KEY_ID = "2X9R4HXF34"
ISSUER = "57246542-96fe-1a63-e053-0824d011072a"
UNAUTHORIZED = {
    "errors": [
        {
            "status": "401",
            "code": "NOT_AUTHORIZED",
            "title": "Authentication credentials are missing or invalid.",
            "detail": "Provide a properly configured and signed bearer token, and make sure "
            "that it has not expired.",
        }
    ]
}


def reviews(n: int) -> list[dict]:
    """n reviews in the reference's shape, newest first, a day apart."""
    out = []
    for i in range(n):
        r = copy.deepcopy(FIXTURE["data"][0])
        r["id"] = f"00000028-b08c-0014-9674-{i:012d}"
        r["attributes"]["title"] = f"Review {i}"
        r["attributes"]["createdDate"] = f"2024-01-{28 - i:02d}T11:19:36-07:00"
        out.append(r)
    return out


class Apple:
    def __init__(self, public_key: object) -> None:
        self.public_key = public_key
        self.pages: list[dict] = [FIXTURE]
        self.requests: list[str] = []
        self.responses: list[dict] = []
        self.next_base: str | None = None  # where links.next points; None: this server

    def check_token(self, request: Request) -> bool:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token, self.public_key, algorithms=["ES256"], audience="appstoreconnect-v1"
            )
        except jwt.PyJWTError:
            return False
        return (
            header.get("kid") == KEY_ID
            and claims["iss"] == ISSUER
            and claims["exp"] - claims["iat"] <= 20 * 60
        )

    def handle(self, request: Request) -> Response:
        self.requests.append(request.full_path)
        if not self.check_token(request):
            return Response(json.dumps(UNAUTHORIZED), status=401, content_type="application/json")
        if request.path == f"/v1/apps/{APP}/customerReviews":
            assert request.args["sort"] == "-createdDate" and request.args["include"] == "response"
            page = int(request.args.get("cursor", "0"))
            doc = copy.deepcopy(self.pages[page])
            if page + 1 < len(self.pages):
                base = self.next_base or request.host_url.rstrip("/")
                doc["links"]["next"] = (
                    f"{base}{request.path}?cursor={page + 1}&sort=-createdDate&include=response"
                )
            return Response(json.dumps(doc), content_type="application/json")
        if request.path.startswith("/v1/customerReviews/") and request.path.endswith("/response"):
            review = request.path.split("/")[3]
            answered = {
                r["relationships"]["response"]["data"]["id"]: r["id"]
                for r in FIXTURE["data"]
                if "data" in r["relationships"]["response"]
            }
            for included in FIXTURE["included"]:
                if answered.get(included["id"]) == review:
                    return Response(json.dumps({"data": included}), content_type="application/json")
            body = {
                "errors": [
                    {
                        "status": "404",
                        "code": "NOT_FOUND",
                        "title": "The specified resource does not exist",
                    }
                ]
            }
            return Response(json.dumps(body), status=404, content_type="application/json")
        if request.path == "/v1/customerReviewResponses" and request.method == "POST":
            body = request.get_json()
            self.responses.append(body)
            data = {
                "type": "customerReviewResponses",
                "id": "00000028-b08c-0014-9674-c54800000001",
                "attributes": {
                    "responseBody": body["data"]["attributes"]["responseBody"],
                    "lastModifiedDate": "2024-01-03T09:30:00-07:00",
                    "state": "PENDING_PUBLISH",
                },
            }
            return Response(json.dumps({"data": data}), status=201, content_type="application/json")
        return Response('{"errors": [{"status": "404", "title": "Not found"}]}', status=404)


def pem_of(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def apple(httpserver, tmp_path, monkeypatch):
    appstoreconnect.TOKENS.clear()  # no token from another test
    key = ec.generate_private_key(ec.SECP256R1())
    p8 = tmp_path / f"AuthKey_{KEY_ID}.p8"
    p8.write_text(pem_of(key))
    monkeypatch.setenv("APP_STORE_CONNECT_KEY", str(p8))
    server = Apple(key.public_key())
    httpserver.expect_request("").respond_with_handler(server.handle)
    return httpserver.url_for("").rstrip("/"), server


def asc_config(make_config, base: str, **extra: object):
    keys = "".join(f", {k}: {v}" for k, v in extra.items())
    return make_config(
        "brands: [{name: Acme}]\n"
        f"sources: [{{name: asc, type: appstoreconnect, app_id: {APP}, key_id: {KEY_ID}, "
        f"issuer_id: {ISSUER}, brand: Acme, api: '{base}'{keys}}}]\n"
    )


def stored(store) -> dict[str, dict]:
    return {r["external_id"]: dict(r) for r in store.db.query("SELECT * FROM mentions")}


def test_reviews_with_stars_territory_and_the_teams_response(apple, make_config, store):
    base, _server = apple
    config = asc_config(make_config, base)
    store.sync_sources(config.sources)
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.error is None, outcome.error
    assert outcome.counts.new == 2
    rows = stored(store)
    juan, anne = (
        rows["00000028-b08c-0014-9674-c54800000000"],
        rows["00000028-b08c-0014-729e-fbd500000000"],
    )
    assert juan["title"] == "Pretty Stellar" and juan["rating"] == 5
    assert juan["text"].startswith("I love how creative I can be")
    assert juan["author"] == "Juan Chavez"
    assert juan["published_at"].startswith("2024-01-02T18:19:36")  # -07:00 read as UTC
    assert json.loads(juan["raw"])["territory"] == "USA"
    assert json.loads(juan["raw"])["developer_reply"] is None
    reply = json.loads(anne["raw"])["developer_reply"]
    assert (
        reply["text"] == "Thank you, Anne! We're glad you like it."
        and reply["state"] == "PUBLISHED"
    )
    [source] = [s for s in store.sources() if s["id"] == "asc"]
    assert source["kind"] == "reviews"

    [again] = collect_due(config, store, now=LATER + timedelta(hours=1))
    assert again.error is None and again.counts.new == 0
    assert len(stored(store)) == 2  # nothing stored twice


def test_all_reviews_are_read_over_several_fetches_not_only_the_newest(apple, make_config, store):
    """More reviews than one fetch's pages: the newest first, the older ones by later fetches,
    and every new one before any backfill."""
    base, server = apple
    older = reviews(7)
    server.pages = [{**FIXTURE, "data": older[i : i + 2], "included": []} for i in range(0, 7, 2)]
    config = asc_config(make_config, base, max_pages=2)
    store.sync_sources(config.sources)
    [first] = collect_due(config, store, now=LATER)
    assert first.error is None and first.counts.new == 4  # two pages of two, newest first
    assert {r["title"] for r in stored(store).values()} == {f"Review {i}" for i in range(4)}

    newer = reviews(8)[:1]  # one new review arrives on top
    newer[0]["id"], newer[0]["attributes"]["createdDate"] = "new-1", "2024-02-01T00:00:00Z"
    newer[0]["attributes"]["body"] = "Charged twice for one subscription, please fix."
    chain = newer + older
    server.pages = [{**FIXTURE, "data": chain[i : i + 2], "included": []} for i in range(0, 8, 2)]
    [second] = collect_due(config, store, now=LATER + timedelta(hours=1))
    assert second.error is None
    assert "new-1" in stored(store)
    [third] = collect_due(config, store, now=LATER + timedelta(hours=2))
    [fourth] = collect_due(config, store, now=LATER + timedelta(hours=3))
    assert third.error is None and fourth.error is None
    assert len(stored(store)) == 8  # every review, none twice


def test_next_links_to_another_host_are_not_followed(apple, make_config, store):
    base, server = apple
    host = urlsplit(base)
    other = "localhost" if host.hostname != "localhost" else "127.0.0.1"
    server.next_base = f"http://{other}:{host.port}"  # same server, another name: a stranger
    server.pages = [{**FIXTURE, "data": reviews(2)}, {**FIXTURE, "data": reviews(4)[2:]}]
    config = asc_config(make_config, base)
    store.sync_sources(config.sources)
    [outcome] = collect_due(config, store, now=LATER)
    assert outcome.error is None and outcome.counts.new == 2
    assert not any("cursor=" in r for r in server.requests)  # the token went nowhere else


def test_a_reply_is_posted_as_the_reviews_response_and_closes_the_item(apple, make_config, store):
    base, server = apple
    config = asc_config(make_config, base)
    store.sync_sources(config.sources)
    collect_due(config, store, now=LATER)
    mid = next(
        r["id"]
        for r in store.db.query(
            "SELECT id FROM mentions WHERE external_id = '00000028-b08c-0014-9674-c54800000000'"
        )
    )
    now = utcnow()
    store.add_inbox_items(
        [{"mention_id": mid, "brand": "Acme", "kind": "thank", "posted_at": now, "due_at": now}],
        now,
    )
    replies.approve(config, store, mid, "Thank you, Juan!", "cli:anna")
    assert reply_pass(config, store, Worker.here()).sent == 1
    [sent] = server.responses
    assert sent["data"]["type"] == "customerReviewResponses"
    assert sent["data"]["attributes"] == {"responseBody": "Thank you, Juan!"}
    assert sent["data"]["relationships"]["review"]["data"] == {
        "type": "customerReviews",
        "id": "00000028-b08c-0014-9674-c54800000000",
    }
    item = store.inbox_item(mid)
    assert item["status"] == "thanked"
    assert datetime.fromisoformat(item["closed_at"]) == datetime.fromisoformat(
        "2024-01-03T16:30:00+00:00"
    )  # Apple's lastModifiedDate
    reply = store.reply(mid)
    assert reply["platform_id"] == "00000028-b08c-0014-9674-c54800000001"
    assert reply["response"]["data"]["attributes"]["state"] == "PENDING_PUBLISH"


def test_key_problems_are_named_and_the_key_never_shown(apple, make_config, store, monkeypatch):
    base, _server = apple
    config = asc_config(make_config, base)
    store.sync_sources(config.sources)
    p8 = Path(__import__("os").environ["APP_STORE_CONNECT_KEY"])
    pem = p8.read_text()

    monkeypatch.delenv("APP_STORE_CONNECT_KEY")
    [unset] = collect_due(config, store, now=LATER)
    assert "set APP_STORE_CONNECT_KEY to the path of the API key's .p8 file" in unset.error

    monkeypatch.setenv(
        "APP_STORE_CONNECT_KEY", "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----"
    )
    [bad] = collect_due(config, store, now=LATER + timedelta(hours=1))
    assert "does not hold an App Store Connect private key (.p8)" in bad.error
    assert "not a key" not in bad.error

    monkeypatch.setenv("APP_STORE_CONNECT_KEY", pem)  # the key itself, as a CI secret
    [inline] = collect_due(config, store, now=LATER + timedelta(hours=2))
    assert inline.error is None and inline.counts.new == 2

    appstoreconnect.TOKENS.clear()
    stranger = ec.generate_private_key(ec.SECP256R1())  # a revoked or wrong key
    monkeypatch.setenv("APP_STORE_CONNECT_KEY", pem_of(stranger))
    [refused] = collect_due(config, store, now=LATER + timedelta(hours=3))
    assert "HTTP 401" in refused.error
    assert "Authentication credentials are missing or invalid" in refused.error
    assert "check APP_STORE_CONNECT_KEY, key_id and issuer_id" in refused.error
    assert "PRIVATE KEY" not in refused.error


def test_config_checks_the_ids(make_config):
    from listener.config import ConfigError

    with pytest.raises(ConfigError, match="issuer_id"):
        make_config(
            "brands: [{name: Acme}]\n"
            "sources: [{name: asc, type: appstoreconnect, app_id: 1, key_id: 2X9R4HXF34, "
            "issuer_id: nope, brand: Acme}]\n"
        )


def test_a_review_answered_in_app_store_connect_closes_its_item_and_stops_our_reply(
    apple, make_config, store
):
    """Anne's review got the team's response in App Store Connect itself: her item closes at
    Apple's time of it, and the reply queued in listener is never sent."""
    base, server = apple
    config = asc_config(make_config, base)
    store.sync_sources(config.sources)
    collect_due(config, store, now=LATER)
    ids = {
        r["external_id"]: r["id"] for r in store.db.query("SELECT id, external_id FROM mentions")
    }
    anne, juan = (
        ids["00000028-b08c-0014-729e-fbd500000000"],
        ids["00000028-b08c-0014-9674-c54800000000"],
    )
    now = utcnow()
    store.add_inbox_items(
        [
            {"mention_id": m, "brand": "Acme", "kind": "reply", "posted_at": now, "due_at": now}
            for m in (anne, juan)
        ],
        now,
    )
    replies.approve(config, store, anne, "Thanks, Anne!", "cli:anna")
    report = reply_pass(config, store, Worker.here())
    assert report.answered_elsewhere == 1 and report.sent == 0
    assert server.responses == []  # nothing posted over the team's own response
    item = store.inbox_item(anne)
    assert item["status"] == "replied" and item["closed_by"] == "platform"
    assert datetime.fromisoformat(item["closed_at"]) == datetime.fromisoformat(
        "2017-11-16T17:00:00+00:00"
    )
    assert store.reply(anne)["status"] == "cancelled"
    assert store.inbox_item(juan)["status"] == "open"  # Apple has no response to it: 404
