"""Reddit via praw, read-only (application-only OAuth): keyword search across Reddit or within
subreddits, and the newest submissions and comments of listed subreddits.

Reddit asks for a User-Agent of the form `<platform>:<app id>:<version> (by /u/<username>)`
and allows 100 requests a minute per OAuth client; praw paces itself from the rate-limit headers.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field, model_validator

from listener import __version__, secrets
from listener.textnorm import html_to_text
from listener.timeutil import time_or_none
from sources import register
from sources.base import (
    Entry,
    FetchError,
    FetchResult,
    SourceConfig,
    SourceState,
    normalise_each,
)
from sources.rss import content_hash

REMOVED = ("[removed]", "[deleted]")
# Where praw talks to; tests point these at a local server replaying real recordings.
ENDPOINTS: dict[str, Any] = {}


class RedditSource(SourceConfig):
    type: Literal["reddit"]
    query: str | None = Field(default=None, description="Reddit search query (sort=new)")
    subreddits: list[str] = Field(
        default_factory=list, description="restrict to these; required for `watch`"
    )
    watch: list[Literal["submissions", "comments"]] = Field(
        default_factory=list, description="newest submissions/comments of the subreddits"
    )
    limit: int = Field(default=100, ge=1, le=1000, description="items per listing per fetch")
    username: str = Field(
        default="listener-bot", description="your Reddit username, for the required User-Agent"
    )
    client_id_env: str = "REDDIT_CLIENT_ID"
    client_secret_env: str = "REDDIT_CLIENT_SECRET"

    @model_validator(mode="after")
    def _something_to_read(self) -> RedditSource:
        if not self.query and not self.watch:
            raise ValueError("give a `query`, or `watch` with `subreddits`")
        if self.watch and not self.subreddits:
            raise ValueError("`watch` needs `subreddits`")
        return self

    def endpoint(self) -> str:
        where = "+".join(self.subreddits) or "all"
        parts = ([f"search:{self.query}"] if self.query else []) + self.watch
        return f"reddit:r/{where}:{','.join(parts)}"


def _entry(item: Any) -> Entry:
    is_comment = item.name.startswith("t1_")
    markdown = item.body if is_comment else (item.selftext or "")
    html = item.body_html if is_comment else getattr(item, "selftext_html", None)
    # Reddit's text is Markdown source ("[post](https://…) &nbsp; ---"): the rendered HTML it
    # sends beside it reads as people see it. The Markdown is kept in raw.
    text = html_to_text(html) if html else markdown
    title = getattr(item, "link_title", "") if is_comment else item.title
    author = str(item.author) if item.author is not None else None
    removed = markdown in REMOVED or author is None
    return Entry(
        external_id=item.name,
        url=f"https://www.reddit.com{item.permalink}" if getattr(item, "permalink", None) else None,
        author=author,
        title=title or "",
        text=text,
        html=html,
        language=None,
        published_at=time_or_none(item.created_utc),
        content_hash=content_hash(title, markdown, author),
        reach=item.score,  # the post's or comment's score (votes), not the author's audience
        removed=removed,
        raw={
            "subreddit": str(item.subreddit),
            "score": item.score,
            "markdown": markdown,
            "num_comments": getattr(item, "num_comments", None),
            "kind": item.name[:2],
        },
    )


@register
class RedditCollector:
    type: ClassVar[str] = "reddit"
    config_model: ClassVar[builtins.type[SourceConfig]] = RedditSource

    def fetch(self, source: RedditSource, state: SourceState, client: httpx.Client) -> FetchResult:
        import praw
        import prawcore

        client_id = secrets.register_env(source.client_id_env)
        secret = secrets.register_env(source.client_secret_env)
        if not client_id or not secret:
            raise FetchError(
                f"{source.endpoint()}: set {source.client_id_env} and "
                f"{source.client_secret_env} (a Reddit 'script' app's id/secret)"
            )
        reddit = praw.Reddit(
            client_id=client_id,
            client_secret=secret,
            check_for_async=False,
            check_for_updates=False,  # praw would ask PyPI at every start
            user_agent=f"python:listener:{__version__} (by /u/{source.username})",
            **ENDPOINTS,
        )
        reddit.read_only = True
        sub = reddit.subreddit("+".join(source.subreddits) or "all")
        listings = []
        if source.query:
            listings.append(
                sub.search(source.query, sort="new", time_filter="week", limit=source.limit)
            )
        if "submissions" in source.watch:
            listings.append(sub.new(limit=source.limit))
        if "comments" in source.watch:
            listings.append(sub.comments(limit=source.limit))
        cursor = dict(state.cursor)
        seen = set(cursor.get("seen", []))
        since = float(cursor.get("newest_utc", 0.0))
        entries: list[Entry] = []
        rejected: list[str] = []
        warnings: list[str] = []
        try:
            for listing in listings:
                read = new = seen_in_a_row = 0
                for item in listing:
                    read += 1
                    # Listings are not strictly in time order (a post can sit above one
                    # written hours later): a listing ends after a run of posts read before,
                    # not at a time. Posts read before are handed on again (an edit or a
                    # removal is noticed; storage keeps each once).
                    if item.name in seen:
                        seen_in_a_row += 1
                        if seen_in_a_row >= SEEN_RUN:
                            break
                    else:
                        seen_in_a_row = 0
                        new += 1
                    if since and item.created_utc < since - OLDEST_GAP_S:
                        break
                    good, bad = normalise_each(
                        [item], _entry, lambda _, it: f"item {getattr(it, 'name', '?')!r}"
                    )
                    entries += good
                    rejected += bad
                if seen and read >= source.limit and new >= source.limit:
                    warnings.append(
                        f"coverage gap: {source.limit} new items in one listing and none "
                        "stored before: more may have been posted than one fetch reads; "
                        "fetch more often or raise `limit`"
                    )
        except prawcore.exceptions.TooManyRequests as exc:
            reset = exc.response.headers.get("x-ratelimit-reset")
            raise FetchError(
                f"{source.endpoint()}: HTTP 429 rate limited by Reddit",
                http_status=429,
                retry_after=timedelta(seconds=float(reset)) if reset else None,
            ) from None
        except (
            prawcore.exceptions.OAuthException,
            prawcore.exceptions.ResponseException,
            prawcore.exceptions.RequestException,
        ) as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            where = f"HTTP {status}" if status else type(exc).__name__
            disable = status in (401, 403) or isinstance(exc, prawcore.exceptions.OAuthException)
            raise FetchError(
                f"{source.endpoint()}: {where} from Reddit: {exc}"
                + ("; source disabled: check the app's id and secret" if disable else ""),
                http_status=status,
                disable=disable,
            ) from None
        if entries:
            newest = max(entries, key=lambda e: e.published_at or datetime.min.replace(tzinfo=UTC))
            if newest.published_at and newest.published_at.timestamp() >= since:
                cursor.update(newest=newest.external_id, newest_utc=newest.published_at.timestamp())
        # The ids read lately (newest last): stored in the same transaction as the posts.
        recent = [i for i in cursor.get("seen", []) if i not in {e.external_id for e in entries}]
        cursor["seen"] = (recent + [e.external_id for e in entries])[-SEEN_KEPT:]
        return FetchResult(
            entries,
            SourceState(url=state.url, cursor=cursor),
            http_status=200,
            rejected=rejected,
            warnings=warnings,
        )


# A listing is read until it reaches posts read before (kept in the cursor); posts more than
# a day older than the newest one seen end it anyway (real listings put a post above one
# written 4.9 hours later; none a day).
OLDEST_GAP_S = 86_400
SEEN_KEPT = 3000
SEEN_RUN = 25  # posts read before, in a row, that end a listing
