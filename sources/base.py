"""The Collector seam: what every source type provides, and what it hands back."""

from __future__ import annotations

import builtins
import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from listener import secrets
from listener.textnorm import clean
from listener.timeutil import Duration, iso
from listener.urls import http_url

SOURCE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# What a source carries. news: reported, not the writer's opinion of a brand (a robbery at a
# store is not a complaint); social: people's posts; reviews: customers rating a product.
Kind = Literal["news", "social", "reviews"]


def api_base(value: str) -> str:
    """A service's address from sources.yaml (an instance, a PDS): an http(s) URL with a host,
    without a trailing slash. ValueError otherwise, for the config's message."""
    if http_url(value) is None:
        raise ValueError(f"an http(s) address, e.g. https://mastodon.social; got {value[:80]!r}")
    return value.strip().rstrip("/")


class SourceConfig(BaseModel):
    """Keys every source has. A collector subclasses it with its own keys and a `type` literal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=SOURCE_NAME_PATTERN, description="unique id of the source")
    type: str
    brand: str | None = Field(
        default=None,
        description="brand every item of this source belongs to; omit to match all brand queries",
    )
    interval: Duration = Field(default=timedelta(minutes=15), description="how often to fetch")
    enabled: bool = True
    kind: Kind | None = Field(
        default=None,
        description="news, social or reviews; default by source type. News is "
        "never an inbox item and streak/spike rules skip it unless they ask for it",
    )

    def endpoint(self) -> str:
        """Where this source reads from, for messages and the sources table."""
        return ""

    def default_kind(self) -> Kind:
        return "social"

    def effective_kind(self) -> Kind:
        return self.kind or self.default_kind()


@dataclass
class SourceState:
    """What the database remembers about a source between fetches."""

    url: str | None = None  # effective URL; a 301 replaces the configured one
    etag: str | None = None
    last_modified: str | None = None
    cursor: dict[str, Any] = field(default_factory=dict)


@dataclass
class Entry:
    """One normalised mention, as a collector hands it over."""

    external_id: str
    url: str | None
    author: str | None
    title: str
    text: str  # plain text, used for matching and classification
    html: str | None  # the original markup, kept as fetched
    language: str | None  # the source's own hint
    published_at: datetime | None
    content_hash: str
    rating: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    language_source: str | None = None  # hint (from the source) | detected
    reach: int | None = None  # the author's audience: followers, karma...
    removed: bool = False  # deleted/removed at the source: kept as first seen, flagged
    hint_trusted: bool = False  # the source's language is per item and reliable (X's `lang`)
    language_hint: str | None = None  # the source's claim, when detection overrode it
    aliases: tuple[str, ...] = ()  # ids this entry was stored under by earlier versions


@dataclass
class FetchResult:
    """A successful fetch: entries plus the state to store with them, in one transaction."""

    entries: list[Entry]
    state: SourceState
    http_status: int | None = None
    not_modified: bool = False
    url_changed_to: str | None = None
    rejected: list[str] = field(default_factory=list)  # entries dropped, each with its reason
    # Stored, but something may be missing (a coverage gap): shown on the source.
    warnings: list[str] = field(default_factory=list)
    retry_after: timedelta | None = None  # a floor on the next fetch (a rate limit hit midway)


class FetchError(Exception):
    """A fetch that failed. The message names the source's endpoint and what went wrong."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        retry_after: timedelta | None = None,
        disable: bool = False,
        interrupted: bool = False,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.retry_after = retry_after
        self.disable = disable
        self.interrupted = interrupted  # cut by our own shutdown: not the source's failure


class Collector(Protocol):
    """Fetches and normalises; never writes to the database."""

    type: ClassVar[str]
    config_model: ClassVar[builtins.type[SourceConfig]]

    def fetch(self, source: Any, state: SourceState, client: httpx.Client) -> FetchResult: ...


MAX_REJECTION_CHARS = 300
_T = TypeVar("_T")


def normalise_each(
    items: Iterable[_T],
    normalise: Callable[[_T], Entry],
    describe: Callable[[int, _T], str] = lambda i, _: f"entry {i + 1}",
) -> tuple[list[Entry], list[str]]:
    """Normalise items one by one: an item that cannot be read is dropped with its reason,
    and never takes the rest of the response with it."""
    entries, rejected = [], []
    for i, item in enumerate(items):
        try:
            entries.append(normalise(item))
        except Exception as exc:
            rejected.append(rejection(describe(i, item), exc))
    return entries, rejected


def rejection(where: str, problem: Exception | str) -> str:
    why = problem if isinstance(problem, str) else f"{type(problem).__name__}: {problem}"
    return clean(f"{where}: {why}")[:MAX_REJECTION_CHARS]


def _clean_tree(value: Any, depth: int = 0) -> Any:
    if depth > 64:
        return None  # deeper than any real API response: not worth keeping
    if isinstance(value, str):
        # feedparser records the feed's own URL in each *_detail.base: a token in it stays out
        return secrets.mask(clean(value))
    if isinstance(value, dict):
        return {clean(str(k)): _clean_tree(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_tree(v, depth + 1) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return clean(str(value))


def _storable_time(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        iso(value)  # years 1 and 9999 overflow once moved to UTC
    except (OverflowError, ValueError):
        return None
    return value


def checked(entry: Entry) -> Entry:
    """The entry as storage needs it, whatever the source sent: text without unstorable
    characters, a link only if it is http(s), a time that exists in UTC or none, raw data
    that serialises. Raises ValueError when it has no usable identity."""
    external_id = clean(str(entry.external_id or "")).strip()
    if not external_id:
        raise ValueError("no id, link or content to identify it")
    raw = _clean_tree(entry.raw)
    json.dumps(raw, ensure_ascii=False)  # raises on NaN-free garbage we could not clean
    rating = (
        entry.rating
        if isinstance(entry.rating, int | float) and (0 <= entry.rating <= 10)
        else None
    )
    reach = entry.reach if isinstance(entry.reach, int) and (0 <= entry.reach < 2**63) else None
    return dataclasses.replace(
        entry,
        external_id=external_id[:1000],
        aliases=tuple(clean(str(a))[:1000] for a in entry.aliases if a),
        url=secrets.mask(http_url(entry.url)),
        author=clean(entry.author) if isinstance(entry.author, str) else None,
        title=clean(entry.title or ""),
        text=clean(entry.text or ""),
        html=secrets.mask(clean(entry.html)) if isinstance(entry.html, str) else None,
        language=clean(entry.language)[:35] if isinstance(entry.language, str) else None,
        language_hint=clean(entry.language_hint)[:35]
        if isinstance(entry.language_hint, str)
        else None,
        published_at=_storable_time(entry.published_at),
        content_hash=clean(entry.content_hash),
        rating=float(rating) if rating is not None else None,
        reach=reach,
        raw=raw,
    )


def check_all(entries: Iterable[Entry]) -> tuple[list[Entry], list[str]]:
    """checked() for each entry; one that cannot be stored is dropped with its reason."""
    return normalise_each(
        entries, checked, lambda i, e: f"entry {i + 1} ({str(e.external_id)[:80]!r})"
    )
