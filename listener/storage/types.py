"""The storage seam: what the rest of listener may ask of a database, one Protocol per concern.

Nothing outside `listener.storage` writes SQL or imports a database driver (CI checks it with
import-linter); it calls these methods with plain values and filter objects, and gets typed
results back. A backend is one class that satisfies `Storage`, registered in
`listener.storage.registry`.

Times are timezone-aware datetimes in, ISO 8601 UTC strings out (as stored). Windows are
[start, end) on a mention's published time, else the time it was fetched. A mention's
*effective label* is a human correction, else the model's label for that brand (a mention
naming several brands is scored per brand), else the model's label for the mention.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from sources.base import Entry, FetchResult, SourceState

Model = tuple[str, str | None]  # (model key, revision)
Row = dict[str, Any]
Period = Literal["day", "week", "month", "all"]
Dimension = Literal["brand", "source", "language", "kind"]


@dataclass(frozen=True)
class FetchCounts:
    entries: int = 0
    new: int = 0
    updated: int = 0
    skipped: int = 0  # matched no brand
    rejected: int = 0  # could not be read or stored: dropped, reasons on the fetch run


@dataclass(frozen=True)
class MatchedEntry:
    entry: Entry
    brands: tuple[str, ...]


@dataclass(frozen=True)
class PendingMention:
    id: int
    title: str
    text: str
    language: str | None
    rating: float | None = None


@dataclass(frozen=True)
class LabelledMention:
    id: int
    label: str | None
    when: str
    url: str | None
    title: str
    text: str
    source_id: str | None = None
    author: str | None = None
    rating: float | None = None
    reach: int | None = None


@dataclass(frozen=True)
class LabelCounts:
    negative: int = 0
    neutral: int = 0
    positive: int = 0

    @property
    def total(self) -> int:
        return self.negative + self.neutral + self.positive


@dataclass(frozen=True)
class Delivery:
    alert_id: int
    channel: str
    title: str
    message: str
    attempts: int
    created_at: str = ""  # the alert's


@dataclass(frozen=True)
class MentionFilter:
    """Which of a brand's mentions in a window an alert rule looks at, and in what order.
    Each field left at its default filters nothing."""

    label: Literal["negative", "neutral", "positive"] | None = None
    labelled: bool = False  # only mentions with an effective label
    rated: bool = False  # only mentions with a star rating
    max_rating: float | None = None
    min_reach: int | None = None
    include_news: bool = True
    order: Literal["newest", "lowest_rating"] = "newest"
    limit: int = 100


# The columns of an export, in the order MetricsRepository.export_batches gives them.
EXPORT_COLUMNS = (
    "id",
    "source_id",
    "external_id",
    "brands",
    "url",
    "author",
    "title",
    "text",
    "language",
    "published_at",
    "fetched_at",
    "rating",
    "reach",
    "label",
    "text_label",
    "score",
    "p_negative",
    "p_neutral",
    "p_positive",
    "needs_review",  # 0/1, None where unscored
    "corrected",  # 0/1
    "brand_labels",
    "model",
    "revision",
)


@dataclass(frozen=True)
class ExportFilter:
    """Which mentions an export holds; None filters nothing."""

    brand: str | None = None
    source: str | None = None
    language: str | None = None
    label: str | None = None  # effective label
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class FeedFilter:
    """Which mentions a feed shows; None filters nothing. With a brand, `label` is that
    brand's effective label (a correction, else the brand's own, else the text's)."""

    brand: str | None = None
    source: str | None = None
    kind: str | None = None  # news | social | reviews
    language: str | None = None
    label: str | None = None
    needs_review: bool | None = None
    min_rating: float | None = None
    max_rating: float | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None  # brand query language


class SourceRepository(Protocol):
    """Configured sources and their fetch state (cursor, validators, due time, failures)."""

    def sync_sources(self, configured: Iterable[Any], now: datetime | None = None) -> None: ...
    def enable_source(self, source_id: str) -> None: ...  # NotFound if not configured
    def source_state(self, source_id: str) -> SourceState: ...  # NotFound
    def due_sources(self, now: datetime | None = None) -> list[str]: ...
    def next_due(self, now: datetime | None = None) -> dict[str, str | None]: ...
    def sources(self) -> list[Row]: ...
    def record_failure(
        self,
        source_id: str,
        error: str,
        *,
        http_status: int | None,
        started: datetime,
        finished: datetime,
        next_due: datetime,
        disable: bool = False,
        worker: str | None = None,  # the lease holder; LeaseLost if another took it over
    ) -> None: ...
    def failures(self, source_id: str) -> int: ...
    def source_activity(
        self, source_id: str, baseline: timedelta
    ) -> tuple[datetime | None, int]: ...


class MentionRepository(Protocol):
    """Mentions as collected, with the fetch that brought them, and human corrections."""

    def save_fetch(
        self,
        source_id: str,
        result: FetchResult,
        matched: Sequence[MatchedEntry],
        *,
        started: datetime,
        finished: datetime,
        next_due: datetime,
        worker: str | None = None,  # the lease holder; LeaseLost if another took it over
    ) -> FetchCounts: ...
    def mention(self, mention_id: int) -> Row | None: ...
    def brands_of(self, mention_ids: Sequence[int]) -> dict[int, list[str]]: ...
    def add_correction(
        self,
        mention_id: int,
        label: str,
        by: str | None = None,
        note: str | None = None,
        now: datetime | None = None,
    ) -> None: ...  # NotFound
    def corrections(self) -> Iterator[Row]: ...


class ScoreRepository(Protocol):
    """Model scores per mention (and per brand), and texts a model failed on."""

    def count_unscored(self, model: str, revision: str | None) -> int: ...
    def unscored(
        self,
        model: str,
        revision: str | None,
        limit: int,
        after: int = 0,
        upto: int | None = None,
    ) -> list[PendingMention]: ...
    def unscored_span(self, model: str, revision: str | None) -> tuple[int, int, int]: ...
    def scored_model(self, preferred: Model) -> Model: ...
    def save_scores(
        self,
        model: str,
        revision: str | None,
        scored: Iterable[tuple[int, Any, Any]],
        now: datetime | None = None,
        brand_rows: Iterable[tuple[int, str, str, Any, str]] = (),
        worker: str | None = None,  # whose claims on these mentions end with this write
    ) -> int: ...
    def score_failed(
        self,
        model: str,
        revision: str | None,
        mention_id: int,
        error: str,
        now: datetime | None = None,
    ) -> tuple[int, bool]: ...
    def clear_score_failures(
        self, model: str | None = None, revision: str | None = None
    ) -> int: ...


class AlertFactRepository(Protocol):
    """What alert rules read: a brand's labelled mentions, counts and ratings in a window."""

    def recent_labelled(
        self,
        brand: str,
        model: str,
        revision: str | None,
        limit: int,
        source: str | None = None,
        *,
        include_news: bool = True,
    ) -> list[LabelledMention]: ...
    def last_non_negative(
        self,
        brand: str,
        model: str,
        revision: str | None,
        source: str | None = None,
        *,
        include_news: bool = True,
    ) -> LabelledMention | None: ...
    def label_counts(
        self,
        brand: str,
        model: str,
        revision: str | None,
        start: datetime,
        end: datetime,
        source: str | None = None,
        *,
        include_news: bool = True,
    ) -> LabelCounts: ...
    def mention_count(self, brand: str, start: datetime, end: datetime) -> int: ...
    def mentions_between(
        self,
        brand: str,
        model: str,
        revision: str | None,
        start: datetime,
        end: datetime,
        where: MentionFilter | None = None,
    ) -> list[LabelledMention]: ...
    def rating_stats(
        self, brand: str, start: datetime, end: datetime
    ) -> tuple[float | None, int]: ...
    def last_alert_at(self, rule_id: str, scope: str) -> datetime | None: ...


class InboxRepository(Protocol):
    """Mentions waiting for a reply or a thank-you, with their due times and owners."""

    def inbox_candidates(self, model: Model, since: datetime) -> list[Row]: ...
    def add_inbox_items(self, items: Sequence[Row], now: datetime) -> int: ...
    def inbox(
        self,
        *,
        brand: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        overdue_at: datetime | None = None,
        assignee: str | None = None,  # a name; "" for items assigned to no one
        limit: int = 100,
        offset: int = 0,
    ) -> list[Row]: ...
    def inbox_count(
        self,
        *,
        brand: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        overdue_at: datetime | None = None,
        assignee: str | None = None,
    ) -> int: ...
    def overdue_inbox(self, now: datetime, brand: str | None = None) -> list[Row]: ...
    def inbox_item(self, mention_id: int) -> Row | None: ...
    def mark_inbox(
        self, mention_id: int, status: str, by: str | None = None, now: datetime | None = None
    ) -> None: ...  # NotFound
    def assign_inbox(self, mention_id: int, assignee: str | None) -> None: ...  # NotFound
    def inbox_all(self, brand: str | None = None, since: datetime | None = None) -> list[Row]: ...


class ReplyRepository(Protocol):
    """Replies posted where a mention was written: approved, claimed, sent, recorded."""

    def reply(self, mention_id: int) -> Row | None: ...
    def approve_reply(
        self,
        mention_id: int,
        source_id: str,
        text: str,
        by: str,
        send_after: datetime,
        now: datetime | None = None,
    ) -> str: ...  # the attempt's idempotency key; ReplyBusy
    def cancel_reply(self, mention_id: int, now: datetime | None = None) -> None: ...
    def due_replies(self, now: datetime | None = None) -> list[Row]: ...
    def claim_reply(
        self, mention_id: int, key: str, worker: str, until: datetime, now: datetime | None = None
    ) -> bool: ...
    def finish_reply(
        self,
        mention_id: int,
        status: str,
        *,
        error: str | None = None,
        retry_at: datetime | None = None,
        platform_id: str | None = None,
        platform_url: str | None = None,
        posted_at: datetime | None = None,
        response: dict[str, Any] | None = None,
        close_as: str | None = None,
        now: datetime | None = None,
    ) -> None: ...
    def interrupted_replies(self, now: datetime | None = None) -> list[Row]: ...
    def resume_reply(self, mention_id: int, status: str, now: datetime | None = None) -> bool: ...
    def replies(self, status: str | None = None, limit: int = 100) -> list[Row]: ...
    def auto_reply_candidates(self, source_id: str, kinds: list[str]) -> list[Row]: ...
    def reply_check_candidates(
        self, source_id: str, checked_before: datetime, posted_since: datetime, limit: int
    ) -> list[Row]: ...
    def mark_platform_checked(self, mention_ids: list[int], at: datetime) -> None: ...
    def platform_checks_since(self, source_id: str, since: datetime) -> int: ...
    def close_answered_elsewhere(
        self, mention_id: int, status: str, answered_at: datetime, now: datetime | None = None
    ) -> bool: ...  # False: the item was no longer open


class AlertRepository(Protocol):
    """Fired alerts (once per dedupe key) and their deliveries per channel."""

    def add_alert(
        self, alert: Any, channels: Sequence[str], now: datetime | None = None
    ) -> bool: ...
    def known_alerts(self, dedupe_keys: Sequence[str]) -> set[str]: ...
    def alert(self, alert_id: int) -> Row | None: ...
    def has_alert(self, alert_id: int) -> bool: ...
    def alerts(self, limit: int = 50) -> list[Row]: ...
    def pending_deliveries(self, now: datetime | None = None) -> list[Delivery]: ...
    def claim_delivery(
        self, alert_id: int, channel: str, worker: str = "", until: datetime | None = None
    ) -> bool: ...
    def finish_delivery(
        self,
        alert_id: int,
        channel: str,
        status: str,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None: ...
    def deliveries(self, alert_id: int) -> list[Row]: ...
    def requeue_deliveries(self, alert_id: int | None = None) -> int: ...
    def waiting_deliveries(self, alert_id: int | None = None) -> list[Row]: ...
    def recover_deliveries(self, now: datetime | None = None) -> int: ...


class WorkRepository(Protocol):
    """Which worker holds which piece of work (listener.workers): a due source, a mention to
    score, a singleton task such as the alert pass. Each claim has an owner and an expiry;
    the owner renews it while it works, and an expired claim is free for any worker."""

    def register_worker(
        self, worker: str, host: str, pid: int, roles: Sequence[str], now: datetime
    ) -> None: ...
    def unregister_worker(self, worker: str) -> None: ...  # and give back all it holds
    def renew_leases(self, worker: str, now: datetime, until: datetime) -> None: ...
    def workers(self) -> list[Row]: ...
    def lease_holders(self) -> list[str]: ...
    def expire_holders(self, holders: Sequence[str], now: datetime) -> int: ...
    def claim_due_sources(
        self, worker: str, now: datetime, until: datetime, limit: int
    ) -> list[str]: ...
    def release_source(self, source_id: str, worker: str) -> None: ...
    def claim_unscored(
        self,
        worker: str,
        model: str,
        revision: str | None,
        limit: int,
        now: datetime,
        until: datetime,
    ) -> list[PendingMention]: ...
    def release_score_claims(self, worker: str) -> int: ...
    def claim_task(self, task: str, worker: str, now: datetime, until: datetime) -> bool: ...
    def release_task(self, task: str, worker: str) -> None: ...


class CopyRepository(Protocol):
    """Whole tables in key order, for `listener db copy` (listener.dbcopy) and its check."""

    def copy_columns(self, table: str) -> list[str]: ...
    def rows_after(
        self, table: str, after: Sequence[Any] | None, limit: int, columns: Sequence[str]
    ) -> list[tuple[Any, ...]]: ...
    def last_key(self, table: str) -> tuple[Any, ...] | None: ...
    def put_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> int: ...
    def finish_copy(self) -> None: ...
    def table_digest(self, table: str, columns: Sequence[str]) -> tuple[int, str]: ...


class MetricsRepository(Protocol):
    """Aggregates for metrics, share of voice, key drivers and exports."""

    def sentiment_counts(
        self,
        model: Model,
        *,
        period: Period,
        by: Dimension,
        brands: Sequence[str] | None,
        since: datetime | None,
        until: datetime | None,
        include_news: bool,
    ) -> list[Row]: ...
    def news_volume(self, *, since: datetime | None, until: datetime | None) -> dict[str, int]: ...
    def brand_volumes(
        self,
        brands: Sequence[str],
        *,
        period: Period,
        since: datetime | None,
        until: datetime | None,
    ) -> list[Row]: ...
    def labelled_texts(
        self, model: Model, brand: str, *, since: datetime | None, until: datetime | None
    ) -> list[Row]: ...
    def export_batches(
        self, model: Model, where: ExportFilter, size: int, *, time_order: bool = True
    ) -> Iterator[list[tuple[Any, ...]]]: ...


class SearchRepository(Protocol):
    """The newest mentions, narrowed by brand and a brand-query-language search, or by every
    filter of a mentions feed."""

    def latest_mentions(
        self, *, brand: str | None = None, search: str | None = None, limit: int = 20
    ) -> list[Row]: ...  # InvalidSearchQuery
    def mention_feed(
        self, model: Model, where: FeedFilter, *, limit: int = 50, offset: int = 0
    ) -> list[Row]: ...  # newest first; InvalidSearchQuery


class AuditRepository(Protocol):
    """Who changed what: each change recorded in the transaction that makes it."""

    def audited(
        self,
        actor: str,
        action: str,
        target: str | None = None,
        detail: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> AbstractContextManager[None]: ...
    def audit_log(
        self, *, actor: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Row]: ...


class Storage(
    SourceRepository,
    MentionRepository,
    ScoreRepository,
    AlertFactRepository,
    InboxRepository,
    ReplyRepository,
    AlertRepository,
    WorkRepository,
    CopyRepository,
    MetricsRepository,
    SearchRepository,
    AuditRepository,
    Protocol,
):
    """Everything listener stores. Open one per job or request; never share one between
    threads that run at the same time."""

    def reusable(self) -> bool: ...  # connected, no transaction or result left open
    def close(self) -> None: ...
