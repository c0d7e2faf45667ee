"""Hacker News stories and comments through the public Algolia search API (no key)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode

import httpx
from pydantic import Field

from listener.textnorm import html_to_text
from sources import register
from sources.base import Entry, FetchResult, SourceConfig, SourceState
from sources.http import get_json
from sources.rss import content_hash

API = "https://hn.algolia.com/api/v1/search_by_date"


class HackerNewsSource(SourceConfig):
    type: Literal["hackernews"]
    query: str = Field(description="search words (Algolia matches all of them)")
    tags: str = Field(default="(story,comment)", description="Algolia tags filter")
    pages: int = Field(default=5, ge=1, le=50, description="pages of 100 hits at most")

    def endpoint(self) -> str:
        return f"{API}?{urlencode({'query': self.query, 'tags': self.tags})}"


def hit_entry(hit: dict[str, Any]) -> Entry:
    is_comment = hit.get("comment_text") is not None
    html = hit.get("comment_text") if is_comment else hit.get("story_text")
    title = (hit.get("story_title") if is_comment else hit.get("title")) or ""
    text = html_to_text(html)
    return Entry(
        external_id=str(hit["objectID"]),
        url=f"https://news.ycombinator.com/item?id={hit['objectID']}",
        author=hit.get("author"),
        title=title,
        text=text,
        html=html,
        language=None,
        published_at=datetime.fromtimestamp(hit["created_at_i"], UTC)
        if hit.get("created_at_i") else None,
        content_hash=content_hash(title, html, hit.get("url")),
        reach=hit.get("points"),
        raw=hit,
    )


@register
class HackerNewsCollector:
    type: ClassVar[str] = "hackernews"
    config_model: ClassVar[type[SourceConfig]] = HackerNewsSource

    def fetch(self, source: HackerNewsSource, state: SourceState,
              client: httpx.Client) -> FetchResult:
        cursor = dict(state.cursor)
        since = int(cursor.get("created_at_i", 0))
        hits: list[dict[str, Any]] = []
        for page in range(source.pages):
            params = {"query": source.query, "tags": source.tags, "hitsPerPage": 100,
                      "page": page, "numericFilters": f"created_at_i>{since}"}
            doc = get_json(client, f"{API}?{urlencode(params)}")
            hits += doc.get("hits", [])
            if page + 1 >= int(doc.get("nbPages", 0)):
                break
        newest = max((h.get("created_at_i", 0) for h in hits), default=since)
        cursor["created_at_i"] = max(newest, since)
        return FetchResult([hit_entry(h) for h in hits],
                           SourceState(url=state.url, cursor=cursor), http_status=200)
