"""The embedded default backend: one SQLite file through sqlite-utils.

Each concern is a mixin in its own module, composed here into one class, as lemon24/reader
composes its storage."""

from __future__ import annotations

from listener.storage.sql.alerts import AlertsMixin
from listener.storage.sql.facts import AlertFactsMixin
from listener.storage.sql.inbox import InboxMixin
from listener.storage.sql.mentions import MentionsMixin, content_key
from listener.storage.sql.metrics import MetricsMixin
from listener.storage.sql.scores import ScoresMixin
from listener.storage.sql.search import SearchMixin
from listener.storage.sql.sources import SourcesMixin
from listener.storage.sqlite._base import SQLiteBase


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
