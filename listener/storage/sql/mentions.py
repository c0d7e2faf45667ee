"""Mentions as collected: a fetch's entries, upserted with the source's new state in one
transaction; and human corrections."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from listener import secrets
from listener.storage.errors import NotFound
from listener.storage.sql._base import SQLBase, chunks, marks
from listener.storage.types import FetchCounts, MatchedEntry
from listener.timeutil import iso, parse_iso, utcnow
from sources.base import Entry, FetchResult

MAX_REJECTION_DETAILS = 20
REMINT_WINDOW = timedelta(days=7)
REMINT_MIN_CHARS = 20


def content_key(e: Entry) -> str:
    """What a post says and who said it, whatever id its source gives it."""
    return hashlib.sha256(
        json.dumps([e.title or "", e.text or "", e.author, e.rating], ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )
    ).hexdigest()


# What an entry says, written when it is first stored and again whenever its content changes.
_CONTENT = (
    "url",
    "author",
    "title",
    "text",
    "html",
    "language",
    "language_source",
    "language_hint",
    "published_at",
    "rating",
    "reach",
    "raw",
    "content_hash",
    "content_key",
)


def _content(e: Entry) -> tuple[Any, ...]:
    return (
        e.url,
        e.author,
        e.title,
        e.text,
        e.html,
        e.language,
        e.language_source,
        e.language_hint,
        iso(e.published_at),
        e.rating,
        e.reach,
        json.dumps(e.raw, ensure_ascii=False, default=str),
        e.content_hash,
        content_key(e),
    )


class MentionsMixin(SQLBase):
    def save_fetch(
        self,
        source_id: str,
        result: FetchResult,
        matched: Sequence[MatchedEntry],
        *,
        started: datetime,
        finished: datetime,
        next_due: datetime,
        worker: str | None = None,
    ) -> FetchCounts:
        """Mentions, the run record, the source's new state and the end of `worker`'s lease on
        it, in one transaction: a crash before commit leaves the old cursor, so the next fetch
        gets the same entries again."""
        fetched_at = iso(finished)
        rejected = list(result.rejected)
        with self._write():
            self._end_source_lease(source_id, worker)
            new, updated = self._upsert_isolating(source_id, matched, fetched_at, rejected)
            counts = FetchCounts(
                entries=len(result.entries) + len(result.rejected),
                new=new,
                updated=updated,
                skipped=len(result.entries) - len(matched),
                rejected=len(rejected),
            )
            state = result.state
            warning = secrets.mask("; ".join(result.warnings)) if result.warnings else None
            if warning:
                self.db["sources"].update(
                    source_id, {"last_warning": warning, "last_warning_at": fetched_at}
                )
            self.db["sources"].update(
                source_id,
                {
                    "url": secrets.mask_env(state.url),
                    "etag": state.etag,
                    "last_modified": state.last_modified,
                    "cursor": json.dumps(state.cursor),
                    "next_due_at": iso(next_due),
                    "due_set_at": fetched_at,
                    "consecutive_failures": 0,
                    "last_error": None,
                    "last_run_at": fetched_at,
                    "last_success_at": fetched_at,
                },
            )
            self.db["fetch_runs"].insert(
                {
                    "source_id": source_id,
                    "started_at": iso(started),
                    "finished_at": fetched_at,
                    "status": "not_modified" if result.not_modified else "ok",
                    "http_status": result.http_status,
                    "entries": counts.entries,
                    "new": new,
                    "updated": updated,
                    "skipped": counts.skipped,
                    "rejected": len(rejected),
                    "rejected_detail": json.dumps(
                        rejected[:MAX_REJECTION_DETAILS], ensure_ascii=False
                    )
                    if rejected
                    else None,
                    "warning": warning,
                }
            )
        return counts

    def _upsert_isolating(
        self,
        source_id: str,
        matched: Sequence[MatchedEntry],
        fetched_at: str | None,
        rejected: list[str],
    ) -> tuple[int, int]:
        """All entries in one go; if one of them cannot be stored, each on its own (inside
        the same transaction), so that entry is dropped with its reason and the rest kept."""
        try:
            with self.db.atomic():  # a savepoint inside the fetch's transaction
                return self._upsert_mentions(source_id, matched, fetched_at)
        except self.ENTRY_ERRORS:
            pass
        new = updated = 0
        for m in matched:
            try:
                with self.db.atomic():
                    n, u = self._upsert_mentions(source_id, [m], fetched_at)
            except self.ENTRY_ERRORS as exc:
                rejected.append(
                    f"entry {str(m.entry.external_id)[:80]!r}: could not be "
                    f"stored: {type(exc).__name__}: {exc}"[:300]
                )
                continue
            new, updated = new + n, updated + u
        return new, updated

    def _upsert_mentions(
        self, source_id: str, matched: Sequence[MatchedEntry], fetched_at: str | None
    ) -> tuple[int, int]:
        # A feed can repeat an id within one response; the last copy wins.
        by_id = {m.entry.external_id: m for m in matched}
        existing: dict[str, tuple[int, str]] = {}
        for chunk in chunks(list(by_id)):
            rows = self.db.execute(
                f"SELECT external_id, id, content_hash FROM mentions WHERE source_id = ? "
                f"AND external_id IN ({marks(len(chunk))})",
                [source_id, *chunk],
            )
            existing.update({ext: (mid, h) for ext, mid, h in rows})
        self._adopt_aliases(source_id, by_id, existing)
        fresh = [m for ext, m in by_id.items() if ext not in existing]
        fresh = self._drop_reminted(source_id, fresh, fetched_at)
        changed = [
            (existing[ext][0], m)
            for ext, m in by_id.items()
            if ext in existing and existing[ext][1] != m.entry.content_hash and not m.entry.removed
        ]
        conn = self.db.conn
        # Removed at the source since we stored it: keep what was said, flag it.
        conn.executemany(
            "UPDATE mentions SET removed_at = ? WHERE id = ? AND removed_at IS NULL",
            [
                (fetched_at, existing[ext][0])
                for ext, m in by_id.items()
                if ext in existing and m.entry.removed
            ],
        )
        links: list[tuple[int, str]] = []
        search: list[tuple[int, str | None, str | None]] = []
        new_ids = self._insert_ids(
            "mentions",
            ("source_id", "external_id", "fetched_at", "removed_at", *_CONTENT),
            [
                (
                    source_id,
                    m.entry.external_id,
                    fetched_at,
                    fetched_at if m.entry.removed else None,
                    *_content(m.entry),
                )
                for m in fresh
            ],
            key="external_id",
        )
        for m in fresh:
            mention_id = new_ids[m.entry.external_id]
            links += [(mention_id, b) for b in m.brands]
            search.append((mention_id, m.entry.title, m.entry.text))
        update = ", ".join(f"{c} = ?" for c in ("updated_at", *_CONTENT))
        for mention_id, m in changed:
            e = m.entry
            conn.execute(
                f"UPDATE mentions SET {update} WHERE id = ?",
                (fetched_at, *_content(e), mention_id),
            )
            # The text changed, so its old scores no longer describe it: score it again.
            conn.execute("DELETE FROM scores WHERE mention_id = ?", (mention_id,))
            conn.execute("DELETE FROM brand_scores WHERE mention_id = ?", (mention_id,))
            conn.execute("DELETE FROM mentions_search WHERE rowid = ?", (mention_id,))
            links += [(mention_id, b) for b in m.brands]
            search.append((mention_id, e.title, e.text))
        conn.executemany(
            "INSERT INTO mention_brands (mention_id, brand) VALUES (?, ?) ON CONFLICT DO NOTHING",
            links,
        )
        self._index_for_search(search)
        return len(fresh), len(changed)

    def _adopt_aliases(
        self, source_id: str, by_id: dict[str, MatchedEntry], existing: dict[str, tuple[int, str]]
    ) -> None:
        """An entry stored under an older form of its id (see Entry.aliases) keeps its row:
        the row takes the current id."""
        wanted = {
            a: ext for ext, m in by_id.items() if ext not in existing for a in m.entry.aliases
        }
        for chunk in chunks(list(wanted)):
            for alias, mid, h in self.db.execute(
                "SELECT external_id, id, content_hash FROM mentions WHERE source_id = ? "
                f"AND external_id IN ({marks(len(chunk))})",
                [source_id, *chunk],
            ):
                ext = wanted[alias]
                if ext in existing:
                    continue
                self.db.execute("UPDATE mentions SET external_id = ? WHERE id = ?", [ext, mid])
                existing[ext] = (mid, h)

    def _drop_reminted(
        self, source_id: str, fresh: list[MatchedEntry], fetched_at: str | None
    ) -> list[MatchedEntry]:
        """Entries with a new id but the same content as one this source gave within
        REMINT_WINDOW: a feed that mints a new guid for the same post at every fetch. Short
        texts ("great app!") are left alone: two people can write them."""
        keyed = [
            (content_key(m.entry), m)
            for m in fresh
            if len(m.entry.title) + len(m.entry.text) >= REMINT_MIN_CHARS
        ]
        if not keyed:
            return fresh
        since = iso((parse_iso(fetched_at) or utcnow()) - REMINT_WINDOW)
        seen: set[str] = set()
        for chunk in chunks([k for k, _ in keyed]):
            # The window is checked here, not in SQL: with `fetched_at >= ?` in the query
            # SQLite chose the (source_id, fetched_at) index and read every mention the source
            # stored in the window, per chunk (a third of a busy source's ingest time).
            seen.update(
                key
                for key, at in self.db.execute(
                    "SELECT content_key, fetched_at FROM mentions WHERE source_id = ? AND "
                    f"content_key IN ({marks(len(chunk))})",
                    [source_id, *chunk],
                )
                if at >= since
            )
        dropped = {id(m) for k, m in keyed if k in seen}
        return [m for m in fresh if id(m) not in dropped]

    def mention(self, mention_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM mentions WHERE id = ?", [mention_id])

    def brands_of(self, mention_ids: Sequence[int]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for chunk in chunks(list(mention_ids)):
            for mid, brand in self.db.execute(
                "SELECT mention_id, brand FROM mention_brands WHERE mention_id IN "
                f"({marks(len(chunk))}) ORDER BY mention_id, brand",
                list(chunk),
            ):
                out.setdefault(mid, []).append(brand)
        return out

    def add_correction(
        self,
        mention_id: int,
        label: str,
        by: str | None = None,
        note: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """A human's label: overrides every model's for alerts and views, kept as training
        data. Correcting again replaces the earlier correction."""
        if self.mention(mention_id) is None:
            raise NotFound(f"no mention with id {mention_id}")
        with self._write():
            self.db["corrections"].upsert(
                {
                    "mention_id": mention_id,
                    "label": label,
                    "by": by,
                    "note": note,
                    "created_at": iso(now or utcnow()),
                },
                pk="mention_id",
            )

    def corrections(self) -> Iterator[dict[str, Any]]:
        """Corrected mentions with their text and every model's label, oldest first."""
        labels = self._concat("s.model || '@' || s.revision || '=' || s.label", " ")
        return self.db.query(
            "SELECT c.mention_id, m.language, m.rating, m.title, m.text, c.label, "
            f"(SELECT {labels} "
            "FROM scores s WHERE s.mention_id = m.id) AS model_labels, c.by, c.note, "
            "c.created_at FROM corrections c JOIN mentions m ON m.id = c.mention_id "
            "ORDER BY c.created_at, c.mention_id"
        )
