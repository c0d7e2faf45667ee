"""Apple App Store customer reviews: the public per-app, per-country JSON feed.

Apple serves the 500 most recent reviews only (10 pages of 50), newest first, with star rating,
app version, title and author. Fetch often enough that a busy app's reviews stay in that window.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field

from listener.timeutil import time_or_none
from sources import register
from sources.base import Entry, FetchResult, Kind, SourceConfig, SourceState, normalise_each
from sources.http import get_json
from sources.rss import content_hash

FEED = "https://itunes.apple.com/{country}/rss/customerreviews/page={page}/id={app_id}/sortby=mostrecent/json"


class AppStoreSource(SourceConfig):
    type: Literal["appstore"]
    app_id: int = Field(description="the number in the app's App Store URL (id123456789)")
    country: str = Field(default="us", pattern=r"^[a-z]{2}$", description="store country")
    pages: int = Field(default=10, ge=1, le=10, description="pages of 50 reviews at most")

    def endpoint(self) -> str:
        return FEED.format(country=self.country, page=1, app_id=self.app_id)

    def default_kind(self) -> Kind:
        return "reviews"


def _label(node: Any, key: str) -> str | None:
    value = (node.get(key) or {}).get("label") if isinstance(node, dict) else None
    return value or None


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def review_entry(raw: dict[str, Any], source: AppStoreSource) -> Entry:
    rating = _label(raw, "im:rating")
    title = _label(raw, "title") or ""
    text = _label(raw, "content") or ""
    author = _label(raw.get("author") or {}, "name")
    version = _label(raw, "im:version")
    updated = _label(raw, "updated")
    review_id = _label(raw, "id") or content_hash(title, text, author)
    return Entry(
        external_id=review_id,
        url=f"https://apps.apple.com/{source.country}/app/id{source.app_id}?see-all=reviews",
        author=author,
        title=title,
        text=text,
        html=None,
        language=None,
        published_at=time_or_none(updated),
        content_hash=content_hash(title, text, author, rating),
        rating=_number(rating),
        raw={"review": raw, "app_version": version, "country": source.country},
    )


def entries_of(document: Any) -> list[dict[str, Any]]:
    """Apple's feed has `entry` as a list, a lone object when there is one review, or none."""
    entry = ((document or {}).get("feed") or {}).get("entry") or []
    entries = entry if isinstance(entry, list) else [entry]
    # Older feeds put the app itself first: it has no rating.
    return [e for e in entries if isinstance(e, dict) and "im:rating" in e]


@register
class AppStoreCollector:
    type: ClassVar[str] = "appstore"
    config_model: ClassVar[type[SourceConfig]] = AppStoreSource

    def fetch(self, source: AppStoreSource, state: SourceState,
              client: httpx.Client) -> FetchResult:
        cursor = dict(state.cursor)
        seen_up_to = int(cursor.get("newest_id", 0))
        base = state.url or source.endpoint()
        entries: list[Entry] = []
        rejected: list[str] = []
        for page in range(1, source.pages + 1):
            reviews = entries_of(get_json(client, base.replace("/page=1/", f"/page={page}/")))
            def where(i: int, _: object, page: int = page) -> str:
                return f"page {page} review {i + 1}"

            good, bad = normalise_each(reviews, lambda r: review_entry(r, source), where)
            entries += good
            rejected += bad
            ids = [int(e.external_id) for e in good if e.external_id.isdigit()]
            # Newest first: once a page reaches reviews seen last time, older pages are known.
            if not reviews or (ids and min(ids) <= seen_up_to):
                break
        numeric = [int(e.external_id) for e in entries if e.external_id.isdigit()]
        if numeric:
            cursor["newest_id"] = str(max(max(numeric), seen_up_to))
        return FetchResult(entries, SourceState(url=state.url, cursor=cursor), http_status=200,
                           rejected=rejected)
