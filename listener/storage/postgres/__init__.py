"""PostgreSQL as a backend (`database: postgresql://user@host/db`, psycopg 3): the shared
concern mixins over a psycopg connection, with PostgreSQL's own migrations and search."""

from __future__ import annotations

from listener.storage.postgres._base import PostgresBase
from listener.storage.sql import SQLStorage


class PostgresStorage(PostgresBase, SQLStorage):
    """Every storage concern over one PostgreSQL database."""


__all__ = ["PostgresStorage"]
