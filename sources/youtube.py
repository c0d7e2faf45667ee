"""YouTube comments through the YouTube Data API v3, with an API key: the comment threads on a
channel's videos, on chosen videos, or on the newest videos matching a search.

Quota: a Google Cloud project gets 10,000 units a day (reset at midnight Pacific time); a page
of 100 comment threads costs 1 unit, a search for videos 100. Each source counts the units it
spends in its cursor, stored with its comments, and stops at its `daily_units`, as X sources
stop at their read budget.
"""

from __future__ import annotations

import builtins
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlencode

import httpx
from pydantic import Field, field_validator, model_validator

from listener import secrets
from listener.textnorm import html_to_text
from listener.timeutil import Duration, iso, time_or_none, utcnow
from sources import register
from sources.base import (
    Entry,
    FetchError,
    FetchResult,
    SourceConfig,
    SourceState,
    api_base,
    normalise_each,
)
from sources.http import call_api
from sources.rss import content_hash

PAGE = 100  # the most commentThreads.list returns per page
CHANNELS_PER_CALL = 50  # the most channels.list takes at once
THREAD_PAGE_UNITS = 1
SEARCH_UNITS = 100
VIDEO_ID = r"^[A-Za-z0-9_-]{11}$"
CHANNEL_ID = r"^UC[A-Za-z0-9_-]{22}$"


def _pacific() -> tzinfo:
    """YouTube's quota day: midnight to midnight in Los Angeles."""
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("America/Los_Angeles")
    except Exception:  # no time zone database: standard time all year is an hour off at worst
        return timezone(timedelta(hours=-8))


PACIFIC = _pacific()


class YouTubeSource(SourceConfig):
    type: Literal["youtube"]
    channel_id: str | None = Field(
        default=None,
        pattern=CHANNEL_ID,
        description="comments on every video of this channel (UC..., in the channel's URL)",
    )
    videos: list[str] | None = Field(
        default=None, min_length=1, max_length=50, description="comments on these video ids"
    )
    query: str | None = Field(
        default=None,
        min_length=1,
        description="comments on the newest videos matching this search (100 units a search)",
    )
    max_videos: int = Field(default=10, ge=1, le=50, description="videos a search keeps")
    video_days: int = Field(default=14, ge=1, le=365, description="a search's videos' age")
    search_every: Duration = Field(
        default=timedelta(hours=6), description="how often to search again for new videos"
    )
    api_key_env: str = Field(
        default="YOUTUBE_API_KEY", description="environment variable holding the API key"
    )
    api: str = Field(default="https://www.googleapis.com", description="the API's address")
    max_pages: int = Field(default=3, ge=1, le=50, description="pages of 100 per video/channel")
    daily_units: int | None = Field(
        default=None, ge=1, description="quota units this source spends per Pacific day at most"
    )
    subscribers: bool = Field(
        default=True,
        description="reach = the commenter's subscribers (1 unit per 50 commenters per fetch)",
    )

    _base = field_validator("api")(api_base)

    @field_validator("videos", mode="before")
    @classmethod
    def _video_ids(cls, value: object) -> object:
        if not isinstance(value, list):
            return value
        value = [str(v) if isinstance(v, int) else v for v in value]  # YAML numbers
        for v in value:
            if not isinstance(v, str):
                continue
            if not re.fullmatch(VIDEO_ID, v):
                raise ValueError(f"{v[:40]!r} is not a video id (11 characters after watch?v=)")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> YouTubeSource:
        if sum(x is not None for x in (self.channel_id, self.videos, self.query)) != 1:
            raise ValueError("give exactly one of `channel_id`, `videos` or `query`")
        return self

    def endpoint(self) -> str:
        if self.channel_id:
            return f"youtube:channel:{self.channel_id}"
        if self.videos:
            return f"youtube:videos:{','.join(self.videos)}"[:200]
        return f"youtube:search:{self.query}"


def quota_day(now: datetime) -> str:
    return now.astimezone(PACIFIC).strftime("%Y-%m-%d")


def next_quota_day(now: datetime) -> datetime:
    local = now.astimezone(PACIFIC)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(UTC)


def comment_entry(
    thread: dict[str, Any],
    subscribers: dict[str, int] | None = None,
    reply: dict[str, Any] | None = None,
) -> Entry:
    """A thread's top-level comment, or one of the replies that came with it: its text as
    written (textOriginal), else the HTML YouTube shows made plain; author, likes."""
    comment, c, snippet = _comment(thread, reply), _snippet_of(thread, reply), thread.get("snippet")
    if c is None or comment is None or not comment.get("id") or not isinstance(snippet, dict):
        raise ValueError("a comment thread without its comment")
    shown = c.get("textDisplay") if isinstance(c.get("textDisplay"), str) else None
    text = c.get("textOriginal") if isinstance(c.get("textOriginal"), str) else None
    if text is None:
        text = html_to_text(shown)
    video = snippet.get("videoId") or c.get("videoId")
    channel = snippet.get("channelId") or c.get("channelId")
    comment_id = str(comment["id"])
    if isinstance(video, str) and video:
        url = f"https://www.youtube.com/watch?v={quote(video)}&lc={quote(comment_id)}"
    else:  # a comment on the channel itself
        url = f"https://www.youtube.com/channel/{quote(str(channel or ''))}"
    author_id = _author_of(c)
    return Entry(
        external_id=comment_id,
        url=url,
        author=c.get("authorDisplayName") if isinstance(c.get("authorDisplayName"), str) else None,
        title="",
        text=text.strip(),
        html=shown,
        language=None,  # the API gives none per comment
        published_at=time_or_none(c.get("publishedAt")),
        content_hash=content_hash(text),
        reach=(subscribers or {}).get(str(author_id)),
        raw={
            "video_id": video,
            "channel_id": channel,
            "author_channel_id": author_id,
            "likes": c.get("likeCount"),
            "replies": snippet.get("totalReplyCount") if reply is None else None,
            "parent_id": c.get("parentId") if reply is not None else None,
            "updated_at": c.get("updatedAt"),
        },
    )


def thread_comments(
    threads: list[dict[str, Any]],
) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(thread, None) for each thread's own comment, and (thread, reply) for each reply that
    came with it (YouTube sends up to five per thread)."""
    out: list[tuple[dict[str, Any], dict[str, Any] | None]] = [(t, None) for t in threads]
    for t in threads:
        replies = t.get("replies")
        comments = replies.get("comments") if isinstance(replies, dict) else None
        out += (
            [(t, r) for r in comments if isinstance(r, dict)] if isinstance(comments, list) else []
        )
    return out


class _Quota:
    """Units spent today by one source, against its own limit."""

    def __init__(self, source: YouTubeSource, cursor: dict[str, Any], now: datetime) -> None:
        self.source, self.now = source, now
        self.day = quota_day(now)
        self.used = int((cursor.get("units") or {}).get(self.day, 0))

    def allows(self, units: int) -> bool:
        limit = self.source.daily_units
        return limit is None or self.used + units <= limit

    def spend(self, units: int) -> None:
        self.used += units

    def exhausted(self, why: str, http_status: int | None = None) -> FetchError:
        until = next_quota_day(self.now)
        return FetchError(
            f"{self.source.endpoint()}: {why}; paused until {until:%Y-%m-%d %H:%M} UTC "
            "(midnight Pacific time, when YouTube's quota day begins)",
            http_status=http_status,
            retry_after=until - self.now,
        )


class QuotaExceeded(Exception):
    """YouTube refused a call for the project's quota: nothing more today."""


@register
class YouTubeCollector:
    type: ClassVar[str] = "youtube"
    config_model: ClassVar[builtins.type[SourceConfig]] = YouTubeSource

    def fetch(self, source: YouTubeSource, state: SourceState, client: httpx.Client) -> FetchResult:
        key = secrets.register_env(source.api_key_env)
        if not key:
            raise FetchError(
                f"{source.endpoint()}: set the environment variable {source.api_key_env} to a "
                "YouTube Data API key (Google Cloud console > APIs & Services > Credentials, "
                "with the YouTube Data API v3 enabled)"
            )
        now = utcnow()
        cursor = dict(state.cursor)
        quota = _Quota(source, cursor, now)
        if not quota.allows(THREAD_PAGE_UNITS):
            raise quota.exhausted(f"daily quota used ({quota.used} of {source.daily_units} units)")
        seen: dict[str, float] = dict(cursor.get("seen") or {})
        warnings: list[str] = []
        threads: list[dict[str, Any]] = []
        failed: list[FetchError] = []
        try:
            targets = self._targets(source, cursor, client, key, quota, now, warnings)
            for param, target in targets:
                try:
                    got, newest = self._threads(
                        source, client, key, quota, param, target, seen.get(target, 0.0), warnings
                    )
                except FetchError as exc:
                    if exc.disable:
                        raise
                    # One video with comments off, deleted or private never stops the others;
                    # its threads are read again from where they were at the next fetch.
                    failed.append(exc)
                    warnings.append(f"{target}: {exc}")
                    continue
                threads += got
                seen[target] = max(seen.get(target, 0.0), newest)
            if failed and len(failed) == len(targets):
                raise failed[0]
        except QuotaExceeded as exc:
            if not threads:
                raise quota.exhausted(f"YouTube's quota is used up ({exc})", 403) from None
            warnings.append(f"YouTube's quota ran out midway ({exc}): the rest is read later")
        comments = thread_comments(threads)
        subscribers = self._subscribers(source, client, key, quota, comments, warnings)
        cursor["units"] = {quota.day: quota.used}  # every unit counted, a failed run's too
        cursor["seen"] = seen
        entries, rejected = normalise_each(
            comments,
            lambda pair: comment_entry(pair[0], subscribers, pair[1]),
            lambda i, pair: f"comment {str((pair[1] or pair[0]).get('id'))[:60]!r}",
        )
        return FetchResult(
            entries,
            SourceState(url=state.url, cursor=cursor),
            http_status=200,
            rejected=rejected,
            warnings=warnings,
        )

    def _call(
        self,
        client: httpx.Client,
        source: YouTubeSource,
        key: str,
        path: str,
        query: dict[str, str],
    ) -> Any:
        url = f"{source.api}/youtube/v3/{path}?{urlencode(query)}"
        try:
            # The key goes in a header, never in a URL that could end up in a log or a message.
            return call_api(client, "GET", url, headers={"X-Goog-Api-Key": key})
        except FetchError as exc:
            message = secrets.mask(str(exc)) or ""
            if exc.http_status == 403 and "quota" in message.lower():
                raise QuotaExceeded(message) from None
            if exc.http_status == 400 and "API key not valid" in message:
                raise FetchError(
                    f"{source.endpoint()}: YouTube refused the key in {source.api_key_env} "
                    f"({message}); the source is switched off until `listener sources enable`",
                    http_status=400,
                    disable=True,
                ) from None
            raise FetchError(
                message, http_status=exc.http_status, retry_after=exc.retry_after
            ) from None

    def _subscribers(
        self,
        source: YouTubeSource,
        client: httpx.Client,
        key: str,
        quota: _Quota,
        comments: list[tuple[dict[str, Any], dict[str, Any] | None]],
        warnings: list[str],
    ) -> dict[str, int]:
        """Subscribers per commenter's channel (channels.list, 1 unit per 50); a failed call
        or a spent quota costs reach, never the comments. Hidden counts stay unknown."""
        if not source.subscribers:
            return {}
        ids = sorted({a for t, r in comments if (a := _author_of(_snippet_of(t, r)))})
        out: dict[str, int] = {}
        for start in range(0, len(ids), CHANNELS_PER_CALL):
            if not quota.allows(THREAD_PAGE_UNITS):
                warnings.append("subscribers not read (reach left empty): daily quota limit")
                break
            quota.spend(THREAD_PAGE_UNITS)
            batch = ids[start : start + CHANNELS_PER_CALL]
            try:
                doc = self._call(
                    client, source, key, "channels", {"part": "statistics", "id": ",".join(batch)}
                )
            except (FetchError, QuotaExceeded) as exc:
                warnings.append(f"subscribers not read (reach left empty): {exc}")
                break
            items = doc.get("items") if isinstance(doc, dict) else None
            for channel in items if isinstance(items, list) else []:
                stats = channel.get("statistics") if isinstance(channel, dict) else None
                if not isinstance(stats, dict) or stats.get("hiddenSubscriberCount"):
                    continue
                count = str(stats.get("subscriberCount", ""))
                if count.isdigit():
                    out[str(channel.get("id"))] = int(count)
        return out

    def _targets(
        self,
        source: YouTubeSource,
        cursor: dict[str, Any],
        client: httpx.Client,
        key: str,
        quota: _Quota,
        now: datetime,
        warnings: list[str],
    ) -> list[tuple[str, str]]:
        """(query parameter, value) per thread listing to read."""
        if source.channel_id:
            return [("allThreadsRelatedToChannelId", source.channel_id)]
        if source.videos:
            return [("videoId", v) for v in source.videos]
        found = cursor.get("search") or {}
        searched = time_or_none(found.get("at"))
        videos = [v for v in found.get("videos") or [] if isinstance(v, str)]
        if searched is None or now - searched >= source.search_every:
            if quota.allows(SEARCH_UNITS + THREAD_PAGE_UNITS):
                quota.spend(SEARCH_UNITS)
                doc = self._call(
                    client,
                    source,
                    key,
                    "search",
                    {
                        "part": "snippet",
                        "type": "video",
                        "order": "date",
                        "q": str(source.query),
                        "maxResults": str(source.max_videos),
                        "publishedAfter": iso(now - timedelta(days=source.video_days)),
                    },
                )
                items = doc.get("items") if isinstance(doc, dict) else None
                fresh = [
                    i["id"]["videoId"]
                    for i in (items if isinstance(items, list) else [])
                    if isinstance(i, dict)
                    and isinstance(i.get("id"), dict)
                    and isinstance(i["id"].get("videoId"), str)
                ]
                # The newest matches first; videos found before stay while there is room.
                videos = list(dict.fromkeys(fresh + videos))[: source.max_videos]
                cursor["search"] = {"at": iso(now), "videos": videos}
            else:
                warnings.append(
                    f"no new search for videos: it costs {SEARCH_UNITS} units and the daily "
                    "limit is near; the videos found before are read"
                )
        return [("videoId", v) for v in videos]

    def _threads(
        self,
        source: YouTubeSource,
        client: httpx.Client,
        key: str,
        quota: _Quota,
        param: str,
        target: str,
        seen: float,
        warnings: list[str],
    ) -> tuple[list[dict[str, Any]], float]:
        """New threads of one video or channel, newest first, down to those read before."""
        got: list[dict[str, Any]] = []
        newest = seen
        token: str | None = None
        for page in range(source.max_pages):
            if not quota.allows(THREAD_PAGE_UNITS):
                warnings.append(f"{target}: daily quota limit reached; the rest is read later")
                break
            query = {
                "part": "snippet,replies",  # the same unit: up to five replies come along
                param: target,
                "order": "time",
                "maxResults": str(PAGE),
            }
            if token:
                query["pageToken"] = token
            quota.spend(THREAD_PAGE_UNITS)
            doc = self._call(client, source, key, "commentThreads", query)
            items = doc.get("items") if isinstance(doc, dict) else None
            threads = [t for t in items if isinstance(t, dict)] if isinstance(items, list) else []
            stamps = [_published(t) for t in threads]
            got += [t for t, s in zip(threads, stamps, strict=True) if s is None or s > seen]
            newest = max([newest, *(s for s in stamps if s is not None)])
            token = doc.get("nextPageToken") if isinstance(doc, dict) else None
            if not threads or any(s is not None and s <= seen for s in stamps) or not token:
                break
            if page + 1 == source.max_pages and seen:
                warnings.append(
                    f"{target}: more than {source.max_pages} pages of new comments; the "
                    "oldest of them were not read (raise max_pages or fetch more often)"
                )
        return got, newest


def _comment(thread: dict[str, Any], reply: dict[str, Any] | None) -> dict[str, Any] | None:
    """The comment resource: the reply given, else the thread's top-level comment."""
    if reply is not None:
        return reply
    snippet = thread.get("snippet")
    top = snippet.get("topLevelComment") if isinstance(snippet, dict) else None
    return top if isinstance(top, dict) else None


def _snippet_of(thread: dict[str, Any], reply: dict[str, Any] | None) -> dict[str, Any] | None:
    comment = _comment(thread, reply)
    c = comment.get("snippet") if comment else None
    return c if isinstance(c, dict) else None


def _author_of(c: dict[str, Any] | None) -> str | None:
    author = c.get("authorChannelId") if c else None
    value = author.get("value") if isinstance(author, dict) else None
    return value if isinstance(value, str) and value else None


def _published(thread: dict[str, Any]) -> float | None:
    c = _snippet_of(thread, None)
    when = time_or_none(c.get("publishedAt")) if c else None
    return when.timestamp() if when else None
