"""RSS/Atom/RDF feeds: Google Alerts, news searches, app-store review feeds, blogs.

The HTTP is ours (sources.http); the bytes go to feedparser.parse(), which never fetches.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, urlsplit

import feedparser
import httpx
from pydantic import field_validator

from listener.textnorm import html_to_text
from sources import register
from sources.base import Entry, FetchError, FetchResult, SourceConfig, SourceState
from sources.http import conditional_get


class RssSource(SourceConfig):
    type: Literal["rss"]
    url: str

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        scheme = urlsplit(value).scheme.lower()
        if scheme not in ("http", "https") or not urlsplit(value).netloc:
            raise ValueError(f"feed url must be an http(s) URL, got {value!r}")
        return value

    def endpoint(self) -> str:
        return self.url


def unwrap_redirect(link: str | None) -> str | None:
    """Google Alerts links point at google.com/url?url=<real link>; keep the real one."""
    if not link:
        return link
    parts = urlsplit(link)
    host = parts.hostname or ""
    if parts.path == "/url" and (host == "google.com" or host.startswith("www.google.")):
        params = parse_qs(parts.query)
        for key in ("url", "q"):
            if params.get(key, [""])[0].startswith(("http://", "https://")):
                return params[key][0]
    return link


def _language(entry: Any, feed_language: str | None) -> str | None:
    candidates = [c.get("language") for c in entry.get("content", [])]
    for detail in ("summary_detail", "title_detail"):
        candidates.append((entry.get(detail) or {}).get("language"))
    candidates.append(feed_language)
    for lang in candidates:
        if lang:
            return lang.replace("_", "-").split("-")[0].lower()
    return None


def _published(entry: Any) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    return datetime(*parsed[:6], tzinfo=UTC) if parsed else None


def _rating(entry: Any) -> float | None:
    # Apple's customer-review feeds carry <im:rating>; feedparser names it im_rating.
    value = entry.get("im_rating")
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def content_hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


def normalise_entry(entry: Any, feed_language: str | None = None) -> Entry:
    """One feedparser entry -> Entry. Identity: guid, else link, else a hash of the content."""
    html = entry["content"][0].get("value") if entry.get("content") else entry.get("summary")
    title = html_to_text(entry.get("title"))
    link = unwrap_redirect(entry.get("link"))
    author = entry.get("author") or None
    rating = _rating(entry)
    digest = content_hash(title, html, link, author, rating)
    external_id = entry.get("id") or link or f"sha256:{digest}"
    raw = {k: v for k, v in entry.items() if not k.endswith("_parsed")}
    return Entry(
        external_id=external_id,
        url=link,
        author=author,
        title=title,
        text=html_to_text(html),
        html=html,
        language=_language(entry, feed_language),
        published_at=_published(entry),
        content_hash=digest,
        rating=rating,
        raw=raw,
    )


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> list[Entry]:
    # Without a Content-Type feedparser assumes ISO-8859-1 and never sniffs; an XML type lets
    # it honour the XML declaration and fall back to chardet for undeclared legacy encodings.
    headers = {"content-location": url, "content-type": content_type or "application/xml"}
    parsed = feedparser.parse(body, response_headers=headers)
    if not parsed.entries and not parsed.get("version"):
        reason = parsed.get("bozo_exception") or "no feed elements found"
        kind = f" (Content-Type {content_type})" if content_type else ""
        raise FetchError(f"{url}: not an RSS/Atom feed{kind}: {reason}")
    feed_language = parsed.feed.get("language")
    return [normalise_entry(e, feed_language) for e in parsed.entries]


@register
class RssCollector:
    type: ClassVar[str] = "rss"
    config_model: ClassVar[type[SourceConfig]] = RssSource

    def fetch(self, source: RssSource, state: SourceState, client: httpx.Client) -> FetchResult:
        url = state.url or source.url
        response = conditional_get(
            client, url, etag=state.etag, last_modified=state.last_modified
        )
        new_state = SourceState(
            url=response.permanent_url or url,
            etag=response.headers.get("ETag") or state.etag,
            last_modified=response.headers.get("Last-Modified") or state.last_modified,
            cursor=state.cursor,
        )
        if response.status == 304:
            return FetchResult([], new_state, http_status=304, not_modified=True)
        entries = parse_feed(response.body, url, response.headers.get("Content-Type"))
        return FetchResult(
            entries,
            new_state,
            http_status=response.status,
            url_changed_to=response.permanent_url if response.permanent_url != url else None,
        )
