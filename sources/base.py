"""The Collector seam: what every source type provides, and what it hands back."""

from __future__ import annotations

import builtins
import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, Protocol, TypeVar, runtime_checkable

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

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


class AutoReply(BaseModel):
    """Replies a source posts without a person approving each one: the inbox's draft, after a
    delay in which anyone can still stop it, for the kinds of item chosen (e.g. thanking
    happy reviewers). Never for an item whose words and stars disagree."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: list[Literal["reply", "thank"]] = Field(
        default=["thank"], min_length=1, description="inbox kinds answered"
    )
    delay: Duration = Field(
        default=timedelta(hours=2), description="how long after the item appears it is sent"
    )


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
    auto_reply: AutoReply | None = Field(
        default=None,
        description="post the inbox's drafts without approval, after a delay, for chosen "
        "kinds (sources with a reply path only)",
    )

    @model_validator(mode="after")
    def _auto_reply_needs_a_path(self) -> SourceConfig:
        from sources import reply_path  # the registry imports this module

        if self.auto_reply is not None and reply_path(self.type) is None:
            raise ValueError(
                f"auto_reply: {self.type} sources cannot post replies (no reply API); "
                "remove auto_reply"
            )
        return self

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


@dataclass(frozen=True)
class Unparsed:
    """A response whose parsing is left to the pipeline: `parse(*args)` gives (entries,
    rejected). A module-level function of plain data, so a large pass runs it in a worker
    process together with its own work on the entries, and the entries cross between
    processes once instead of twice."""

    parse: Callable[..., tuple[list[Entry], list[str]]]
    args: tuple[Any, ...]


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
    unparsed: Unparsed | None = None  # entries still to be read from a body (see parsed())


def parsed(result: FetchResult) -> FetchResult:
    """The result with its unparsed body read into entries (FetchError: not parseable)."""
    if result.unparsed is None:
        return result
    entries, rejected = result.unparsed.parse(*result.unparsed.args)
    return dataclasses.replace(
        result,
        entries=result.entries + entries,
        rejected=result.rejected + rejected,
        unparsed=None,
    )


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


@dataclass(frozen=True)
class ReplyTarget:
    """The mention a reply answers, as its source stored it."""

    external_id: str
    url: str | None
    author: str | None
    language: str | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class ReplyAttempt:
    """One approved reply: `key` and `approved_at` are the same for every try at sending it,
    so a platform can recognise a second try as the same reply."""

    key: str
    approved_at: datetime


@dataclass(frozen=True)
class Posted:
    """A reply the platform took: its id and link there, and the platform's own time of it."""

    platform_id: str
    url: str | None
    at: datetime | None
    response: dict[str, Any] = field(default_factory=dict)  # the essentials of its answer


class ReplyError(Exception):
    """A reply the platform did not take. `final`: sending it again would fail the same way
    (refused, too long, the post deleted); otherwise it is tried again later."""

    def __init__(self, message: str, *, final: bool = False, http_status: int | None = None):
        super().__init__(message)
        self.final = final
        self.http_status = http_status


@runtime_checkable
class ReplyPath(Protocol):
    """A collector that can also post a reply where the mention was written.

    A send interrupted mid-way (a crash, a kill) is tried again with the same attempt only if
    the platform cannot take it twice (`resend_safe`: for how long after the first try that
    holds); otherwise it is left for a person. `max_chars`: the longest text it takes."""

    max_chars: ClassVar[int]
    resend_safe: ClassVar[timedelta]

    def reply(
        self,
        source: Any,
        target: ReplyTarget,
        text: str,
        attempt: ReplyAttempt,
        client: httpx.Client,
    ) -> Posted: ...


@runtime_checkable
class ReplyCheck(Protocol):
    """A reply path that can also tell whether the mention was answered on the platform
    itself (in the store's console, from the brand's account in an app): the answer as
    Posted, or None. FetchError when it cannot tell. `checks_per_hour`: lookups it may spend
    an hour, leaving the platform's read quota to collecting."""

    checks_per_hour: ClassVar[int]

    def find_reply(
        self, source: Any, target: ReplyTarget, client: httpx.Client
    ) -> Posted | None: ...


def reply_error(exc: FetchError, where: str) -> ReplyError:
    """A failed HTTP call of a reply path as a ReplyError: a refusal (4xx but 408/429) is
    final, anything else (5xx, a timeout, a rate limit) worth another try."""
    status = exc.http_status
    final = status is not None and 400 <= status < 500 and status not in (408, 425, 429)
    message = str(exc) if str(exc).startswith(where) else f"{where}: {exc}"
    return ReplyError(message, final=final, http_status=status)


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
