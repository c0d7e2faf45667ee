"""Collectors, one module per source type, registered by type name.

A new source type is one new module here that defines a `SourceConfig` subclass and a collector
class, decorated with `@register`, and is imported below.
"""

from __future__ import annotations

from typing import TypeVar

from sources.base import (
    Collector,
    Entry,
    FetchError,
    FetchResult,
    ReplyPath,
    SourceConfig,
    SourceState,
)

COLLECTORS: dict[str, type[Collector]] = {}


_C = TypeVar("_C", bound=type[Collector])


def register(cls: _C) -> _C:
    COLLECTORS[cls.type] = cls
    return cls


def get_collector(type_name: str) -> Collector:
    return COLLECTORS[type_name]()


def reply_path(type_name: str) -> ReplyPath | None:
    """The source type's way to post replies, or None: answered where it was posted."""
    cls = COLLECTORS.get(type_name)
    collector = cls() if cls is not None else None
    return collector if isinstance(collector, ReplyPath) else None


from sources import (  # noqa: E402,F401  (each registers itself)
    appstore,
    appstoreconnect,
    bluesky,
    googleplay,
    hackernews,
    mastodon,
    reddit,
    rss,
    x,
    youtube,
)

__all__ = [
    "COLLECTORS",
    "Collector",
    "Entry",
    "FetchError",
    "FetchResult",
    "ReplyPath",
    "SourceConfig",
    "SourceState",
    "get_collector",
    "register",
    "reply_path",
]
