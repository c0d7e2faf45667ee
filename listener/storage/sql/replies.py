"""Replies posted where a mention was written: approved by a person (or a source's auto_reply),
then claimed, sent and recorded with the same discipline as alert deliveries, so a reply is
never posted twice. One reply per inbox item; approving again (after a failure, or to change
the text before it goes) starts a new attempt with a new idempotency key."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from listener import secrets
from listener.storage.errors import NotFound, ReplyBusy
from listener.storage.sql._base import SQLBase
from listener.timeutil import iso, utcnow

# Statuses from which a person may approve (again): nothing is on its way.
REAPPROVABLE = ("approved", "failed", "cancelled", "unknown")
MAX_RESPONSE_CHARS = 4000  # what is kept of the platform's answer


class RepliesMixin(SQLBase):
    def reply(self, mention_id: int) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM replies WHERE mention_id = ?", [mention_id])
        if row is not None:
            row["response"] = json.loads(row["response"] or "{}")
        return row

    def approve_reply(
        self,
        mention_id: int,
        source_id: str,
        text: str,
        by: str,
        send_after: datetime,
        now: datetime | None = None,
    ) -> str:
        """Queue `text` as the reply to an inbox item, to go at `send_after`; the key every
        attempt at it is sent with. ReplyBusy if a reply to it is being sent or was sent."""
        now = now or utcnow()
        with self._write():
            row = self._one(
                "SELECT status, generation FROM replies WHERE mention_id = ?", [mention_id]
            )
            if row is not None and row["status"] not in REAPPROVABLE:
                raise ReplyBusy(f"the reply to #{mention_id} is {row['status']}")
            generation = (row["generation"] + 1) if row else 1
            key = f"listener-{mention_id}-{generation}"
            values = {
                "mention_id": mention_id,
                "source_id": source_id,
                "text": text,
                "status": "approved",
                "generation": generation,
                "idempotency_key": key,
                "approved_by": by,
                "approved_at": iso(now),
                "send_after": iso(send_after),
                "attempts": 0,
                "next_attempt_at": None,
                "first_tried_at": None,
                "last_error": None,
                "updated_at": iso(now),
            }
            if row is None:
                columns = ", ".join(values)
                self.db.execute(
                    f"INSERT INTO replies ({columns}) VALUES ({', '.join('?' * len(values))})",
                    list(values.values()),
                )
            else:
                sets = ", ".join(f"{c} = ?" for c in values if c != "mention_id")
                cur = self.db.execute(
                    f"UPDATE replies SET {sets} WHERE mention_id = ? AND status IN "
                    f"({', '.join('?' * len(REAPPROVABLE))})",
                    [v for c, v in values.items() if c != "mention_id"]
                    + [mention_id, *REAPPROVABLE],
                )
                if cur.rowcount != 1:  # claimed by a sender meanwhile
                    raise ReplyBusy(f"the reply to #{mention_id} is being sent")
        return key

    def cancel_reply(self, mention_id: int, now: datetime | None = None) -> None:
        """Stop an approved reply that has not gone yet. NotFound without one; ReplyBusy when
        it is being sent or was sent."""
        with self._write():
            row = self._one("SELECT status FROM replies WHERE mention_id = ?", [mention_id])
            if row is None:
                raise NotFound(f"no reply queued for #{mention_id}")
            cur = self.db.execute(
                "UPDATE replies SET status = 'cancelled', updated_at = ? "
                "WHERE mention_id = ? AND status = 'approved'",
                [iso(now or utcnow()), mention_id],
            )
            if cur.rowcount != 1:
                why = {"cancelled": "was already cancelled", "sent": "was posted already"}
                raise ReplyBusy(
                    f"the reply to #{mention_id} {why.get(row['status'], 'is ' + row['status'])}"
                )

    def due_replies(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Approved replies whose time has come, with the mention they answer."""
        at = iso(now or utcnow())
        return list(
            self.db.query(
                "SELECT r.*, m.external_id, m.url, m.author, m.language, m.raw, i.kind "
                "FROM replies r JOIN mentions m ON m.id = r.mention_id "
                "JOIN inbox i ON i.mention_id = r.mention_id "
                "WHERE r.status = 'approved' AND r.send_after <= ? "
                "AND (r.next_attempt_at IS NULL OR r.next_attempt_at <= ?) "
                "ORDER BY r.send_after, r.mention_id",
                [at, at],
            )
        )

    def claim_reply(
        self, mention_id: int, key: str, worker: str, until: datetime, now: datetime | None = None
    ) -> bool:
        """Mark the reply as being sent by `worker` until `until`, committed before sending,
        and only if it is still the approved attempt `key` (not cancelled or re-approved)."""
        now = now or utcnow()
        with self._write():
            cur = self.db.execute(
                "UPDATE replies SET status = 'sending', attempts = attempts + 1, "
                "first_tried_at = coalesce(first_tried_at, ?), updated_at = ?, "
                "lease_owner = ?, lease_expires = ? "
                "WHERE mention_id = ? AND idempotency_key = ? AND status = 'approved'",
                [iso(now), iso(now), worker, iso(until), mention_id, key],
            )
        return cur.rowcount == 1

    def finish_reply(
        self,
        mention_id: int,
        status: str,
        *,
        error: str | None = None,
        retry_at: datetime | None = None,
        platform_id: str | None = None,
        platform_url: str | None = None,
        posted_at: datetime | None = None,
        response: dict[str, Any] | None = None,
        close_as: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Record a send's outcome: 'sent' (closing the inbox item as `close_as`, at the
        platform's time of the reply, by whoever approved it), 'approved' again (retry at
        retry_at), 'failed' or 'unknown'."""
        now = now or utcnow()
        body = json.dumps(response or {}, ensure_ascii=False, default=str)
        with self._write():
            self.db.execute(
                "UPDATE replies SET status = ?, last_error = ?, next_attempt_at = ?, "
                "platform_id = coalesce(?, platform_id), platform_url = coalesce(?, platform_url), "
                "posted_at = coalesce(?, posted_at), response = ?, updated_at = ?, "
                "lease_owner = NULL, lease_expires = NULL WHERE mention_id = ?",
                [
                    status,
                    secrets.mask(error),
                    iso(retry_at) if retry_at else None,
                    platform_id,
                    platform_url,
                    iso(posted_at) if posted_at else None,
                    secrets.mask(body[:MAX_RESPONSE_CHARS]),
                    iso(now),
                    mention_id,
                ],
            )
            if status == "sent" and close_as:
                self.db.execute(
                    "UPDATE inbox SET status = ?, closed_at = ?, "
                    "closed_by = (SELECT approved_by FROM replies WHERE mention_id = ?) "
                    "WHERE mention_id = ?",
                    [close_as, iso(posted_at or now), mention_id, mention_id],
                )

    def interrupted_replies(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Replies left 'sending' whose sender's lease lapsed: they may have gone out."""
        return list(
            self.db.query(
                "SELECT r.*, s.type AS source_type FROM replies r "
                "LEFT JOIN sources s ON s.id = r.source_id "
                "WHERE r.status = 'sending' AND coalesce(r.lease_expires, '') <= ?",
                [iso(now or utcnow())],
            )
        )

    def resume_reply(self, mention_id: int, status: str, now: datetime | None = None) -> bool:
        """An interrupted send becomes 'approved' (sent again with its key) or 'unknown' (for a
        person to check), if it is still the interrupted one."""
        with self._write():
            cur = self.db.execute(
                "UPDATE replies SET status = ?, lease_owner = NULL, lease_expires = NULL, "
                "last_error = 'interrupted while sending', updated_at = ? "
                "WHERE mention_id = ? AND status = 'sending' AND coalesce(lease_expires, '') <= ?",
                [status, iso(now or utcnow()), mention_id, iso(now or utcnow())],
            )
        return cur.rowcount == 1

    def replies(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Replies newest first (of one status, or all)."""
        return list(
            self.db.query(
                "SELECT mention_id, source_id, status, approved_by, approved_at, send_after, "
                "attempts, last_error, platform_url, posted_at, text FROM replies "
                "WHERE (:status IS NULL OR status = :status) ORDER BY updated_at DESC LIMIT :n",
                {"status": status, "n": limit},
            )
        )

    def auto_reply_candidates(self, source_id: str, kinds: list[str]) -> list[dict[str, Any]]:
        """Open inbox items of a source, of these kinds, words and stars agreeing, that never
        had a reply queued."""
        if not kinds:
            return []
        return list(
            self.db.query(
                "SELECT i.*, m.source_id, m.author, m.language FROM inbox i "
                "JOIN mentions m ON m.id = i.mention_id WHERE i.status = 'open' "
                "AND coalesce(i.mixed, 0) = 0 AND m.source_id = ? "
                f"AND i.kind IN ({', '.join('?' * len(kinds))}) "
                "AND i.mention_id NOT IN (SELECT mention_id FROM replies) "
                "ORDER BY i.created_at, i.mention_id LIMIT 500",
                [source_id, *kinds],
            )
        )

    def reply_check_candidates(
        self, source_id: str, checked_before: datetime, posted_since: datetime, limit: int
    ) -> list[dict[str, Any]]:
        """Open inbox items of a source, posted since `posted_since`, not looked up on the
        platform since `checked_before`, with no reply of ours on its way or in doubt: those
        never looked up first, then the longest unchecked."""
        return list(
            self.db.query(
                "SELECT i.mention_id, i.kind, m.source_id, m.external_id, m.url, m.author, "
                "m.language, m.raw FROM inbox i JOIN mentions m ON m.id = i.mention_id "
                "LEFT JOIN replies r ON r.mention_id = i.mention_id "
                "WHERE i.status = 'open' AND m.source_id = ? AND i.posted_at >= ? "
                "AND (i.platform_checked_at IS NULL OR i.platform_checked_at < ?) "
                "AND (r.status IS NULL OR r.status IN ('approved', 'failed', 'cancelled')) "
                "ORDER BY coalesce(i.platform_checked_at, ''), i.mention_id LIMIT ?",
                [source_id, iso(posted_since), iso(checked_before), limit],
            )
        )

    def mark_platform_checked(self, mention_ids: list[int], at: datetime) -> None:
        with self._write():
            self.db.conn.executemany(
                "UPDATE inbox SET platform_checked_at = ? WHERE mention_id = ?",
                [(iso(at), m) for m in mention_ids],
            )

    def close_answered_elsewhere(
        self, mention_id: int, status: str, answered_at: datetime, now: datetime | None = None
    ) -> bool:
        """Close an open item that the team answered on the platform itself, at the
        platform's time of that answer; a reply of ours still queued for it is cancelled.
        False if the item was no longer open."""
        now = now or utcnow()
        with self._write():
            cur = self.db.execute(
                "UPDATE inbox SET status = ?, closed_at = ?, closed_by = 'platform', "
                "platform_checked_at = ? WHERE mention_id = ? AND status = 'open'",
                [status, iso(answered_at), iso(now), mention_id],
            )
            if cur.rowcount != 1:
                return False
            self.db.execute(
                "UPDATE replies SET status = 'cancelled', last_error = ?, updated_at = ? "
                "WHERE mention_id = ? AND status IN ('approved', 'failed')",
                ["answered on the platform meanwhile", iso(now), mention_id],
            )
            return True

    def platform_checks_since(self, source_id: str, since: datetime) -> int:
        """Items of a source looked up on its platform since `since`."""
        row = self._one(
            "SELECT count(*) AS n FROM inbox i JOIN mentions m ON m.id = i.mention_id "
            "WHERE m.source_id = ? AND i.platform_checked_at >= ?",
            [source_id, iso(since)],
        )
        return int(row["n"]) if row else 0
