"""Mastodon (and other servers speaking its API: Pleroma, Akkoma, GoToSocial...) on a chosen
instance: hashtag timelines, public on most instances (no key), and the mentions of your
account (an access token from the environment).

Read with the same HTTP client as feeds (address checks, size and time limits), not with a
client library: the two endpoints are plain JSON lists paged by `min_id`.

Replies are posted on the same instance with the same token (scope write:statuses too), as
answers to the status's id there. Mastodon keeps an `Idempotency-Key` for an hour, so a send
cut off mid-way is sent again with its key within that hour and never makes two replies.
"""

from __future__ import annotations

import builtins
import hashlib
import threading
from datetime import timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlencode

import httpx
from pydantic import Field, field_validator, model_validator

from listener import secrets
from listener.textnorm import html_to_text
from listener.timeutil import time_or_none
from sources import register
from sources.base import (
    Entry,
    FetchError,
    FetchResult,
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
from sources.http import call_api, get_json
from sources.rss import content_hash

PAGE = 40  # the most Mastodon returns per page


class MastodonSource(SourceConfig):
    type: Literal["mastodon"]
    instance: str = Field(description="the server to read from, e.g. https://mastodon.social")
    hashtags: list[str] = Field(
        default_factory=list, max_length=20, description="tags without #; public, no key"
    )
    mentions: bool = Field(
        default=False, description="the mentions of the account whose token is given"
    )
    query: str | None = Field(
        default=None,
        min_length=1,
        description="full-text search of posts (needs a token; as far as the instance allows)",
    )
    access_token_env: str = Field(
        default="MASTODON_ACCESS_TOKEN",
        description="environment variable with an access token (scope read:notifications)",
    )
    max_pages: int = Field(default=5, ge=1, le=50, description="pages of 40 per fetch")

    _base = field_validator("instance")(api_base)

    @field_validator("hashtags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return [t.lstrip("#") for t in value if t.strip("# ")]

    @model_validator(mode="after")
    def _something(self) -> MastodonSource:
        if not self.hashtags and not self.mentions and not self.query:
            raise ValueError(
                "give `hashtags`, or `mentions: true` or a `query` with an access token"
            )
        return self

    def endpoint(self) -> str:
        what = [f"#{t}" for t in self.hashtags] + (["mentions"] if self.mentions else [])
        what += [f"search {self.query!r}"] if self.query else []
        return f"{self.instance}: {', '.join(what)}"


def status_entry(status: dict[str, Any]) -> Entry:
    """One status as a mention. Its federated `uri` is the id: the same post seen through two
    instances is one mention."""
    html = status.get("content")
    if not isinstance(html, str):
        raise ValueError("a status without content")
    account = status.get("account") or {}
    warning = status.get("spoiler_text") or ""
    followers = account.get("followers_count")
    language = status.get("language")
    text = html_to_text(html)
    return Entry(
        external_id=str(status["uri"]),
        url=status.get("url") or status.get("uri"),
        author=account.get("acct"),
        title=warning if isinstance(warning, str) else "",
        text=text,
        html=html,
        # The language the writer's app declared (often its interface's): a hint.
        language=language if isinstance(language, str) else None,
        published_at=time_or_none(status.get("created_at")),
        content_hash=content_hash(warning, html, status.get("edited_at")),
        reach=followers if isinstance(followers, int) and followers >= 0 else None,
        raw={
            k: status.get(k)
            for k in (
                "id",
                "uri",
                "url",
                "created_at",
                "edited_at",
                "language",
                "visibility",
                "in_reply_to_id",
                "replies_count",
                "reblogs_count",
                "favourites_count",
            )
        }
        | {"account": {k: account.get(k) for k in ("id", "acct", "url", "followers_count")}},
    )


def _newer(items: list[Any], key: str, after: str | None) -> list[dict[str, Any]]:
    """Items whose snowflake id (compared as a number) is above `after`."""
    out = []
    for item in items:
        if not isinstance(item, dict) or not str(item.get(key, "")).isdigit():
            continue
        if after is None or int(item[key]) > int(after):
            out.append(item)
    return out


# A reply is never more public than what it answers: a followers-only or direct status is
# answered directly (to the people it names), never in public.
REPLY_VISIBILITY = {"public": "public", "unlisted": "unlisted", "private": "direct"}


def reply_form(target: ReplyTarget, text: str) -> dict[str, str]:
    """The POST /api/v1/statuses form answering `target`: the writer is named first (so they
    are notified), unless the text already names them."""
    raw = target.raw
    status_id = str(raw.get("id") or "")
    if not status_id.isdigit():
        raise ReplyError(f"{target.external_id}: no status id to answer", final=True)
    acct = str((raw.get("account") or {}).get("acct") or target.author or "")
    if acct and f"@{acct}".lower() not in text.lower():
        text = f"@{acct} {text}"
    form = {
        "status": text,
        "in_reply_to_id": status_id,
        "visibility": REPLY_VISIBILITY.get(str(raw.get("visibility")), "direct"),
    }
    if target.language and len(target.language) == 2:
        form["language"] = target.language
    return form


class _Accounts:
    """The account id behind each access token, asked once per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str], str] = {}

    def own_id(self, client: httpx.Client, source: MastodonSource, token: str) -> str:
        key = (source.instance, hashlib.sha256(token.encode()).hexdigest())
        with self._lock:
            if key in self._ids:
                return self._ids[key]
        url = f"{source.instance}/api/v1/accounts/verify_credentials"
        doc = get_json(client, url, {"Authorization": f"Bearer {token}"})
        if not isinstance(doc, dict) or not doc.get("id"):
            raise FetchError(f"{url}: the answer names no account")
        with self._lock:
            self._ids[key] = str(doc["id"])
        return self._ids[key]


ACCOUNTS = _Accounts()


@register
class MastodonCollector:
    type: ClassVar[str] = "mastodon"
    config_model: ClassVar[builtins.type[SourceConfig]] = MastodonSource
    max_chars: ClassVar[int] = 450  # 500 on most instances, less the @name put in front
    resend_safe: ClassVar[timedelta] = timedelta(minutes=50)  # Idempotency-Key lives an hour
    checks_per_hour: ClassVar[int] = 150  # of the 300 requests per 5 minutes an account has

    def reply(
        self,
        source: MastodonSource,
        target: ReplyTarget,
        text: str,
        attempt: ReplyAttempt,
        client: httpx.Client,
    ) -> Posted:
        token = secrets.register_env(source.access_token_env)
        if not token:
            raise ReplyError(
                f"{source.instance}: set {source.access_token_env} to an access token with "
                "scope write:statuses to post replies",
                final=True,
            )
        url = f"{source.instance}/api/v1/statuses"
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": attempt.key}
        try:
            doc = call_api(client, "POST", url, headers=headers, form=reply_form(target, text))
        except FetchError as exc:
            raise reply_error(exc, url) from None
        if not isinstance(doc, dict) or not doc.get("id"):
            raise ReplyError(f"{url}: the answer names no status")
        return Posted(
            platform_id=str(doc["id"]),
            url=doc.get("url") if isinstance(doc.get("url"), str) else None,
            at=time_or_none(doc.get("created_at")),
            response={k: doc.get(k) for k in ("id", "uri", "url", "created_at", "visibility")},
        )

    def find_reply(
        self, source: MastodonSource, target: ReplyTarget, client: httpx.Client
    ) -> Posted | None:
        """A reply from your account (the token's) to the mention, posted from any app."""
        token = secrets.register_env(source.access_token_env)
        status_id = str(target.raw.get("id") or "")
        if not token or not status_id.isdigit():
            return None  # no account to answer from, or nothing to answer on this instance
        headers = {"Authorization": f"Bearer {token}"}
        me = ACCOUNTS.own_id(client, source, token)
        doc = get_json(client, f"{source.instance}/api/v1/statuses/{status_id}/context", headers)
        later = doc.get("descendants") if isinstance(doc, dict) else None
        for status in later if isinstance(later, list) else []:
            if (
                isinstance(status, dict)
                and str(status.get("in_reply_to_id")) == status_id
                and str((status.get("account") or {}).get("id")) == me
            ):
                return Posted(
                    platform_id=str(status.get("id")),
                    url=status.get("url") if isinstance(status.get("url"), str) else None,
                    at=time_or_none(status.get("created_at")),
                    response={k: status.get(k) for k in ("id", "uri", "url", "created_at")},
                )
        return None

    def fetch(
        self, source: MastodonSource, state: SourceState, client: httpx.Client
    ) -> FetchResult:
        cursor = dict(state.cursor)
        seen: dict[str, str] = dict(cursor.get("min_id") or {})
        statuses: list[dict[str, Any]] = []
        warnings: list[str] = []
        for tag in source.hashtags:
            path = f"/api/v1/timelines/tag/{quote(tag, safe='')}"
            got, newest = self._read(client, source, path, {}, seen.get(f"#{tag}"), None, warnings)
            statuses += got
            if newest:
                seen[f"#{tag}"] = newest
        token = secrets.register_env(source.access_token_env)
        if (source.mentions or source.query) and not token:
            raise FetchError(
                f"{source.endpoint()}: set {source.access_token_env} to an access token of "
                "your account (Preferences > Development > New application, scope "
                "read:notifications for mentions, read:search for a query)"
            )
        if source.query and token:
            found, newest = self._search(client, source, seen.get("search"), token, warnings)
            statuses += found
            if newest:
                seen["search"] = newest
        if source.mentions and token:
            notes, newest = self._read(
                client,
                source,
                "/api/v1/notifications",
                {"types[]": "mention"},
                seen.get("mentions"),
                token,
                warnings,
            )
            statuses += [n["status"] for n in notes if isinstance(n.get("status"), dict)]
            if newest:
                seen["mentions"] = newest
        cursor["min_id"] = seen
        # A boost is not a new opinion; the same status through two tags is one mention.
        unique = {str(s.get("uri")): s for s in statuses if not s.get("reblog") and s.get("uri")}
        entries, rejected = normalise_each(
            list(unique.values()),
            status_entry,
            lambda i, s: (
                f"status {str(s.get('uri'))[:100]!r}" if isinstance(s, dict) else f"status {i + 1}"
            ),
        )
        return FetchResult(
            entries,
            SourceState(url=state.url, cursor=cursor),
            http_status=200,
            rejected=rejected,
            warnings=warnings,
        )

    def _search(
        self,
        client: httpx.Client,
        source: MastodonSource,
        after: str | None,
        token: str,
        warnings: list[str],
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Posts matching the query newer than `after` (Mastodon's v2 search, paged by offset
        with min_id as a floor). What it finds depends on the instance: full-text search
        needs its search engine, and reaches only posts whose authors let themselves be found
        (Mastodon 4.2+) or that the account has seen."""
        headers = {"Authorization": f"Bearer {token}"}
        out: list[dict[str, Any]] = []
        for page in range(source.max_pages):
            query = {
                "q": str(source.query),
                "type": "statuses",
                "resolve": "false",
                "limit": str(PAGE),
                "offset": str(page * PAGE),
                **({"min_id": after} if after else {}),
            }
            url = f"{source.instance}/api/v2/search?{urlencode(query)}"
            doc = get_json(client, url, headers)
            items = doc.get("statuses") if isinstance(doc, dict) else None
            got = _newer(items if isinstance(items, list) else [], "id", after)
            out += got
            if len(items if isinstance(items, list) else []) < PAGE or after is None:
                break  # the last page, or a first read: the newest page to start from
            if page + 1 == source.max_pages:
                warnings.append(
                    f"search {source.query!r}: more than {source.max_pages} pages of new "
                    "posts; the rest were not read (raise max_pages or fetch more often)"
                )
        newest = max((int(s["id"]) for s in out), default=None)
        return out, str(newest) if newest is not None else after

    def _read(
        self,
        client: httpx.Client,
        source: MastodonSource,
        path: str,
        params: dict[str, str],
        after: str | None,
        token: str | None,
        warnings: list[str],
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Items newer than `after` (all of them, up to max_pages pages, paging up with
        min_id); the first read takes the newest page only. The newest id read, or None."""
        headers = {"Authorization": f"Bearer {token}"} if token else None
        out: list[dict[str, Any]] = []
        newest = after
        for page in range(source.max_pages):
            query = {**params, "limit": str(PAGE), **({"min_id": newest} if newest else {})}
            url = f"{source.instance}{path}?{urlencode(query)}"
            try:
                doc = get_json(client, url, headers)
            except FetchError as exc:
                if exc.http_status in (401, 403) and token is None:
                    raise FetchError(
                        f"{url}: HTTP {exc.http_status}: this instance does not show hashtag "
                        "timelines without signing in; read them on another instance",
                        http_status=exc.http_status,
                    ) from None
                raise
            items = _newer(doc if isinstance(doc, list) else [], "id", newest)
            if not items:
                break
            out += items
            newest = str(max(int(i["id"]) for i in items))
            if after is None:  # a first read: the newest page is enough to start from
                break
            if page + 1 == source.max_pages:
                warnings.append(
                    f"{path}: more than {source.max_pages} pages of new posts; the rest are "
                    "read at the next fetch"
                )
        return out, newest
