"""Fired alerts and their deliveries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from listener import secrets
from listener.storage.sql._base import SQLBase, chunks, marks
from listener.storage.types import Delivery
from listener.timeutil import iso, utcnow

# How long a send may take before the delivery counts as interrupted, when no worker renews it.
SEND_LEASE = timedelta(minutes=5)


class AlertsMixin(SQLBase):
    def add_alert(self, alert: Any, channels: Sequence[str], now: datetime | None = None) -> bool:
        """Store an alert and one pending delivery per channel, unless its dedupe key exists."""
        with self._write():
            alert_id = self._insert_id(
                "INSERT INTO alerts (dedupe_key, rule, rule_id, scope, brand, title, message, "
                "evidence, mention_ids, created_at) VALUES (?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT DO NOTHING",
                [
                    alert.dedupe_key,
                    alert.rule,
                    alert.rule_id,
                    alert.scope,
                    alert.brand,
                    alert.title,
                    alert.message,
                    json.dumps(alert.evidence, ensure_ascii=False),
                    json.dumps(alert.mention_ids),
                    iso(now or utcnow()),
                ],
            )
            if alert_id is None:
                return False
            self.db["deliveries"].insert_all(
                {
                    "alert_id": alert_id,
                    "channel": c,
                    "status": "pending",
                    "updated_at": iso(now or utcnow()),
                }
                for c in channels
            )
        return True

    def known_alerts(self, dedupe_keys: Sequence[str]) -> set[str]:
        """Which of these dedupe keys are stored already: the alert pass asks once per rule
        instead of trying one insert per candidate (a round trip each on a server)."""
        known: set[str] = set()
        for chunk in chunks(list(dict.fromkeys(dedupe_keys))):
            known.update(
                row["dedupe_key"]
                for row in self.db.query(
                    f"SELECT dedupe_key FROM alerts WHERE dedupe_key IN ({marks(len(chunk))})",
                    list(chunk),
                )
            )
        return known

    def pending_deliveries(self, now: datetime | None = None) -> list[Delivery]:
        """Pending deliveries whose retry time (if any) has come."""
        rows = self.db.query(
            "SELECT d.alert_id, d.channel, d.attempts, a.title, a.message, a.created_at "
            "FROM deliveries d JOIN alerts a ON a.id = d.alert_id WHERE d.status = 'pending' "
            "AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?) ORDER BY d.alert_id",
            [iso(now or utcnow())],
        )
        return [
            Delivery(
                r["alert_id"],
                r["channel"],
                r["title"],
                r["message"],
                r["attempts"],
                r["created_at"],
            )
            for r in rows
        ]

    def claim_delivery(
        self, alert_id: int, channel: str, worker: str = "", until: datetime | None = None
    ) -> bool:
        """Mark a delivery as being sent by `worker` until `until`, committed before sending.
        The write is conditional, so of two workers only one gets it; a crash mid-send leaves
        it 'sending', which recover_deliveries turns to 'unknown' once the lease lapses,
        never to a second send."""
        now = utcnow()
        cur = self.db.execute(
            "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, updated_at = ?, "
            "lease_owner = ?, lease_expires = ? "
            "WHERE alert_id = ? AND channel = ? AND status = 'pending'",
            [iso(now), worker or None, iso(until or now + SEND_LEASE), alert_id, channel],
        )
        return cur.rowcount == 1

    def finish_delivery(
        self,
        alert_id: int,
        channel: str,
        status: str,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """Record a send's outcome: 'sent', or 'pending' again (retry at retry_at), or
        'failed' (given up)."""
        now = iso(utcnow())
        error = secrets.mask(error)
        self.db.execute(
            "UPDATE deliveries SET status = ?, last_error = ?, updated_at = ?, "
            "next_attempt_at = ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END "
            "WHERE alert_id = ? AND channel = ?",
            [
                status,
                error,
                now,
                iso(retry_at) if retry_at else None,
                status,
                now,
                alert_id,
                channel,
            ],
        )

    def deliveries(self, alert_id: int) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "SELECT channel, status, attempts, last_error, sent_at, next_attempt_at "
                "FROM deliveries WHERE alert_id = ? ORDER BY channel",
                [alert_id],
            )
        )

    def requeue_deliveries(self, alert_id: int | None = None) -> int:
        """Failed and unknown deliveries (of one alert, or all) back to pending, due now."""
        return self.db.execute(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = NULL, updated_at = ? "
            "WHERE status IN ('failed', 'unknown') AND (? IS NULL OR alert_id = ?)",
            [iso(utcnow()), alert_id, alert_id],
        ).rowcount

    def alert(self, alert_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM alerts WHERE id = ?", [alert_id])

    def has_alert(self, alert_id: int) -> bool:
        return bool(self.db["alerts"].count_where("id = ?", [alert_id]))

    def waiting_deliveries(self, alert_id: int | None = None) -> list[dict[str, Any]]:
        """Deliveries waiting to be sent or retried (of one alert, or all), for people."""
        return list(
            self.db.query(
                "SELECT alert_id, channel, attempts, next_attempt_at, last_error FROM deliveries "
                "WHERE status = 'pending' AND (? IS NULL OR alert_id = ?) ORDER BY alert_id",
                [alert_id, alert_id],
            )
        )

    def recover_deliveries(self, now: datetime | None = None) -> int:
        """Sends whose worker's lease lapsed mid-send may or may not have gone out: 'unknown'
        (listed for people to check), never sent again."""
        return self.db.execute(
            "UPDATE deliveries SET status = 'unknown', last_error = 'interrupted while sending' "
            "WHERE status = 'sending' AND coalesce(lease_expires, '') <= ?",
            [iso(now or utcnow())],
        ).rowcount

    def alerts(self, limit: int = 50) -> list[dict[str, Any]]:
        states = self._concat("d.channel || ':' || d.status", ", ")
        return list(
            self.db.query(
                f"SELECT a.*, (SELECT {states} "
                "FROM deliveries d WHERE d.alert_id = a.id) AS deliveries "
                "FROM alerts a ORDER BY a.id DESC LIMIT ?",
                [limit],
            )
        )
