"""Model scores, and the texts a model failed on."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from listener.storage.sql._base import SQLBase, chunks, marks
from listener.storage.types import PendingMention
from listener.timeutil import iso, utcnow

SCORE_RETRY = timedelta(minutes=10)
SCORE_GIVE_UP_AFTER = 3


# Mentions :model/:rev has no score for, leaving out texts it failed on until their retry time.
UNSCORED = (
    "FROM mentions m WHERE NOT EXISTS (SELECT 1 FROM scores s WHERE s.mention_id = m.id "
    "AND s.model = :model AND s.revision = :rev) AND NOT EXISTS (SELECT 1 FROM "
    "score_failures f WHERE f.mention_id = m.id AND f.model = :model AND "
    "f.revision = :rev AND (f.permanent = 1 OR f.next_retry_at > :now))"
)


class ScoresMixin(SQLBase):
    def count_unscored(self, model: str, revision: str | None) -> int:
        """How many mentions `unscored` would still hand out (for progress)."""
        [(n,)] = self.db.execute(
            f"SELECT count(*) {UNSCORED}",
            {"model": model, "rev": revision or "", "now": iso(utcnow())},
        ).fetchall()
        return int(n)

    def unscored(
        self,
        model: str,
        revision: str | None,
        limit: int,
        after: int = 0,
        upto: int | None = None,
    ) -> list[PendingMention]:
        """Up to `limit` mentions this model has not scored, in id order, with ids in
        (after, upto]: a window, so readers running side by side page through their own
        stretch of the history. Claims nothing."""
        rows = self.db.query(
            f"SELECT m.id, m.title, m.text, m.language, m.rating {UNSCORED} "
            "AND m.id > :after AND m.id <= :upto ORDER BY m.id LIMIT :limit",
            {
                "model": model,
                "rev": revision or "",
                "limit": limit,
                "now": iso(utcnow()),
                "after": after,
                "upto": upto if upto is not None else 2**62,
            },
        )
        return [
            PendingMention(r["id"], r["title"] or "", r["text"] or "", r["language"], r["rating"])
            for r in rows
        ]

    def unscored_span(self, model: str, revision: str | None) -> tuple[int, int, int]:
        """(lowest id, highest id, how many) of the mentions this model has not scored."""
        [(low, high, n)] = self.db.execute(
            f"SELECT min(m.id), max(m.id), count(*) {UNSCORED}",
            {"model": model, "rev": revision or "", "now": iso(utcnow())},
        ).fetchall()
        return int(low or 0), int(high or 0), int(n)

    def claim_unscored(
        self,
        worker: str,
        model: str,
        revision: str | None,
        limit: int,
        now: datetime,
        until: datetime,
    ) -> list[PendingMention]:
        """Up to `limit` mentions this model has not scored and nobody is scoring, now being
        scored by `worker`, oldest first."""
        params = {
            "worker": worker,
            "model": model,
            "rev": revision or "",
            "now": iso(now),
            "until": iso(until),
            "limit": limit,
        }
        lock = self.SKIP_LOCKED.format(alias="m")
        with self._write():
            # The ON CONFLICT condition decides: a claim is taken only where none is live, so
            # two workers racing for one mention never both get it.
            rows = self.db.execute(
                "INSERT INTO score_claims (mention_id, model, revision, owner, expires_at) "
                f"SELECT m.id, :model, :rev, :worker, :until {UNSCORED} "
                "AND NOT EXISTS (SELECT 1 FROM score_claims k WHERE k.mention_id = m.id "
                "AND k.model = :model AND k.revision = :rev AND k.expires_at > :now) "
                f"ORDER BY m.id LIMIT :limit{lock} "
                "ON CONFLICT (mention_id, model, revision) DO UPDATE SET "
                "owner = excluded.owner, expires_at = excluded.expires_at "
                "WHERE score_claims.expires_at <= :now "
                "RETURNING mention_id",
                params,
            ).fetchall()
            ids = sorted(r[0] for r in rows)
            found = {
                r["id"]: r
                for part in chunks(ids)
                for r in self.db.query(
                    "SELECT id, title, text, language, rating FROM mentions "
                    f"WHERE id IN ({marks(len(part))})",
                    list(part),
                )
            }
        return [
            PendingMention(r["id"], r["title"] or "", r["text"] or "", r["language"], r["rating"])
            for i in ids
            if (r := found.get(i))
        ]

    def release_score_claims(self, worker: str) -> int:
        return max(
            self.db.execute("DELETE FROM score_claims WHERE owner = ?", [worker]).rowcount, 0
        )

    def scored_model(self, preferred: tuple[str, str | None]) -> tuple[str, str | None]:
        """The model whose labels views should show: the configured one if it has scored
        anything, else the one that scored last (say the offline fallback of `backend: auto`)."""
        name, rev = preferred
        if self._one(
            "SELECT 1 AS x FROM scores WHERE model = ? AND revision = ? LIMIT 1", [name, rev or ""]
        ):
            return preferred
        row = self._one("SELECT model, revision FROM scores ORDER BY scored_at DESC LIMIT 1")
        return (row["model"], row["revision"] or None) if row else preferred

    def save_scores(
        self,
        model: str,
        revision: str | None,
        scored: Iterable[tuple[int, Any, Any]],
        now: datetime | None = None,
        brand_rows: Iterable[tuple[int, str, str, Any, str]] = (),
        worker: str | None = None,
    ) -> int:
        """Rows of (mention id, Prediction, Verdict or None: the text label is final), and
        per-brand rows (mention id, brand, label, Prediction, passage), in one transaction
        that also ends `worker`'s claims on these mentions."""
        now_s = iso(now or utcnow())
        rows = [
            {
                "mention_id": mid,
                "model": model,
                "revision": revision or "",
                "label": v.label if v else p.label,
                "text_label": p.label,
                "needs_review": int(v.needs_review) if v else 0,
                "score": p.score,
                "scores": json.dumps(p.scores),
                "scored_at": now_s,
            }
            for mid, p, v in scored
        ]
        per_brand = [
            {
                "mention_id": mid,
                "brand": brand,
                "model": model,
                "revision": revision or "",
                "label": label,
                "score": p.score,
                "scores": json.dumps(p.scores),
                "text": text,
            }
            for mid, brand, label, p, text in brand_rows
        ]
        with self._write():
            self.db["scores"].upsert_all(rows, pk=("mention_id", "model", "revision"))
            if per_brand:
                self.db["brand_scores"].upsert_all(
                    per_brand, pk=("mention_id", "brand", "model", "revision")
                )
            if worker is not None:
                ids = [r["mention_id"] for r in rows]
                for part in chunks(ids):
                    self.db.execute(
                        "DELETE FROM score_claims WHERE owner = ? AND model = ? AND "
                        f"revision = ? AND mention_id IN ({marks(len(part))})",
                        [worker, model, revision or "", *part],
                    )
        return len(rows)

    def score_failed(
        self,
        model: str,
        revision: str | None,
        mention_id: int,
        error: str,
        now: datetime | None = None,
    ) -> tuple[int, bool]:
        """Record that the model failed on this mention's text, scored on its own. It is
        retried after 10 min, 20 min, 40 min ... (a day at most); after GIVE_UP_AFTER
        failures it is given up on. Returns (attempts, given up)."""
        now = now or utcnow()
        with self._write():
            row = self._one(
                "SELECT attempts FROM score_failures WHERE mention_id = ? AND "
                "model = ? AND revision = ?",
                [mention_id, model, revision or ""],
            )
            attempts = int((row or {}).get("attempts") or 0) + 1
            permanent = attempts >= SCORE_GIVE_UP_AFTER
            wait = min(SCORE_RETRY * 2 ** (attempts - 1), timedelta(days=1))
            self.db["score_failures"].upsert(
                {
                    "mention_id": mention_id,
                    "model": model,
                    "revision": revision or "",
                    "error": error[:500],
                    "failed_at": iso(now),
                    "attempts": attempts,
                    "next_retry_at": iso(now + wait),
                    "permanent": int(permanent),
                },
                pk=("mention_id", "model", "revision"),
            )
        return attempts, permanent

    def clear_score_failures(self, model: str | None = None, revision: str | None = None) -> int:
        """Forget recorded failures (of one model, or all): they are scored again."""
        with self._write():
            return self.db.execute(
                "DELETE FROM score_failures WHERE (? IS NULL OR model = ?) AND "
                "(? IS NULL OR revision = ?)",
                [model, model, revision, revision],
            ).rowcount
