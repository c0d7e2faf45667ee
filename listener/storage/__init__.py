"""Everything listener keeps, behind one seam.

    CLI · scheduler · web · alerts · metrics · export
                        │  plain values, filter objects (MentionFilter, ExportFilter)
                        ▼
    listener.storage.types.Storage        one Protocol per concern: sources, mentions,
                        │                 scores, alert facts, inbox, alerts/deliveries,
                        │                 metrics, search; typed results; errors.py
                        ▼
    listener.storage.registry.open_store(database)   picks the backend by URL scheme
                        │
                        ▼
    listener.storage.sqlite   (the embedded default: one file, sqlite-utils migrations)

No SQL text crosses the seam, and nothing outside this package imports a database driver
(an import-linter contract in pyproject.toml, checked in CI).
"""

from __future__ import annotations

from listener.storage.errors import (
    InvalidSearchQuery,
    LeaseLost,
    NotFound,
    ReplyBusy,
    StorageError,
    UnknownBackend,
)
from listener.storage.registry import (
    BACKENDS,
    RunLock,
    backend_of,
    describe,
    open_store,
    scheduler_lock,
)
from listener.storage.types import (
    EXPORT_COLUMNS,
    Delivery,
    ExportFilter,
    FeedFilter,
    FetchCounts,
    LabelCounts,
    LabelledMention,
    MatchedEntry,
    MentionFilter,
    Model,
    PendingMention,
    Storage,
)

__all__ = [
    "BACKENDS",
    "EXPORT_COLUMNS",
    "Delivery",
    "ExportFilter",
    "FeedFilter",
    "FetchCounts",
    "InvalidSearchQuery",
    "LabelCounts",
    "LabelledMention",
    "LeaseLost",
    "MatchedEntry",
    "MentionFilter",
    "Model",
    "NotFound",
    "PendingMention",
    "ReplyBusy",
    "RunLock",
    "Storage",
    "StorageError",
    "UnknownBackend",
    "backend_of",
    "describe",
    "open_store",
    "scheduler_lock",
]
