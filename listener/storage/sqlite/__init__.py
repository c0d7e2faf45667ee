"""The embedded default backend: one SQLite file through sqlite-utils.

Each concern is a mixin in its own module, composed here into one class, as lemon24/reader
composes its storage."""

from __future__ import annotations

from listener.storage.sqlite._base import SQLiteBase
from listener.storage.sqlite.alerts import AlertsMixin
from listener.storage.sqlite.facts import AlertFactsMixin
from listener.storage.sqlite.inbox import InboxMixin
from listener.storage.sqlite.mentions import MentionsMixin, content_key
from listener.storage.sqlite.metrics import MetricsMixin
from listener.storage.sqlite.scores import ScoresMixin
from listener.storage.sqlite.search import SearchMixin
from listener.storage.sqlite.sources import SourcesMixin


class SQLiteStorage(
    SourcesMixin,
    MentionsMixin,
    ScoresMixin,
    AlertFactsMixin,
    InboxMixin,
    AlertsMixin,
    MetricsMixin,
    SearchMixin,
    SQLiteBase,
):
    """Every storage concern over one SQLite file."""


__all__ = ["SQLiteStorage", "content_key"]
