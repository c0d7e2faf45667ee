"""The audit log: who changed what, and when. A change and its audit row are written in one
transaction, so there is never a change without its row, nor a row for a change that failed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from listener.storage.sql._base import SQLBase
from listener.timeutil import iso, utcnow


class AuditMixin(SQLBase):
    @contextmanager
    def audited(
        self,
        actor: str,
        action: str,
        target: str | None = None,
        detail: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Iterator[None]:
        """Run the writes of the `with` block and record them in one transaction; an error
        inside rolls back both."""
        with self._write():
            yield
            self.db.execute(
                "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                [
                    iso(now or utcnow()),
                    actor,
                    action,
                    target,
                    json.dumps(detail or {}, ensure_ascii=False, sort_keys=True),
                ],
            )

    def audit_log(
        self, *, actor: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Recorded changes, newest first; `detail` decoded."""
        rows = self.db.query(
            "SELECT id, at, actor, action, target, detail FROM audit_log "
            "WHERE (:actor IS NULL OR actor = :actor) ORDER BY id DESC LIMIT :limit OFFSET :offset",
            {"actor": actor, "limit": limit, "offset": offset},
        )
        return [{**r, "detail": json.loads(r["detail"] or "{}")} for r in rows]
