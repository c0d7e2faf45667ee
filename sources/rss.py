"""RSS/Atom/RDF feeds: Google Alerts, news searches, app-store review feeds, blogs.

The HTTP is ours (sources.http); the bytes go to feedparser.parse(), which never fetches.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import re
from datetime import datetime
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, urljoin, urlsplit

import feedparser
import httpx
from pydantic import field_validator

from listener.textnorm import html_to_text
from listener.timeutil import time_or_none
from sources import googlenews, register
from sources.base import (
    Entry,
    FetchError,
    FetchResult,
    Kind,
    SourceConfig,
    SourceState,
    Unparsed,
    normalise_each,
)
from sources.http import conditional_get
from sources.jsonfeed import looks_like_json, parse_json_feed


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

    def default_kind(self) -> Kind:
        return feed_kind(self.url)


# Feeds whose entries are people's posts or reviews; any other feed (news searches, Google
# Alerts, news sites, blogs) is taken as news unless the source says `kind:`.
_SOCIAL_HOSTS = (
    "reddit.com",
    "hnrss.org",
    "news.ycombinator.com",
    "mastodon.",
    "bsky.",
    "lobste.rs",
    "stackoverflow.com",
    "stackexchange.com",
)
_REVIEW_HINTS = ("customerreviews", "/reviews", "trustpilot.", "play.google.com")


def feed_kind(url: str) -> Kind:
    low = url.lower()
    host = urlsplit(low).hostname or ""
    if any(h in low for h in _REVIEW_HINTS):
        return "reviews"
    if any(host == h or host.endswith("." + h) or host.startswith(h) for h in _SOCIAL_HOSTS):
        return "social"
    return "news"


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


def _published(entry: Any, language: str | None = None) -> datetime | None:
    # A date outside what a datetime holds (year 0, 9999 with an offset) is just missing.
    # dict.get: feedparser's own get() maps a missing updated_parsed to published_parsed,
    # with a deprecation warning each time.
    parsed = time_or_none(entry.get("published_parsed")) or time_or_none(
        dict.get(entry, "updated_parsed")
    )
    if parsed is not None:
        return parsed
    written = dict.get(entry, "published") or dict.get(entry, "updated")
    return localised_date(written, language) if isinstance(written, str) else None


def localised_date(text: str, language: str | None) -> datetime | None:
    """Dates feedparser cannot read because they are written in the feed's language
    ("Seg, 24 Set 2018 19:42:40 -0300"), read by dateparser (the feed's language first:
    fifteen times faster than trying every language)."""
    import dateparser

    text = text.strip()[:100]
    if not text:
        return None
    settings = {"RETURN_AS_TIMEZONE_AWARE": True, "TO_TIMEZONE": "UTC"}
    try:
        found = dateparser.parse(
            text, languages=[language] if language else None, settings=settings
        )
        if found is None and language:
            found = dateparser.parse(text, settings=settings)
    except Exception:  # dateparser on hostile text: a missing date, never a lost entry
        return None
    return time_or_none(found)


def _rating(entry: Any) -> float | None:
    # Apple's customer-review feeds carry <im:rating>; feedparser names it im_rating.
    value = entry.get("im_rating")
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


_EMAIL_AND_NAME = re.compile(r"^\s*\S+@\S+\s+\((.+)\)\s*$")


def author_name(entry: Any) -> str | None:
    """The author's name: RSS writes "email (Name)", which must not end up in a greeting."""
    detail = entry.get("author_detail") or {}
    name = (detail.get("name") or "").strip()
    raw = (entry.get("author") or "").strip()
    if match := _EMAIL_AND_NAME.match(raw):
        return match.group(1).strip()
    if name and "@" not in name:
        return name
    if raw and "@" in raw and " " not in raw:
        return raw.split("@")[0]  # a bare address: the part before @ is what people see
    return raw or name or None


def content_hash(*parts: object) -> str:
    # surrogatepass: a lone surrogate from a broken source still hashes (the same each time);
    # every other text hashes exactly as before, so stored hashes stay valid.
    text = json.dumps(parts, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _absolute(base: str | None, ref: str | None) -> str | None:
    if ref and base and not urlsplit(ref).scheme:
        return urljoin(base, ref)
    return ref


def normalise_entry(
    entry: Any, feed_language: str | None = None, base_url: str | None = None
) -> Entry:
    """One feedparser entry -> Entry. Identity: the guid/id as written, else the link, else
    a hash of the content. A relative id is not resolved against the feed's URL (the App
    Store's <id>6310006838</id> is no link, and must stay the same when the feed moves); the
    resolved form it was stored under before is kept as an alias."""
    html = entry["content"][0].get("value") if entry.get("content") else entry.get("summary")
    title = html_to_text(entry.get("title"))
    # feedparser copies an id into `link` when there is no link ("guidislink"): an id that is
    # not itself a URL is no link, and must not be made one against the feed's address.
    raw_link = entry.get("link")
    if entry.get("guidislink") and raw_link and not urlsplit(raw_link).scheme:
        raw_link = None
    link = unwrap_redirect(_absolute(base_url, raw_link))
    author = author_name(entry)
    rating = _rating(entry)
    digest = content_hash(title, html, link, author, rating)
    raw_id = entry.get("id")
    external_id = raw_id or link or f"sha256:{digest}"
    aliases = (
        (urljoin(base_url, raw_id),) if raw_id and base_url and not urlsplit(raw_id).scheme else ()
    )
    raw = {k: v for k, v in entry.items() if not k.endswith("_parsed")}
    language = _language(entry, feed_language)
    return Entry(
        external_id=external_id,
        url=link,
        author=author,
        title=title,
        text=html_to_text(html),
        html=html,
        language=language,
        published_at=_published(entry, language),
        content_hash=digest,
        rating=rating,
        raw=raw,
        aliases=aliases,
    )


# A numeric character reference to a surrogate, past U+10FFFF or to NUL makes feedparser's
# lenient parser raise (chr() or UTF-8 encoding fails) and lose the whole feed.
_CHARREF = re.compile(rb"&#(?:[xX]([0-9A-Fa-f]{1,16})|([0-9]{1,20}));")


def _fix_charref(match: re.Match[bytes]) -> bytes:
    code = int(match.group(1), 16) if match.group(1) else int(match.group(2))
    if code == 0 or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        return b"&#xFFFD;"
    return match.group(0)


def _valid_charrefs(body: bytes) -> bytes:
    if b"&#" not in body:
        return body
    body = _CHARREF.sub(_fix_charref, body)
    # Longer digit runs than any code point needs: also out of range.
    return re.sub(rb"&#(?:[xX][0-9A-Fa-f]{17,}|[0-9]{21,});", b"&#xFFFD;", body)


_BASE = re.compile(rb"base", re.IGNORECASE)


def _may_set_a_base(body: bytes) -> bool:
    """Whether the document can carry an xml:base (or base) attribute. Without one, and with no
    Content-Location, feedparser's base is empty and resolving relative URIs in HTML content
    changes nothing, yet re-parses every entry's HTML (4 % of a pass). A body in UTF-16 or
    UTF-32 is not searched as bytes: it is resolved as before."""
    if body.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in body[:4]:
        return True
    return _BASE.search(body) is not None


def parse_feed_entries(
    body: bytes, url: str, content_type: str | None = None
) -> tuple[list[Entry], list[str]]:
    """Entries of a feed, and the ones that could not be read (each with its reason)."""
    # Without a Content-Type feedparser assumes ISO-8859-1 and never sniffs; an XML type lets
    # it honour the XML declaration and fall back to chardet for undeclared legacy encodings.
    # No Content-Location: feedparser would resolve every relative URI in the document against
    # it (ids included, and at a cost); links are resolved here, one field each.
    headers = {"content-type": content_type or "application/xml"}
    body = _valid_charrefs(body)
    try:
        parsed = feedparser.parse(
            body, response_headers=headers, resolve_relative_uris=_may_set_a_base(body)
        )
    except Exception as exc:  # feedparser bugs on hostile input must not look like a crash
        raise FetchError(
            f"{url}: the feed could not be parsed ({type(exc).__name__}: {exc})"
        ) from None
    if not parsed.entries and not parsed.get("version"):
        reason = parsed.get("bozo_exception") or "no feed elements found"
        kind = f" (Content-Type {content_type})" if content_type else ""
        raise FetchError(f"{url}: not an RSS/Atom feed{kind}: {reason}")
    feed_language = parsed.feed.get("language")
    return normalise_each(
        parsed.entries,
        lambda e: normalise_entry(e, feed_language, url),
        lambda i, e: f"entry {i + 1} ({str(e.get('id') or e.get('link') or '')[:80]!r})",
    )


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> list[Entry]:
    return parse_feed_entries(body, url, content_type)[0]


def parse_body(
    body: bytes, url: str, content_type: str | None = None
) -> tuple[list[Entry], list[str]]:
    """A fetched body, RSS/Atom/RDF or JSON Feed, as entries and rejections."""
    if looks_like_json(body, content_type):
        entries, rejected = parse_json_feed(body, url)
    else:
        entries, rejected = parse_feed_entries(body, url, content_type)
    if googlenews.is_google_news(url):
        entries = [t for e in entries if (t := googlenews.tidy(e)) is not None]
    return entries, rejected


@register
class RssCollector:
    type: ClassVar[str] = "rss"
    config_model: ClassVar[builtins.type[SourceConfig]] = RssSource

    def fetch(self, source: RssSource, state: SourceState, client: httpx.Client) -> FetchResult:
        url = state.url or source.url
        response = conditional_get(client, url, etag=state.etag, last_modified=state.last_modified)
        new_state = SourceState(
            url=response.permanent_url or url,
            etag=response.headers.get("ETag") or state.etag,
            last_modified=response.headers.get("Last-Modified") or state.last_modified,
            cursor=state.cursor,
        )
        if response.status == 304:
            return FetchResult([], new_state, http_status=304, not_modified=True)
        # Parsed by the pipeline: in a worker process during a large pass, since feedparser
        # holds the GIL.
        content_type = response.headers.get("Content-Type")
        return FetchResult(
            [],
            new_state,
            http_status=response.status,
            url_changed_to=response.permanent_url if response.permanent_url != url else None,
            unparsed=Unparsed(parse_body, (response.body, url, content_type)),
        )
