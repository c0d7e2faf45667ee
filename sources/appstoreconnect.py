"""App Store Connect: every customer review of your own app through the App Store Connect API
(customerReviews), not only the latest 500 the public feed shows, and replies to them
(customerReviewResponses).

Signed in with a team API key: a `.p8` private key (named by an environment variable: its path,
or the key itself), its key ID and the team's issuer ID. Each request carries a JWT signed with
that key (ES256) that lives 15 minutes at most, as Apple requires; listener keeps it in memory.

Reviews are read newest first. The first fetch reads the newest pages and leaves the rest as a
backfill that later fetches read, page budget permitting, until the oldest review is in; a
fetch that finds more new reviews than its pages leaves the gap to a backfill the same way.
Each review comes with the team's published or pending response, if any.
"""

from __future__ import annotations

import builtins
import time
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlencode, urlsplit

import httpx
import jwt
from pydantic import Field, field_validator

from listener import secrets
from listener.timeutil import time_or_none
from sources import register
from sources.base import (
    Entry,
    FetchError,
    FetchResult,
    Kind,
    Posted,
    ReplyAttempt,
    ReplyError,
    ReplyTarget,
    SourceConfig,
    SourceState,
    api_base,
    normalise_each,
    reply_error,
)
from sources.credentials import KeyProblem, TokenCache, key_from_env
from sources.http import call_api
from sources.rss import content_hash

AUDIENCE = "appstoreconnect-v1"
TOKEN_LIFETIME = 15 * 60  # Apple refuses a token that lives longer than 20 minutes
PAGE = 200  # the most customerReviews returns per page
MAX_BACKFILLS = 5
REVIEW_FIELDS = {
    "sort": "-createdDate",
    "limit": str(PAGE),
    "include": "response",
    "fields[customerReviewResponses]": "responseBody,lastModifiedDate,state",
}


class AppStoreConnectSource(SourceConfig):
    type: Literal["appstoreconnect"]
    app_id: int = Field(
        ge=1,
        description="the app's Apple ID (App Store Connect > App Information), e.g. 682658836",
    )
    key_id: str = Field(
        pattern=r"^[A-Z0-9]{8,16}$", description="the API key's Key ID, e.g. 2X9R4HXF34"
    )
    issuer_id: str = Field(
        pattern=r"^[0-9a-fA-F-]{36}$",
        description="the team's Issuer ID (Users and Access > Integrations)",
    )
    key_env: str = Field(
        default="APP_STORE_CONNECT_KEY",
        description="environment variable with the .p8 key file's path, or the key itself",
    )
    api: str = Field(
        default="https://api.appstoreconnect.apple.com", description="the API's address"
    )
    max_pages: int = Field(default=10, ge=1, le=100, description="pages of 200 reviews per fetch")

    _base = field_validator("api")(api_base)

    @field_validator("key_id", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value  # YAML reads 2938475610 as a number

    def endpoint(self) -> str:
        return f"appstoreconnect:{self.app_id}"

    def default_kind(self) -> Kind:
        return "reviews"


def console_link(app_id: int | str) -> str:
    """Where the team reads and answers the app's reviews in App Store Connect."""
    return f"https://appstoreconnect.apple.com/apps/{quote(str(app_id))}/distribution/activity/ios/ratingsResponses"


def _responses(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The included customerReviewResponses by id."""
    included = doc.get("included")
    return {
        str(r.get("id")): r
        for r in (included if isinstance(included, list) else [])
        if isinstance(r, dict) and r.get("type") == "customerReviewResponses"
    }


def _response_of(review: dict[str, Any], responses: dict[str, dict[str, Any]]) -> Any:
    rel = (review.get("relationships") or {}).get("response") or {}
    data = rel.get("data") if isinstance(rel, dict) else None
    return responses.get(str(data.get("id"))) if isinstance(data, dict) else None


def review_entry(
    review: dict[str, Any], app_id: int, response: dict[str, Any] | None = None
) -> Entry:
    """One review: title, body, stars, the reviewer's nickname and territory, and the team's
    response where the review has one."""
    if review.get("type") != "customerReviews" or not review.get("id"):
        raise ValueError("not a customer review")
    a = review.get("attributes")
    if not isinstance(a, dict):
        raise ValueError("a review without attributes")
    title = str(a["title"]) if isinstance(a.get("title"), str) else ""
    body = str(a["body"]) if isinstance(a.get("body"), str) else ""
    stars = a.get("rating")
    rating = float(stars) if type(stars) is int and 1 <= stars <= 5 else None
    created = time_or_none(a.get("createdDate"))
    reply = response.get("attributes") if isinstance(response, dict) else None
    review_id = str(review["id"])
    return Entry(
        external_id=review_id,
        url=console_link(app_id),
        author=a.get("reviewerNickname") if isinstance(a.get("reviewerNickname"), str) else None,
        title=title.strip(),
        text=body.strip(),
        html=None,
        language=None,  # the territory is a store, not a language
        published_at=created,
        content_hash=content_hash(title, body, rating),
        rating=rating,
        raw={
            "review_id": review_id,
            "app_id": app_id,
            "territory": a.get("territory"),
            "developer_reply": {
                "id": response.get("id") if isinstance(response, dict) else None,
                "text": reply.get("responseBody"),
                "at": reply.get("lastModifiedDate"),
                "state": reply.get("state"),
            }
            if isinstance(reply, dict)
            else None,
        },
    )


# Renewed two minutes before their 15 are up.
TOKENS = TokenCache(margin_s=120)


def _signed_token(source: AppStoreConnectSource) -> tuple[str, float]:
    """(token, lifetime in seconds): a JWT signed with the team key, as Apple asks."""
    key = key_from_env(
        source.endpoint(),
        source.key_env,
        "the path of the API key's .p8 file (App Store Connect > Users and Access > "
        "Integrations > App Store Connect API; a team key with the Customer Support "
        "role or above), or to the key itself",
        inline_prefix="-----BEGIN",
    )
    now = int(time.time())
    claims = {"iss": source.issuer_id, "iat": now, "exp": now + TOKEN_LIFETIME, "aud": AUDIENCE}
    try:
        token = jwt.encode(
            claims, key, algorithm="ES256", headers={"kid": source.key_id, "typ": "JWT"}
        )
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise KeyProblem(
            f"{source.endpoint()}: {source.key_env} does not hold an App Store Connect "
            f"private key (.p8) that can sign ({type(exc).__name__})"
        ) from None
    secrets.register(f"{source.name} token", token, from_env=False)
    return token, TOKEN_LIFETIME


def _call(
    client: httpx.Client,
    source: AppStoreConnectSource,
    method: str,
    url: str,
    body: Any = None,
) -> Any:
    key = (source.issuer_id, source.key_id)
    headers = {"Authorization": f"Bearer {TOKENS.get(key, lambda: _signed_token(source))}"}
    try:
        return call_api(client, method, url, headers=headers, json_body=body)
    except FetchError as exc:
        if exc.http_status in (401, 403):
            TOKENS.forget(key)
            raise FetchError(
                f"{exc} (check {source.key_env}, key_id and issuer_id, and that the key is not "
                "revoked and has the Customer Support role or above)",
                http_status=exc.http_status,
            ) from None
        raise


def _next_link(doc: Any, source: AppStoreConnectSource) -> str | None:
    """The next page's URL, only where it stays on the API's own host: the token is never
    sent anywhere else."""
    links = doc.get("links") if isinstance(doc, dict) else None
    nxt = links.get("next") if isinstance(links, dict) else None
    if not isinstance(nxt, str):
        return None
    there, here = urlsplit(nxt), urlsplit(source.api)
    if (there.scheme, there.netloc) != (here.scheme, here.netloc):
        return None
    return nxt


def _created(review: dict[str, Any]) -> float | None:
    a = review.get("attributes")
    when = time_or_none(a.get("createdDate")) if isinstance(a, dict) else None
    return when.timestamp() if when else None


@register
class AppStoreConnectCollector:
    type: ClassVar[str] = "appstoreconnect"
    config_model: ClassVar[builtins.type[SourceConfig]] = AppStoreConnectSource
    # Apple documents no limit; 5,970 characters is what App Store Connect's own form takes.
    max_chars: ClassVar[int] = 5970
    resend_safe: ClassVar[timedelta] = timedelta.max  # a second response replaces the first
    checks_per_hour: ClassVar[int] = 300  # of the key's few thousand requests an hour

    def fetch(
        self, source: AppStoreConnectSource, state: SourceState, client: httpx.Client
    ) -> FetchResult:
        cursor = dict(state.cursor)
        seen = float(cursor.get("created", 0))
        backfills: list[dict[str, Any]] = list(cursor.get("backfill") or [])
        first = f"{source.api}/v1/apps/{source.app_id}/customerReviews?{urlencode(REVIEW_FIELDS)}"
        budget = source.max_pages
        got: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        warnings: list[str] = []

        def read(url: str, until: float) -> tuple[str | None, bool]:
            """One page: keeps reviews created at `until` or later; (next URL, reached)."""
            nonlocal budget
            budget -= 1
            doc = _call(client, source, "GET", url)
            data = doc.get("data") if isinstance(doc, dict) else None
            reviews = [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
            responses = _responses(doc) if isinstance(doc, dict) else {}
            stamps = [_created(r) for r in reviews]
            got.extend(
                (r, _response_of(r, responses))
                for r, t in zip(reviews, stamps, strict=True)
                if t is None or t >= until
            )
            reached = any(t is not None and t < until for t in stamps)
            return _next_link(doc, source), reached or not reviews

        # New reviews first, newest first, down to the newest one read last time.
        newest = seen
        url: str | None = first
        reached = False
        while url and budget > 0 and not reached:
            before = len(got)
            url, reached = read(url, seen)
            newest = max([newest, *(t for r, _ in got[before:] if (t := _created(r)))])
        if url and not reached:
            # More new reviews than this fetch's pages: the rest is read by later fetches.
            backfills.insert(0, {"next": url, "until": seen})
            if seen:
                warnings.append(
                    f"more than {source.max_pages} pages of new reviews: the older ones are "
                    "read by the next fetches"
                )
        # Then older pages left by earlier fetches, as far as the page budget goes.
        while backfills and budget > 0:
            job = backfills[0]
            try:
                nxt, done = read(str(job["next"]), float(job.get("until") or 0))
            except FetchError as exc:
                # What this fetch read is kept either way. A refused page (an expired paging
                # cursor) will not come back: that backfill ends, and says so.
                if exc.http_status is not None and 400 <= exc.http_status < 500:
                    backfills.pop(0)
                    warnings.append(f"older reviews were not all read: {exc}")
                else:
                    warnings.append(f"older reviews are read later: {exc}")
                    break
                continue
            if done or not nxt:
                backfills.pop(0)
            else:
                job["next"] = nxt
        cursor["created"] = newest
        cursor["backfill"] = backfills[:MAX_BACKFILLS]
        entries, rejected = normalise_each(
            got,
            lambda pair: review_entry(pair[0], source.app_id, pair[1]),
            lambda i, pair: f"review {str(pair[0].get('id'))[:80]!r}",
        )
        return FetchResult(
            entries,
            SourceState(url=state.url, cursor=cursor),
            http_status=200,
            rejected=rejected,
            warnings=warnings,
        )

    def reply(
        self,
        source: AppStoreConnectSource,
        target: ReplyTarget,
        text: str,
        attempt: ReplyAttempt,
        client: httpx.Client,
    ) -> Posted:
        review_id = str(target.raw.get("review_id") or target.external_id)
        url = f"{source.api}/v1/customerReviewResponses"
        body = {
            "data": {
                "type": "customerReviewResponses",
                "attributes": {"responseBody": text},
                "relationships": {"review": {"data": {"type": "customerReviews", "id": review_id}}},
            }
        }
        try:
            doc = _call(client, source, "POST", url, body)
        except FetchError as exc:
            if isinstance(exc, KeyProblem):  # a setting to fix first
                raise ReplyError(str(exc), final=True) from None
            raise reply_error(exc, url) from None
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, dict) or not data.get("id"):
            raise ReplyError(f"{url}: the answer names no response")
        found = data.get("attributes")
        attributes: dict[str, Any] = found if isinstance(found, dict) else {}
        at: datetime | None = time_or_none(attributes.get("lastModifiedDate"))
        return Posted(
            platform_id=str(data["id"]),
            url=console_link(source.app_id),
            at=at,
            response={"data": {"id": data["id"], "attributes": attributes}},
        )

    def find_reply(
        self, source: AppStoreConnectSource, target: ReplyTarget, client: httpx.Client
    ) -> Posted | None:
        """The team's response to the review, published or pending, as Apple has it now."""
        review_id = str(target.raw.get("review_id") or target.external_id)
        url = f"{source.api}/v1/customerReviews/{quote(review_id, safe='')}/response"
        try:
            doc = _call(client, source, "GET", url)
        except FetchError as exc:
            if exc.http_status == 404:  # no response to this review
                return None
            raise
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, dict) or not data.get("id"):
            return None
        found = data.get("attributes")
        attributes: dict[str, Any] = found if isinstance(found, dict) else {}
        return Posted(
            platform_id=str(data["id"]),
            url=console_link(source.app_id),
            at=time_or_none(attributes.get("lastModifiedDate")),
            response={"data": {"id": data["id"], "attributes": attributes}},
        )
