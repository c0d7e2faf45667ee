"""Hacker News stories and comments through the public Algolia search API (no key)."""

from __future__ import annotations

import builtins
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode

import httpx
from pydantic import Field

from listener.textnorm import html_to_text
from listener.timeutil import time_or_none
from sources import register
from sources.base import Entry, FetchResult, SourceConfig, SourceState, normalise_each
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
        published_at=time_or_none(hit.get("created_at_i")),
        content_hash=content_hash(title, html, hit.get("url")),
        reach=hit.get("points"),
        raw=hit,
    )


@register
class HackerNewsCollector:
    type: ClassVar[str] = "hackernews"
    config_model: ClassVar[builtins.type[SourceConfig]] = HackerNewsSource

    def fetch(
        self, source: HackerNewsSource, state: SourceState, client: httpx.Client
    ) -> FetchResult:
        cursor = dict(state.cursor)
        since = int(cursor.get("created_at_i", 0))
        hits: list[dict[str, Any]] = []
        for page in range(source.pages):
            params = {
                "query": source.query,
                "tags": source.tags,
                "hitsPerPage": 100,
                "page": page,
                "numericFilters": f"created_at_i>{since}",
            }
            doc = get_json(client, f"{API}?{urlencode(params)}")
            page_hits = doc.get("hits") if isinstance(doc, dict) else None
            hits += page_hits if isinstance(page_hits, list) else []
            pages = doc.get("nbPages") if isinstance(doc, dict) else None
            if not isinstance(pages, int) or page + 1 >= pages:
                break
        entries, rejected = normalise_each(
            hits,
            hit_entry,
            lambda i, h: (
                f"hit {i + 1} ({str(h.get('objectID'))[:40]!r})"
                if isinstance(h, dict)
                else f"hit {i + 1}"
            ),
        )
        times = [
            t
            for h in hits
            if isinstance(h, dict) and isinstance(t := h.get("created_at_i"), int) and 0 < t < 2**40
        ]
        cursor["created_at_i"] = max([*times, since])
        return FetchResult(
            entries, SourceState(url=state.url, cursor=cursor), http_status=200, rejected=rejected
        )
