"""Google News feeds, made to read as news items rather than as Google's page furniture.

- Links point at news.google.com/rss/articles/CBMi…: the older tokens are base64 of a small
  protobuf whose field 4 is the publisher's URL, recovered here without asking Google; newer
  tokens are opaque, and those links are kept as they are.
- Titles end in " - Publisher": cut, the publisher kept as the author.
- The description is a list of other outlets' headlines on the same story: it is not this
  item's text, so the text is the headline (the description stays in raw).
- "This feed is not available." is Google's placeholder, not a mention.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from typing import Any
from urllib.parse import urlsplit

from bs4 import BeautifulSoup

from sources.base import Entry

PLACEHOLDERS = ("This feed is not available.",)
_TOKEN = re.compile(r"/articles/([A-Za-z0-9_-]+)")


def is_google_news(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() == "news.google.com"


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("truncated varint")


def decode_link(link: str | None) -> str | None:
    """The publisher's URL inside an older Google News article link, else None."""
    match = _TOKEN.search(link or "")
    if not match or not is_google_news(link or ""):
        return None
    token = match.group(1)
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        pos = 0
        while pos < len(data):
            key, pos = _varint(data, pos)
            field, wire = key >> 3, key & 7
            if wire == 0:
                _, pos = _varint(data, pos)
            elif wire == 2:
                length, pos = _varint(data, pos)
                value = data[pos : pos + length]
                pos += length
                if field == 4:
                    url = value.decode("utf-8")
                    return url if url.startswith(("http://", "https://")) else None
            else:
                return None
    except (ValueError, UnicodeDecodeError):
        return None
    return None


def _publisher(raw: dict[str, Any]) -> str | None:
    source = raw.get("source") or {}
    if isinstance(source, dict) and source.get("title"):
        return str(source["title"]).strip()
    # Older feeds: the item's own outlet is the first <font> of the description's list.
    summary = raw.get("summary") or ""
    if "<font" in summary:
        font = BeautifulSoup(summary, "html.parser").find("font")
        if font and font.get_text(strip=True):
            return font.get_text(strip=True)
    return None


def tidy(entry: Entry) -> Entry | None:
    """The entry as a news item, or None for Google's placeholder."""
    if entry.title.strip() in PLACEHOLDERS:
        return None
    publisher = _publisher(entry.raw)
    title = entry.title
    if publisher and title.endswith(f" - {publisher}"):
        title = title[: -len(publisher) - 3].rstrip()
    return dataclasses.replace(
        entry,
        title=title,
        text=title,
        author=publisher or entry.author,
        url=decode_link(entry.url) or entry.url,
        raw={**entry.raw, "google_news_link": entry.url},
    )
