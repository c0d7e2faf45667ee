"""The storage concerns written once in the SQL that SQLite and PostgreSQL both speak, one mixin
per concern (as lemon24/reader composes its storage), composed here into one class. Each
backend puts its dialect's base class first: it supplies the parts that differ."""

from __future__ import annotations

from listener.storage.sql.alerts import AlertsMixin
from listener.storage.sql.audit import AuditMixin
from listener.storage.sql.copying import CopyMixin
from listener.storage.sql.facts import AlertFactsMixin
from listener.storage.sql.inbox import InboxMixin
from listener.storage.sql.mentions import MentionsMixin
from listener.storage.sql.metrics import MetricsMixin
from listener.storage.sql.replies import RepliesMixin
from listener.storage.sql.scores import ScoresMixin
from listener.storage.sql.search import SearchMixin
from listener.storage.sql.sources import SourcesMixin
from listener.storage.sql.work import WorkMixin


class SQLStorage(
    SourcesMixin,
    MentionsMixin,
    ScoresMixin,
    AlertFactsMixin,
    InboxMixin,
    RepliesMixin,
    AlertsMixin,
    WorkMixin,
    CopyMixin,
    MetricsMixin,
    SearchMixin,
    AuditMixin,
):
    """Every storage concern; a dialect's base class completes it."""


__all__ = ["SQLStorage"]
