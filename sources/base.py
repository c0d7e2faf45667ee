"""The Collector seam: what every source type provides, and what it hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field

from listener.timeutil import Duration

SOURCE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


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

    def endpoint(self) -> str:
        """Where this source reads from, for messages and the sources table."""
        return ""


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


@dataclass
class FetchResult:
    """A successful fetch: entries plus the state to store with them, in one transaction."""

    entries: list[Entry]
    state: SourceState
    http_status: int | None = None
    not_modified: bool = False
    url_changed_to: str | None = None


class FetchError(Exception):
    """A fetch that failed. The message names the source's endpoint and what went wrong."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        retry_after: timedelta | None = None,
        disable: bool = False,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.retry_after = retry_after
        self.disable = disable


class Collector(Protocol):
    """Fetches and normalises; never writes to the database."""

    type: ClassVar[str]
    config_model: ClassVar[type[SourceConfig]]

    def fetch(self, source: Any, state: SourceState, client: httpx.Client) -> FetchResult: ...
