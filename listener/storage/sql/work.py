"""Who holds which work: the workers sharing a database and their claims on due sources,
mentions to score and singleton tasks (how workers use them: listener.workers).

A claim is a row with an owner and an expiry, taken in one short transaction that skips rows
another transaction is claiming at that moment (PostgreSQL: FOR UPDATE ... SKIP LOCKED; SQLite's
writers take turns anyway). Conditional writes decide who won, so two workers can never both
hold one piece of work, and an expired claim is free for anyone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from listener.storage.sql._base import SQLBase, chunks, marks
from listener.timeutil import iso


class WorkMixin(SQLBase):
    def register_worker(
        self, worker: str, host: str, pid: int, roles: Sequence[str], now: datetime
    ) -> None:
        with self._write():
            self.db["workers"].upsert(
                {
                    "id": worker,
                    "host": host,
                    "pid": pid,
                    "roles": ",".join(roles),
                    "started_at": iso(now),
                    "seen_at": iso(now),
                },
                pk="id",
            )

    def unregister_worker(self, worker: str) -> None:
        """A worker stopping cleanly gives back what it holds: others take it at once."""
        with self._write():
            self._give_back([worker])
            self.db.execute("DELETE FROM workers WHERE id = ?", [worker])

    def renew_leases(self, worker: str, now: datetime, until: datetime) -> None:
        """Push back the expiry of everything this worker holds (its heartbeat)."""
        params = [iso(until), worker]
        with self._write():
            self.db.execute("UPDATE sources SET lease_expires = ? WHERE lease_owner = ?", params)
            self.db.execute("UPDATE score_claims SET expires_at = ? WHERE owner = ?", params)
            self.db.execute("UPDATE leases SET expires_at = ? WHERE owner = ?", params)
            self.db.execute(
                "UPDATE deliveries SET lease_expires = ? WHERE lease_owner = ? "
                "AND status = 'sending'",
                params,
            )
            self.db.execute(
                "UPDATE replies SET lease_expires = ? WHERE lease_owner = ? AND status = 'sending'",
                params,
            )
            self.db.execute("UPDATE workers SET seen_at = ? WHERE id = ?", [iso(now), worker])
            # Claims that lapsed long ago only slow the next claim down.
            self.db.execute(
                "DELETE FROM score_claims WHERE expires_at < ?", [iso(now - timedelta(hours=1))]
            )

    def workers(self) -> list[dict[str, Any]]:
        """Registered workers with what each holds now."""
        return list(
            self.db.query(
                "SELECT w.*, "
                "(SELECT count(*) FROM sources s WHERE s.lease_owner = w.id) AS sources, "
                "(SELECT count(*) FROM score_claims k WHERE k.owner = w.id) AS scoring, "
                "(SELECT count(*) FROM leases l WHERE l.owner = w.id) AS tasks "
                "FROM workers w ORDER BY w.host, w.started_at"
            )
        )

    def lease_holders(self) -> list[str]:
        """Every worker id that is registered or holds a claim."""
        return [
            r["owner"]
            for r in self.db.query(
                "SELECT id AS owner FROM workers "
                "UNION SELECT lease_owner FROM sources WHERE lease_owner IS NOT NULL "
                "UNION SELECT owner FROM score_claims "
                "UNION SELECT owner FROM leases "
                "UNION SELECT lease_owner FROM deliveries "
                "WHERE status = 'sending' AND lease_owner IS NOT NULL "
                "UNION SELECT lease_owner FROM replies "
                "WHERE status = 'sending' AND lease_owner IS NOT NULL"
            )
        ]

    def expire_holders(self, holders: Sequence[str], now: datetime) -> int:
        """Workers known to be gone (their process died): free what they held now rather than
        at expiry. A send they had started may or may not have gone out: 'unknown'."""
        if not holders:
            return 0
        with self._write():
            n = self._give_back(holders)
            n += self._rowcount(
                "UPDATE deliveries SET status = 'unknown', "
                "last_error = 'interrupted while sending', lease_expires = NULL "
                "WHERE status = 'sending' AND lease_owner IN ({})",
                holders,
            )
            # A reply they were sending: its lease lapses now, and the reply pass decides
            # whether the platform lets it be sent again (alerts.replies.recover).
            n += self._rowcount(
                "UPDATE replies SET lease_expires = NULL "
                "WHERE status = 'sending' AND lease_owner IN ({})",
                holders,
            )
            self._rowcount("DELETE FROM workers WHERE id IN ({})", holders)
        return n

    def _give_back(self, holders: Sequence[str]) -> int:
        n = self._rowcount(
            "UPDATE sources SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner IN ({})",
            holders,
        )
        n += self._rowcount("DELETE FROM score_claims WHERE owner IN ({})", holders)
        n += self._rowcount("DELETE FROM leases WHERE owner IN ({})", holders)
        return n

    def _rowcount(self, sql: str, values: Sequence[Any]) -> int:
        n = 0
        for part in chunks(values):
            n += max(self.db.execute(sql.format(marks(len(part))), list(part)).rowcount, 0)
        return n

    def claim_task(self, task: str, worker: str, now: datetime, until: datetime) -> bool:
        """Hold a task only one worker may run at a time (the alert pass): True if `worker`
        holds it now (it may already have)."""
        with self._write():
            rows = self.db.execute(
                "INSERT INTO leases (name, owner, expires_at) VALUES (:task, :worker, :until) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                "expires_at = excluded.expires_at "
                "WHERE leases.owner = excluded.owner OR leases.expires_at <= :now "
                "RETURNING name",
                {"task": task, "worker": worker, "until": iso(until), "now": iso(now)},
            ).fetchall()
        return bool(rows)

    def release_task(self, task: str, worker: str) -> None:
        self.db.execute("DELETE FROM leases WHERE name = ? AND owner = ?", [task, worker])
