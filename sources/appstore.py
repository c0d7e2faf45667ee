"""Apple App Store customer reviews: the public per-app, per-country review feed, XML form.

Apple serves the 500 most recent reviews only (10 pages of 50), newest first, with star rating,
app version, title, author and date. The XML form is read, not the JSON one: Apple's JSON
entries carry no date at all (0 of 50 in real US and Japanese responses), so every review
would look posted at fetch time; the XML entries have `updated` (50 of 50). Fetch often enough
that a busy app's reviews stay in the 500 window.
"""

from __future__ import annotations

import builtins
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field

from sources import register
from sources.base import Entry, FetchResult, Kind, SourceConfig, SourceState
from sources.http import conditional_get
from sources.rss import parse_feed_entries

FEED = "https://itunes.apple.com/{country}/rss/customerreviews/page={page}/id={app_id}/sortby=mostrecent/xml"


class AppStoreSource(SourceConfig):
    type: Literal["appstore"]
    app_id: int = Field(description="the number in the app's App Store URL (id123456789)")
    country: str = Field(default="us", pattern=r"^[a-z]{2}$", description="store country")
    pages: int = Field(default=10, ge=1, le=10, description="pages of 50 reviews at most")

    def endpoint(self) -> str:
        return FEED.format(country=self.country, page=1, app_id=self.app_id)

    def default_kind(self) -> Kind:
        return "reviews"


def review_entry(e: Entry, source: AppStoreSource) -> Entry:
    """A feed entry as a review: the app's review page as link, version and country kept."""
    raw: dict[str, Any] = e.raw
    e.url = f"https://apps.apple.com/{source.country}/app/id{source.app_id}?see-all=reviews"
    e.raw = {"review": raw, "app_version": raw.get("im_version"), "country": source.country}
    return e


@register
class AppStoreCollector:
    type: ClassVar[str] = "appstore"
    config_model: ClassVar[builtins.type[SourceConfig]] = AppStoreSource

    def fetch(
        self, source: AppStoreSource, state: SourceState, client: httpx.Client
    ) -> FetchResult:
        cursor = dict(state.cursor)
        seen_up_to = int(cursor.get("newest_id", 0))
        base = state.url if state.url and state.url.endswith("/xml") else source.endpoint()
        entries: list[Entry] = []
        rejected: list[str] = []
        for page in range(1, source.pages + 1):
            url = base.replace("/page=1/", f"/page={page}/")
            response = conditional_get(client, url)
            good, bad = parse_feed_entries(response.body, url, response.headers.get("Content-Type"))
            # Older feeds put the app itself first: it has no rating.
            reviews = [review_entry(e, source) for e in good if e.rating is not None]
            entries += reviews
            rejected += [f"page {page}: {why}" for why in bad]
            ids = [int(e.external_id) for e in reviews if e.external_id.isdigit()]
            # Newest first: once a page reaches reviews seen last time, older pages are known.
            if not reviews or (ids and min(ids) <= seen_up_to):
                break
        numeric = [int(e.external_id) for e in entries if e.external_id.isdigit()]
        if numeric:
            cursor["newest_id"] = str(max(max(numeric), seen_up_to))
        return FetchResult(
            entries, SourceState(url=state.url, cursor=cursor), http_status=200, rejected=rejected
        )
