"""Bluesky through the AT Protocol's XRPC API.

Two ways in: **search** (`query`, or posts that mention `mentions_of`) and **accounts** (what
chosen accounts post, without any key). Bluesky's public AppView refuses unauthenticated post
search (HTTP 403), so search signs in with an app password (never the account's password)
from the environment and asks the account's PDS, which forwards to the AppView. The session
is kept in memory for the process and refreshed when it expires; nothing about it is stored.

Replies are posts in the mention's thread, written to the signed-in account's repository
(com.atproto.repo.createRecord) under a record key fixed by the approved reply: a second try
of the same reply finds its record already there instead of posting it again.
"""

from __future__ import annotations

import builtins
import hashlib
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlencode

import httpx
from pydantic import Field, field_validator, model_validator

from listener import secrets
from listener.timeutil import iso, time_or_none
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
from sources.http import call_api, get_json, post_json
from sources.rss import content_hash

PROFILES_PER_CALL = 25  # app.bsky.actor.getProfiles takes at most 25 actors
POST_TYPE = "app.bsky.feed.post"
FIRST_LOOK_BACK = timedelta(days=2)  # a new search source starts this far back


class BlueskySource(SourceConfig):
    type: Literal["bluesky"]
    query: str | None = Field(
        default=None, description="search words (Lucene syntax); needs an app password"
    )
    mentions_of: str | None = Field(
        default=None, description="a handle: posts that mention it; needs an app password"
    )
    accounts: list[str] = Field(
        default_factory=list,
        description="handles whose posts and replies to read; no key needed",
        max_length=50,
    )
    lang: str | None = Field(default=None, description="search only posts in this language")
    handle_env: str = Field(
        default="BLUESKY_HANDLE", description="environment variable with the signing-in handle"
    )
    app_password_env: str = Field(
        default="BLUESKY_APP_PASSWORD",
        description="environment variable with an app password (Settings > App passwords)",
    )
    service: str = Field(
        default="https://bsky.social", description="the signing-in account's PDS (for search)"
    )
    appview: str = Field(
        default="https://public.api.bsky.app", description="where keyless reads go"
    )
    max_pages: int = Field(default=5, ge=1, le=50, description="pages of 100 posts per fetch")
    followers: bool = Field(
        default=True,
        description="reach = the author's followers (one extra call per 25 authors)",
    )

    @model_validator(mode="after")
    def _one_target(self) -> BlueskySource:
        given = [bool(self.query), bool(self.mentions_of), bool(self.accounts)]
        if sum(given) != 1:
            raise ValueError("give exactly one of `query`, `mentions_of` or `accounts`")
        return self

    _base = field_validator("service", "appview")(api_base)

    def searches(self) -> bool:
        return not self.accounts

    def has_account(self) -> bool:
        """Whether the environment names an account to sign in with (registered as secrets)."""
        return bool(
            secrets.register_env(self.handle_env) and secrets.register_env(self.app_password_env)
        )

    def endpoint(self) -> str:
        if self.query:
            return f"bluesky:search:{self.query}"
        if self.mentions_of:
            return f"bluesky:mentions:{self.mentions_of}"
        return f"bluesky:accounts:{','.join(self.accounts)}"


def post_url(post: dict[str, Any]) -> str | None:
    """The post's page on bsky.app, from its at:// URI and its author's handle."""
    uri = post.get("uri")
    if not isinstance(uri, str) or not uri.startswith("at://"):
        return None
    repo, _, rkey = uri[len("at://") :].partition(f"/{POST_TYPE}/")
    author = post.get("author") or {}
    who = author.get("handle") or repo
    return f"https://bsky.app/profile/{quote(str(who))}/post/{quote(rkey)}" if rkey else None


def post_entry(post: dict[str, Any], followers: dict[str, int]) -> Entry:
    """One post view (app.bsky.feed.defs#postView) as a mention."""
    record = post["record"]
    if record.get("$type", POST_TYPE) != POST_TYPE:
        raise ValueError(f"not a post: {str(record.get('$type'))[:60]}")
    text = record.get("text")
    if not isinstance(text, str):
        raise ValueError("a post without text")
    author = post.get("author") or {}
    handle = author.get("handle")
    langs = record.get("langs")
    # `langs` is what the writer's app declared (often just its interface language): a hint
    # for detection, not the answer.
    language = langs[0] if isinstance(langs, list) and langs and isinstance(langs[0], str) else None
    return Entry(
        external_id=str(post["uri"]),
        url=post_url(post),
        author=handle if isinstance(handle, str) else None,
        title="",
        text=text,
        html=None,
        language=language,
        published_at=time_or_none(record.get("createdAt")) or time_or_none(post.get("indexedAt")),
        content_hash=content_hash(text, handle),
        reach=followers.get(str(author.get("did"))),
        raw={k: post.get(k) for k in ("uri", "cid", "author", "record", "indexedAt")}
        | {k: post.get(k) for k in ("replyCount", "repostCount", "likeCount", "quoteCount")},
    )


class _Sessions:
    """Signed-in sessions per (PDS, handle), in memory: Bluesky limits how often an account may
    sign in (createSession), so a session is reused until it expires, then refreshed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], dict[str, str]] = {}

    def token(self, client: httpx.Client, source: BlueskySource, renew: bool = False) -> str:
        handle = secrets.register_env(source.handle_env)
        password = secrets.register_env(source.app_password_env)
        if not handle or not password:
            raise FetchError(
                f"{source.endpoint()}: Bluesky search needs a signed-in account: set "
                f"{source.handle_env} and {source.app_password_env} (an app password from "
                "Settings > Privacy and security > App passwords), or read `accounts` instead"
            )
        key = (source.service, handle)
        with self._lock:
            held = self._tokens.get(key)
            if held and not renew:
                return held["accessJwt"]
            if held:
                try:
                    fresh = post_json(
                        client,
                        f"{source.service}/xrpc/com.atproto.server.refreshSession",
                        None,
                        {"Authorization": f"Bearer {held['refreshJwt']}"},
                    )
                    return self._keep(key, fresh, source)
                except FetchError:
                    pass  # the refresh token expired too: sign in again
            try:
                session = post_json(
                    client,
                    f"{source.service}/xrpc/com.atproto.server.createSession",
                    {"identifier": handle, "password": password},
                )
            except FetchError as exc:
                if exc.http_status == 401:
                    raise FetchError(
                        f"{source.endpoint()}: {source.service} refused {source.handle_env} / "
                        f"{source.app_password_env} (HTTP 401); the source is switched off "
                        "until `listener sources enable` after fixing them",
                        http_status=401,
                        disable=True,
                    ) from None
                raise
            return self._keep(key, session, source)

    def _keep(self, key: tuple[str, str], session: Any, source: BlueskySource) -> str:
        if not isinstance(session, dict) or not isinstance(session.get("accessJwt"), str):
            raise FetchError(f"{source.service}: signing in gave no access token")
        # Tokens live only here: never logged (no request header is), never stored.
        self._tokens[key] = {
            "accessJwt": session["accessJwt"],
            "refreshJwt": str(session.get("refreshJwt") or ""),
            "did": str(session.get("did") or ""),
            "handle": str(session.get("handle") or ""),
        }
        return str(session["accessJwt"])

    def account(self, client: httpx.Client, source: BlueskySource) -> tuple[str, str]:
        """(DID, handle) of the signed-in account."""
        self.token(client, source)
        handle = secrets.register_env(source.handle_env) or ""
        with self._lock:
            held = self._tokens.get((source.service, handle)) or {}
        if not held.get("did"):
            raise FetchError(f"{source.service}: signing in named no account (no did)")
        return held["did"], held.get("handle") or handle


SESSIONS = _Sessions()


_TID_CHARS = "234567abcdefghijklmnopqrstuvwxyz"  # base32-sortable, as the AT Protocol spells it


def record_key(attempt: ReplyAttempt) -> str:
    """A TID (the record key posts use) fixed by the approved reply: its approval time in
    microseconds, and a clock id from its key. Every try at one reply writes the same record."""
    micros = int(attempt.approved_at.timestamp() * 1_000_000) & ((1 << 53) - 1)
    clock = int.from_bytes(hashlib.sha256(attempt.key.encode()).digest()[:2], "big") & 0x3FF
    value = (micros << 10) | clock
    return "".join(_TID_CHARS[(value >> (5 * i)) & 31] for i in reversed(range(13)))


def reply_record(target: ReplyTarget, text: str, attempt: ReplyAttempt) -> dict[str, Any]:
    """An app.bsky.feed.post answering `target` in its thread (root: the thread's first post)."""
    parent = {"uri": target.raw.get("uri"), "cid": target.raw.get("cid")}
    if not all(isinstance(v, str) and v for v in parent.values()):
        raise ReplyError(f"{target.external_id}: no uri and cid to answer", final=True)
    record = target.raw.get("record")
    thread = record.get("reply") if isinstance(record, dict) else None
    root = thread.get("root") if isinstance(thread, dict) else None
    if not (isinstance(root, dict) and root.get("uri") and root.get("cid")):
        root = parent
    post: dict[str, Any] = {
        "$type": POST_TYPE,
        "text": text,
        "createdAt": iso(attempt.approved_at),
        "reply": {"root": {"uri": root["uri"], "cid": root["cid"]}, "parent": parent},
    }
    if target.language:
        post["langs"] = [target.language]
    return post


@register
class BlueskyCollector:
    type: ClassVar[str] = "bluesky"
    config_model: ClassVar[builtins.type[SourceConfig]] = BlueskySource
    max_chars: ClassVar[int] = 300  # graphemes; a character count is never fewer
    resend_safe: ClassVar[timedelta] = timedelta.max  # the record key makes a retry harmless
    checks_per_hour: ClassVar[int] = 300  # of the 3,000 reads per 5 minutes an address has

    def reply(
        self,
        source: BlueskySource,
        target: ReplyTarget,
        text: str,
        attempt: ReplyAttempt,
        client: httpx.Client,
    ) -> Posted:
        if not source.has_account():
            raise ReplyError(
                f"{source.service}: replies are posted by a signed-in account: set "
                f"{source.handle_env} and {source.app_password_env}",
                final=True,
            )
        try:
            did, handle = SESSIONS.account(client, source)
        except FetchError as exc:  # a refused password is final; a service down is not
            raise ReplyError(str(exc), final=exc.http_status == 401) from None
        rkey = record_key(attempt)
        payload = {
            "repo": did,
            "collection": POST_TYPE,
            "rkey": rkey,
            "record": reply_record(target, text, attempt),
        }
        url = f"{source.service}/xrpc/com.atproto.repo.createRecord"
        try:
            doc = self._signed(client, source, "POST", url, payload)
        except FetchError as exc:
            # A second try of a reply that did go out: its record is there already (the
            # reference PDS answers a taken record key with a 500, newer ones with a 4xx).
            if exc.http_status is not None:
                doc = self._existing(client, source, did, rkey)
                if doc is None:
                    raise reply_error(exc, url) from None
            else:
                raise reply_error(exc, url) from None
        uri = doc.get("uri") if isinstance(doc, dict) else None
        if not isinstance(uri, str):
            raise ReplyError(f"{url}: the answer names no record")
        return Posted(
            platform_id=uri,
            url=post_url({"uri": uri, "author": {"handle": handle}}),
            at=attempt.approved_at,  # the post's createdAt: what Bluesky shows as its time
            response={k: doc.get(k) for k in ("uri", "cid", "validationStatus")},
        )

    def find_reply(
        self, source: BlueskySource, target: ReplyTarget, client: httpx.Client
    ) -> Posted | None:
        """A reply from the signed-in account to the post, written in any app."""
        uri = target.raw.get("uri")
        if not isinstance(uri, str) or not source.has_account():
            return None  # no account to answer from
        did, _ = SESSIONS.account(client, source)
        query = urlencode({"uri": uri, "depth": "1", "parentHeight": "0"})
        url = f"{source.service}/xrpc/app.bsky.feed.getPostThread?{query}"
        doc = self._signed(client, source, "GET", url, None)
        thread = doc.get("thread") if isinstance(doc, dict) else None
        replies = thread.get("replies") if isinstance(thread, dict) else None
        for view in replies if isinstance(replies, list) else []:
            post = view.get("post") if isinstance(view, dict) else None
            if not isinstance(post, dict) or (post.get("author") or {}).get("did") != did:
                continue
            found = post.get("record")
            record: dict[str, Any] = found if isinstance(found, dict) else {}
            reply = record.get("reply") if isinstance(record.get("reply"), dict) else {}
            parent = (reply.get("parent") or {}).get("uri") if isinstance(reply, dict) else None
            if parent == uri and isinstance(post.get("uri"), str):
                return Posted(
                    platform_id=post["uri"],
                    url=post_url(post),
                    at=time_or_none(record.get("createdAt")) or time_or_none(post.get("indexedAt")),
                    response={k: post.get(k) for k in ("uri", "cid", "indexedAt")},
                )
        return None

    def _existing(
        self, client: httpx.Client, source: BlueskySource, did: str, rkey: str
    ) -> dict[str, Any] | None:
        query = urlencode({"repo": did, "collection": POST_TYPE, "rkey": rkey})
        url = f"{source.service}/xrpc/com.atproto.repo.getRecord?{query}"
        try:
            doc = self._signed(client, source, "GET", url, None)
        except FetchError:
            return None
        return doc if isinstance(doc, dict) and doc.get("uri") else None

    def _signed(
        self, client: httpx.Client, source: BlueskySource, method: str, url: str, payload: Any
    ) -> Any:
        """A signed call; an expired token is refreshed once."""
        for renew in (False, True):
            headers = {"Authorization": f"Bearer {SESSIONS.token(client, source, renew=renew)}"}
            try:
                return call_api(client, method, url, headers=headers, json_body=payload)
            except FetchError as exc:
                if renew or not _expired(exc):
                    raise
        raise AssertionError("unreachable")

    def fetch(self, source: BlueskySource, state: SourceState, client: httpx.Client) -> FetchResult:
        cursor = dict(state.cursor)
        warnings: list[str] = []
        if source.searches():
            posts, newest = self._search(source, cursor, client, warnings)
            cursor["since"] = newest or cursor.get("since")
        else:
            posts = []
            seen = dict(cursor.get("seen") or {})
            for account in source.accounts:
                got, newest = self._account(source, account, seen.get(account), client, warnings)
                posts += got
                if newest:
                    seen[account] = newest
            cursor["seen"] = seen
        followers = self._followers(source, posts, client, warnings)
        entries, rejected = normalise_each(
            posts,
            lambda p: post_entry(p, followers),
            lambda i, p: (
                f"post {i + 1} ({str(p.get('uri'))[:80]!r})"
                if isinstance(p, dict)
                else f"post {i + 1}"
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
        source: BlueskySource,
        cursor: dict[str, Any],
        client: httpx.Client,
        warnings: list[str],
    ) -> tuple[list[dict[str, Any]], str | None]:
        since = cursor.get("since") or iso(datetime.now(UTC) - FIRST_LOOK_BACK)
        params: dict[str, Any] = {"q": source.query or "*", "sort": "latest", "limit": 100}
        params["since"] = since
        if source.mentions_of:
            params["mentions"] = source.mentions_of
        if source.lang:
            params["lang"] = source.lang
        posts: list[dict[str, Any]] = []
        page_cursor: str | None = None
        for page in range(source.max_pages):
            query = urlencode({**params, **({"cursor": page_cursor} if page_cursor else {})})
            url = f"{source.service}/xrpc/app.bsky.feed.searchPosts?{query}"
            doc = self._signed_get(client, source, url)
            page_posts = doc.get("posts") if isinstance(doc, dict) else None
            posts += (
                [p for p in page_posts if isinstance(p, dict)]
                if isinstance(page_posts, list)
                else []
            )
            before, page_cursor = page_cursor, doc.get("cursor") if isinstance(doc, dict) else None
            if not page_cursor or not page_posts or page_cursor == before:
                break
            if page + 1 == source.max_pages:
                warnings.append(
                    f"more than {source.max_pages} pages of new posts: the oldest of them were "
                    "not read (raise max_pages or shorten interval)"
                )
        return posts, _newest(posts, since)

    def _signed_get(self, client: httpx.Client, source: BlueskySource, url: str) -> Any:
        token = SESSIONS.token(client, source)
        try:
            return get_json(client, url, {"Authorization": f"Bearer {token}"})
        except FetchError as exc:
            if exc.http_status not in (400, 401):  # 400 ExpiredToken, 401: sign in again, once
                raise
        token = SESSIONS.token(client, source, renew=True)
        return get_json(client, url, {"Authorization": f"Bearer {token}"})

    def _account(
        self,
        source: BlueskySource,
        account: str,
        seen: str | None,
        client: httpx.Client,
        warnings: list[str],
    ) -> tuple[list[dict[str, Any]], str | None]:
        """An account's own posts and replies newer than `seen` (reposts are not its words)."""
        posts: list[dict[str, Any]] = []
        page_cursor: str | None = None
        for _ in range(source.max_pages):
            params = {"actor": account, "limit": 100, "filter": "posts_with_replies"}
            if page_cursor:
                params["cursor"] = page_cursor
            url = f"{source.appview}/xrpc/app.bsky.feed.getAuthorFeed?{urlencode(params)}"
            doc = get_json(client, url)
            feed = doc.get("feed") if isinstance(doc, dict) else None
            items = [i for i in feed if isinstance(i, dict)] if isinstance(feed, list) else []
            fresh = [
                i["post"]
                for i in items
                if isinstance(i.get("post"), dict)
                and not (isinstance(i.get("reason"), dict))  # a repost
                and (seen is None or str(i["post"].get("indexedAt") or "") > seen)
            ]
            posts += fresh
            before, page_cursor = page_cursor, doc.get("cursor") if isinstance(doc, dict) else None
            if page_cursor == before:  # a service that hands back the same cursor: stop
                break
            older = any(
                seen is not None and str((i.get("post") or {}).get("indexedAt") or "") <= seen
                for i in items
            )
            if not page_cursor or not items or older:
                break
        return posts, _newest(posts, seen)

    def _followers(
        self,
        source: BlueskySource,
        posts: list[dict[str, Any]],
        client: httpx.Client,
        warnings: list[str],
    ) -> dict[str, int]:
        """Followers per author DID (app.bsky.actor.getProfiles, keyless); a failed call costs
        reach, never the posts."""
        if not source.followers:
            return {}
        dids = sorted(
            {
                str(p["author"]["did"])
                for p in posts
                if isinstance(p.get("author"), dict) and p["author"].get("did")
            }
        )
        out: dict[str, int] = {}
        for start in range(0, len(dids), PROFILES_PER_CALL):
            batch = dids[start : start + PROFILES_PER_CALL]
            url = f"{source.appview}/xrpc/app.bsky.actor.getProfiles?" + urlencode(
                [("actors", d) for d in batch]
            )
            try:
                doc = get_json(client, url)
            except FetchError as exc:
                warnings.append(f"followers not read (reach left empty): {exc}")
                break
            for profile in doc.get("profiles", []) if isinstance(doc, dict) else []:
                count = profile.get("followersCount") if isinstance(profile, dict) else None
                if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
                    out[str(profile.get("did"))] = count
        return out


def _newest(posts: list[dict[str, Any]], before: str | None) -> str | None:
    """The newest `indexedAt` among posts (the AppView's clock, not the writer's), else
    `before`."""
    times = [
        t for p in posts if isinstance(t := p.get("indexedAt"), str) and time_or_none(t) is not None
    ]
    return max([*times, *([before] if before else [])], default=None)


def _expired(exc: FetchError) -> bool:
    """A refusal that a fresh token may cure (ExpiredToken is a 400, InvalidToken a 401)."""
    return exc.http_status == 401 or (exc.http_status == 400 and "xpired" in str(exc))
