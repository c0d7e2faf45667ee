"""What storage raises, whatever the backend. Callers catch these, never a driver's errors."""

from __future__ import annotations

from listener.query import QuerySyntaxError


class StorageError(Exception):
    """Base of every error the storage layer raises on purpose."""


class NotFound(StorageError, KeyError):
    """No such source, mention, inbox item or alert. A KeyError too, so `except KeyError`
    written before the boundary existed still works."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidSearchQuery(StorageError, QuerySyntaxError):
    """A search that is not valid brand query language; the message says where."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class UnknownBackend(StorageError, ValueError):
    """A database URL whose scheme no backend serves."""


class LeaseLost(StorageError):
    """This worker's lease on a piece of work expired and another worker took the work over:
    what this worker produced for it is not stored (the other worker's result will be)."""


class ReplyBusy(StorageError):
    """A reply that is being sent, or was sent, cannot be changed, approved again or
    cancelled."""
