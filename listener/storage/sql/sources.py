"""Configured sources and their fetch state."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from listener import secrets
from listener.storage.errors import NotFound
from listener.storage.sql._base import SQLBase
from listener.timeutil import iso, parse_iso, utcnow
from sources.base import SourceState

CLOCK_SLACK = timedelta(minutes=1)


class SourcesMixin(SQLBase):
    def sync_sources(self, configured: Iterable[Any], now: datetime | None = None) -> None:
        """Make the sources table match the config, keeping each source's state and history.
        Endpoints are stored with ${NAME} where a secret from the environment was."""
        now_s = iso(now or utcnow())
        seen = []
        with self._write():
            for source in configured:
                seen.append(source.name)
                endpoint = secrets.mask_env(source.endpoint())
                row = self._one(
                    "SELECT config_url, url, disabled_reason, last_error FROM sources WHERE id = ?",
                    [source.name],
                )
                if row is None:
                    # A worker starting beside this one may add it first: theirs stands.
                    self.db.execute(
                        "INSERT INTO sources (id, type, brand, kind, config_url, url, enabled, "
                        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        [
                            source.name,
                            source.type,
                            source.brand,
                            source.effective_kind(),
                            endpoint,
                            endpoint,
                            int(source.enabled),
                            now_s,
                        ],
                    )
                    continue
                changes: dict[str, Any] = {
                    "type": source.type,
                    "brand": source.brand,
                    "kind": source.effective_kind(),
                    "enabled": int(source.enabled),
                }
                if not source.enabled:
                    changes["disabled_reason"] = "disabled in config"
                if row["config_url"] != endpoint and row["config_url"] != source.endpoint():
                    # A new endpoint is a new feed: start over, and re-enable after a 410.
                    changes |= {
                        "config_url": endpoint,
                        "url": endpoint,
                        "etag": None,
                        "last_modified": None,
                        "cursor": "{}",
                        "next_due_at": None,
                        "consecutive_failures": 0,
                        "last_error": None,
                        "disabled_reason": None,
                    }
                else:
                    # Written before secrets were masked: the same endpoint, stored masked now.
                    changes |= {
                        "config_url": endpoint,
                        "url": secrets.mask_env(secrets.reveal(row["url"])),
                        "last_error": secrets.mask(row["last_error"]),
                    }
                    if source.enabled:
                        if row["disabled_reason"] in ("disabled in config", "removed from config"):
                            changes["disabled_reason"] = None
                        elif row["disabled_reason"]:
                            changes["enabled"] = 0  # stays off after a 410 until its url changes
                self.db["sources"].update(source.name, changes)
            placeholders = ",".join("?" * len(seen)) or "''"
            self.db.execute(
                f"UPDATE sources SET enabled = 0, disabled_reason = 'removed from config' "
                f"WHERE id NOT IN ({placeholders}) AND enabled = 1",
                seen,
            )

    def enable_source(self, source_id: str) -> None:
        """Switch a source back on after a 410 or refused credentials (the user fixed it)."""
        row = self._one("SELECT disabled_reason FROM sources WHERE id = ?", [source_id])
        if row is None or row["disabled_reason"] in ("removed from config", "disabled in config"):
            raise NotFound(
                f"no source {source_id!r} in sources.yaml"
                if row is None or row["disabled_reason"] == "removed from config"
                else f"{source_id!r} has `enabled: false` in sources.yaml"
            )
        with self._write():
            self.db["sources"].update(
                source_id,
                {
                    "enabled": 1,
                    "disabled_reason": None,
                    "next_due_at": None,
                    "consecutive_failures": 0,
                },
            )

    def source_state(self, source_id: str) -> SourceState:
        row = self._one("SELECT * FROM sources WHERE id = ?", [source_id])
        if row is None:
            raise NotFound(f"no source {source_id!r} in the database")
        return SourceState(
            url=secrets.reveal(row["url"]),
            etag=row["etag"],
            last_modified=row["last_modified"],
            cursor=json.loads(row["cursor"] or "{}"),
        )

    def _due_times(self, now: datetime) -> dict[str, datetime | None]:
        """Each enabled source's next due time."""
        self._rebase_future_due_times(now)
        return {
            r["id"]: parse_iso(r["next_due_at"])
            for r in self.db.query(
                "SELECT id, next_due_at FROM sources "
                "WHERE enabled = 1 ORDER BY coalesce(next_due_at, ''), id"
            )
        }

    def claim_due_sources(
        self, worker: str, now: datetime, until: datetime, limit: int
    ) -> list[str]:
        """Up to `limit` due sources nobody holds, most overdue first, now held by `worker`."""
        if limit <= 0:
            return []
        self._rebase_future_due_times(now)
        lock = self.SKIP_LOCKED.format(alias="sources")
        with self._write():
            rows = self.db.execute(
                "UPDATE sources SET lease_owner = :worker, lease_expires = :until "
                "WHERE id IN (SELECT id FROM sources WHERE enabled = 1 "
                "AND coalesce(next_due_at, '') <= :now "
                "AND (lease_expires IS NULL OR lease_expires <= :now) "
                f"ORDER BY coalesce(next_due_at, ''), id LIMIT :limit{lock}) "
                "RETURNING id, next_due_at",
                {"worker": worker, "until": iso(until), "now": iso(now), "limit": limit},
            ).fetchall()
        return [name for name, _ in sorted(rows, key=lambda r: (r[1] or "", r[0]))]

    def _rebase_future_due_times(self, now: datetime) -> None:
        """A due time set "in the future" means the clock was corrected backwards since: the
        delay is re-based on now (a day's correction must not leave a source unfetched)."""
        late = list(
            self.db.query(
                "SELECT id, next_due_at, due_set_at FROM sources WHERE enabled = 1 "
                "AND due_set_at > ?",
                [iso(now + CLOCK_SLACK)],
            )
        )
        fixed = []
        for r in late:
            due, set_at = parse_iso(r["next_due_at"]), parse_iso(r["due_set_at"])
            if due is not None and set_at is not None:
                fixed.append((iso(now + max(due - set_at, timedelta(0))), iso(now), r["id"]))
        if fixed:
            with self._write():
                self.db.conn.executemany(
                    "UPDATE sources SET next_due_at = ?, due_set_at = ? WHERE id = ?", fixed
                )

    def release_source(self, source_id: str, worker: str) -> None:
        """Give a claimed source back unfetched (a shutdown cut its fetch): due as it was."""
        self.db.execute(
            "UPDATE sources SET lease_owner = NULL, lease_expires = NULL "
            "WHERE id = ? AND lease_owner = ?",
            [source_id, worker],
        )

    def due_sources(self, now: datetime | None = None) -> list[str]:
        now = now or utcnow()
        return [name for name, due in self._due_times(now).items() if due is None or due <= now]

    def sources(self) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "SELECT s.*, (SELECT count(*) FROM mentions m WHERE m.source_id = s.id) AS items "
                "FROM sources s ORDER BY s.id"
            )
        )

    def next_due(self, now: datetime | None = None) -> dict[str, str | None]:
        return {name: iso(due) for name, due in self._due_times(now or utcnow()).items()}

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
        worker: str | None = None,
    ) -> None:
        """Store a failed fetch on that source only (and end `worker`'s lease on it)."""
        error = secrets.mask(error) or ""
        with self._write():
            self._end_source_lease(source_id, worker)
            self.db.execute(
                "UPDATE sources SET consecutive_failures = consecutive_failures + 1, "
                "last_error = ?, last_run_at = ?, next_due_at = ?, due_set_at = ?, "
                "enabled = ?, disabled_reason = CASE WHEN ? THEN ? ELSE disabled_reason END "
                "WHERE id = ?",
                [
                    error,
                    iso(finished),
                    iso(next_due),
                    iso(finished),
                    0 if disable else 1,
                    disable,
                    error,
                    source_id,
                ],
            )
            self.db["fetch_runs"].insert(
                {
                    "source_id": source_id,
                    "started_at": iso(started),
                    "finished_at": iso(finished),
                    "status": "error",
                    "http_status": http_status,
                    "entries": 0,
                    "new": 0,
                    "updated": 0,
                    "skipped": 0,
                    "error": error,
                }
            )

    def failures(self, source_id: str) -> int:
        row = self._one("SELECT consecutive_failures FROM sources WHERE id = ?", [source_id])
        return int(row["consecutive_failures"]) if row else 0

    def source_activity(self, source_id: str, baseline: timedelta) -> tuple[datetime | None, int]:
        """When the source last yielded a new mention, and how many it yielded in the
        `baseline` before that."""
        row = self._one(
            "SELECT max(fetched_at) AS last FROM mentions WHERE source_id = ?", [source_id]
        )
        last = parse_iso(row["last"]) if row else None
        if last is None:
            return None, 0
        n = self._one(
            "SELECT count(*) AS n FROM mentions WHERE source_id = ? AND fetched_at > ?",
            [source_id, iso(last - baseline)],
        )
        return last, int(n["n"]) if n else 0
