"""PostgreSQL as a backend (`database: postgresql://user@host/db`, psycopg 3): the same concern
mixins as SQLite over a psycopg connection, with PostgreSQL's own migrations and search."""

from __future__ import annotations

from listener.storage.postgres._base import PostgresBase
from listener.storage.sql.alerts import AlertsMixin
from listener.storage.sql.facts import AlertFactsMixin
from listener.storage.sql.inbox import InboxMixin
from listener.storage.sql.mentions import MentionsMixin
from listener.storage.sql.metrics import MetricsMixin
from listener.storage.sql.scores import ScoresMixin
from listener.storage.sql.search import SearchMixin
from listener.storage.sql.sources import SourcesMixin


class PostgresStorage(
    PostgresBase,  # first: its dialect parts win over the mixins' defaults
    SourcesMixin,
    MentionsMixin,
    ScoresMixin,
    AlertFactsMixin,
    InboxMixin,
    AlertsMixin,
    MetricsMixin,
    SearchMixin,
):
    """Every storage concern over one PostgreSQL database."""


__all__ = ["PostgresStorage"]
