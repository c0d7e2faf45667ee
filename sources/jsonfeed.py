"""JSON Feed 1.0 and 1.1 (jsonfeed.org), which hnrss.org and many blogs offer beside RSS.

feedparser reads XML only; this reads the JSON form into the same Entry, through the same
`rss` source type: a feed URL that answers JSON is read as JSON.
"""

from __future__ import annotations

import json
from typing import Any

from listener.textnorm import html_to_text
from listener.timeutil import time_or_none
from sources.base import Entry, FetchError, normalise_each

VERSION_PREFIX = "https://jsonfeed.org/version/"


def looks_like_json(body: bytes, content_type: str | None) -> bool:
    return "json" in (content_type or "").lower() or body.lstrip()[:1] == b"{"


def _author(node: Any) -> str | None:
    """1.1 has `authors` (a list), 1.0 a single `author`."""
    if isinstance(node, dict):
        authors = node.get("authors")
        if isinstance(authors, list) and authors and isinstance(authors[0], dict):
            return authors[0].get("name") or None
        author = node.get("author")
        if isinstance(author, dict):
            return author.get("name") or None
    return None


def item_entry(item: dict[str, Any], feed: dict[str, Any]) -> Entry:
    from sources.rss import content_hash

    if not isinstance(item, dict):
        raise ValueError("an item is not an object")
    html = item.get("content_html")
    text = html_to_text(html) if html else (item.get("content_text") or item.get("summary") or "")
    title = html_to_text(item.get("title")) if item.get("title") else ""
    link = item.get("url") or item.get("external_url")
    author = _author(item) or _author(feed)
    identity = item.get("id") if isinstance(item.get("id"), str | int) else None
    if identity is None or str(identity).strip() == "":
        identity = link or f"sha256:{content_hash(title, text, author)}"
    language = item.get("language") or feed.get("language")
    return Entry(
        external_id=str(identity),
        url=link if isinstance(link, str) else None,
        author=author,
        title=title,
        text=text,
        html=html if isinstance(html, str) else None,
        language=language.split("-")[0].lower() if isinstance(language, str) else None,
        published_at=time_or_none(item.get("date_published"))
        or time_or_none(item.get("date_modified")),
        content_hash=content_hash(title, html or text, link, author),
        raw=item,
    )


def parse_json_feed(body: bytes, url: str) -> tuple[list[Entry], list[str]]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise FetchError(f"{url}: the response is not JSON ({exc})") from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(VERSION_PREFIX):
        raise FetchError(f"{url}: JSON, but not a JSON Feed (no {VERSION_PREFIX}… version)")
    items: list[Any] = doc["items"] if isinstance(doc.get("items"), list) else []
    return normalise_each(
        items,
        lambda item: item_entry(item, doc),
        lambda i, item: (
            f"item {i + 1} ({str(item.get('id'))[:60]!r})"
            if isinstance(item, dict)
            else f"item {i + 1}"
        ),
    )
