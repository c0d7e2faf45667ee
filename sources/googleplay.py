"""Google Play: the reviews of your own app through the Google Play Developer API (reviews.list),
and replies to them (reviews.reply), signed in as a service account.

The service account's JSON key file is named by an environment variable (a path, as Google's
own GOOGLE_APPLICATION_CREDENTIALS); listener signs a token request with its private key
(OAuth 2.0 JWT bearer grant, RS256) and keeps the hour-long access token in memory only.
The API lists reviews created or edited in about the last week, newest first, and only those
with text: a source must be fetched at least every few days to miss none.
"""

from __future__ import annotations

import builtins
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlencode

import httpx
import jwt
from pydantic import Field, field_validator

from listener import secrets
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
from sources.http import call_api, get_json
from sources.rss import content_hash

SCOPE = "https://www.googleapis.com/auth/androidpublisher"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
PAGE = 100  # the most reviews.list returns per page
PACKAGE = r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+$"


class GooglePlaySource(SourceConfig):
    type: Literal["googleplay"]
    package: str = Field(pattern=PACKAGE, description="the app's package name, e.g. com.acme.app")
    credentials_env: str = Field(
        default="GOOGLE_PLAY_CREDENTIALS",
        description="environment variable with the path of the service account's JSON key file",
    )
    api: str = Field(
        default="https://androidpublisher.googleapis.com", description="the API's address"
    )
    max_pages: int = Field(default=10, ge=1, le=100, description="pages of 100 reviews per fetch")

    _base = field_validator("api")(api_base)

    def endpoint(self) -> str:
        return f"googleplay:{self.package}"

    def default_kind(self) -> Kind:
        return "reviews"


def _time(stamp: Any) -> datetime | None:
    """A protobuf Timestamp as JSON ({"seconds": "1443676826", "nanos": 713000000})."""
    if not isinstance(stamp, dict):
        return None
    try:
        seconds = int(stamp.get("seconds", ""))
        nanos = int(stamp.get("nanos") or 0)
        return datetime.fromtimestamp(seconds + nanos / 1e9, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def review_link(package: str, review_id: str) -> str:
    return (
        f"https://play.google.com/store/apps/details?id={quote(package)}"
        f"&reviewId={quote(review_id, safe='')}"
    )


def review_entry(review: dict[str, Any], package: str) -> Entry:
    """One review: the user's comment (a title, where the app had one, before a tab), stars,
    app version, device and the reviewer's device language as a hint."""
    comments = [c for c in review.get("comments") or [] if isinstance(c, dict)]
    user = next(
        (c["userComment"] for c in comments if isinstance(c.get("userComment"), dict)), None
    )
    if user is None or not isinstance(user.get("text"), str):
        raise ValueError("a review without a user comment")
    reply = next(
        (c["developerComment"] for c in comments if isinstance(c.get("developerComment"), dict)),
        None,
    )
    title, _, body = (
        user["text"].partition("\t") if "\t" in user["text"] else ("", "", user["text"])
    )
    stars = user.get("starRating")
    rating = float(stars) if isinstance(stars, int) and 1 <= stars <= 5 else None
    language = user.get("reviewerLanguage")
    modified = _time(user.get("lastModified"))
    review_id = str(review["reviewId"])
    return Entry(
        external_id=review_id,
        url=review_link(package, review_id),
        author=review.get("authorName") if isinstance(review.get("authorName"), str) else None,
        title=title.strip(),
        text=body.strip(),
        html=None,
        # The device's language setting, not necessarily the review's: a hint to detection.
        language=language.split("_")[0] if isinstance(language, str) and language else None,
        published_at=modified,
        content_hash=content_hash(user["text"], rating, (user.get("lastModified") or {})),
        rating=rating,
        raw={
            "review_id": review_id,
            "package": package,
            "app_version": user.get("appVersionName"),
            "app_version_code": user.get("appVersionCode"),
            "device": user.get("device"),
            "device_metadata": user.get("deviceMetadata"),
            "android_os_version": user.get("androidOsVersion"),
            "reviewer_language": language,
            "thumbs_up": user.get("thumbsUpCount"),
            "thumbs_down": user.get("thumbsDownCount"),
            "original_text": user.get("originalText"),
            "developer_reply": {
                "text": reply.get("text"),
                "at": (
                    _time(reply.get("lastModified")) or modified or datetime.now(UTC)
                ).isoformat(),
            }
            if reply
            else None,
        },
    )


TOKENS = TokenCache(margin_s=60)


def access_token(client: httpx.Client, source: GooglePlaySource) -> str:
    """An access token for the service account, from memory while it is good (an hour)."""
    key = _key_file(source)
    account, token_uri = str(key["client_email"]), str(key["token_uri"])
    return TOKENS.get((account, token_uri), lambda: _grant(client, source, key))


def _grant(
    client: httpx.Client, source: GooglePlaySource, key: dict[str, Any]
) -> tuple[str, float]:
    """(access token, lifetime in seconds) for a JWT signed with the service account's key."""
    account, token_uri = str(key["client_email"]), str(key["token_uri"])
    now = int(time.time())
    claims = {"iss": account, "scope": SCOPE, "aud": token_uri, "iat": now, "exp": now + 3600}
    try:
        assertion = jwt.encode(claims, key["private_key"], algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise FetchError(
            f"{source.endpoint()}: the key file named by {source.credentials_env} has a "
            f"private key that cannot sign ({type(exc).__name__})",
            disable=True,
        ) from None
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    try:
        doc = call_api(client, "POST", token_uri, form=form)
    except FetchError as exc:
        if exc.http_status in (400, 401):  # invalid_grant: a deleted or disabled key
            raise FetchError(
                f"{source.endpoint()}: Google refused the service account {account} "
                f"({exc}); the source is switched off until `listener sources enable`",
                http_status=exc.http_status,
                disable=True,
            ) from None
        raise
    if not isinstance(doc, dict) or not isinstance(doc.get("access_token"), str):
        raise FetchError(f"{token_uri}: no access token in the answer")
    token = doc["access_token"]
    secrets.register(f"{source.name} access token", token, from_env=False)
    expires = doc.get("expires_in")
    return token, expires if isinstance(expires, int) and expires > 0 else 3600


def _key_file(source: GooglePlaySource) -> dict[str, Any]:
    """The service account's key, from the file the environment names."""
    text = key_from_env(
        source.endpoint(),
        source.credentials_env,
        "the path of a service account's JSON key file (Google Cloud console > IAM > "
        "Service accounts > Keys), invited in Play Console with the permission to view app "
        "information and reply to reviews",
    )
    try:
        key = json.loads(text)
    except ValueError:
        key = None
    if not isinstance(key, dict) or not all(
        isinstance(key.get(k), str) for k in ("client_email", "private_key")
    ):
        raise KeyProblem(
            f"{source.endpoint()}: the file named by {source.credentials_env} is not a service "
            "account key (no client_email / private_key)"
        )
    secrets.register(f"{source.credentials_env} private key", key["private_key"], from_env=False)
    key.setdefault("token_uri", GOOGLE_TOKEN_URI)
    return key


@register
class GooglePlayCollector:
    type: ClassVar[str] = "googleplay"
    config_model: ClassVar[builtins.type[SourceConfig]] = GooglePlaySource
    max_chars: ClassVar[int] = 350  # what Google Play takes
    resend_safe: ClassVar[timedelta] = timedelta.max  # a second reply replaces the first
    # Google allows about 200 review reads an hour per app: most are left to reviews.list.
    checks_per_hour: ClassVar[int] = 60

    def fetch(
        self, source: GooglePlaySource, state: SourceState, client: httpx.Client
    ) -> FetchResult:
        cursor = dict(state.cursor)
        seen = float(cursor.get("modified", 0))
        headers = {"Authorization": f"Bearer {access_token(client, source)}"}
        base = f"{source.api}/androidpublisher/v3/applications/{quote(source.package)}/reviews"
        reviews: list[dict[str, Any]] = []
        warnings: list[str] = []
        page_token: str | None = None
        newest = seen
        for page in range(source.max_pages):
            query = {"maxResults": str(PAGE), **({"token": page_token} if page_token else {})}
            doc = get_json(client, f"{base}?{urlencode(query)}", headers)
            items = doc.get("reviews") if isinstance(doc, dict) else None
            got = [r for r in items if isinstance(r, dict)] if isinstance(items, list) else []
            stamps = [_modified(r) for r in got]
            # Newest created or edited first: what was read last time ends the reading.
            reviews += [r for r, t in zip(got, stamps, strict=True) if t is None or t > seen]
            newest = max([newest, *(t for t in stamps if t is not None)])
            older = any(t is not None and t <= seen for t in stamps)
            paging = doc.get("tokenPagination") if isinstance(doc, dict) else None
            page_token = paging.get("nextPageToken") if isinstance(paging, dict) else None
            if not got or older or not page_token:
                break
            if page + 1 == source.max_pages:
                warnings.append(
                    f"more than {source.max_pages} pages of new reviews: the oldest were not "
                    "read (raise max_pages)"
                )
        cursor["modified"] = newest
        entries, rejected = normalise_each(
            reviews,
            lambda r: review_entry(r, source.package),
            lambda i, r: f"review {str(r.get('reviewId'))[:80]!r}",
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
        source: GooglePlaySource,
        target: ReplyTarget,
        text: str,
        attempt: ReplyAttempt,
        client: httpx.Client,
    ) -> Posted:
        review_id = str(target.raw.get("review_id") or target.external_id)
        url = (
            f"{source.api}/androidpublisher/v3/applications/{quote(source.package)}/reviews/"
            f"{quote(review_id, safe='')}:reply"
        )
        try:
            headers = {"Authorization": f"Bearer {access_token(client, source)}"}
            doc = call_api(client, "POST", url, headers=headers, json_body={"replyText": text})
        except FetchError as exc:
            if isinstance(exc, KeyProblem) or exc.disable:  # settings to fix first
                raise ReplyError(str(exc), final=True) from None
            raise reply_error(exc, url) from None
        result = doc.get("result") if isinstance(doc, dict) else None
        if not isinstance(result, dict):
            raise ReplyError(f"{url}: the answer has no result")
        return Posted(
            platform_id=review_id,
            url=review_link(source.package, review_id),
            at=_time(result.get("lastEdited")),
            response={"result": result},
        )

    def find_reply(
        self, source: GooglePlaySource, target: ReplyTarget, client: httpx.Client
    ) -> Posted | None:
        """The developer's reply to the review, as reviews.get shows it now."""
        review_id = str(target.raw.get("review_id") or target.external_id)
        url = (
            f"{source.api}/androidpublisher/v3/applications/{quote(source.package)}/reviews/"
            f"{quote(review_id, safe='')}"
        )
        headers = {"Authorization": f"Bearer {access_token(client, source)}"}
        doc = call_api(client, "GET", url, headers=headers)
        comments = doc.get("comments") if isinstance(doc, dict) else None
        reply = next(
            (
                c["developerComment"]
                for c in (comments if isinstance(comments, list) else [])
                if isinstance(c, dict) and isinstance(c.get("developerComment"), dict)
            ),
            None,
        )
        if reply is None:
            return None
        return Posted(
            platform_id=review_id,
            url=review_link(source.package, review_id),
            at=_time(reply.get("lastModified")),
            response={"developerComment": reply},
        )


def _modified(review: dict[str, Any]) -> float | None:
    for c in review.get("comments") or []:
        if isinstance(c, dict) and isinstance(c.get("userComment"), dict):
            when = _time(c["userComment"].get("lastModified"))
            return when.timestamp() if when else None
    return None
