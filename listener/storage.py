"""All reads and writes of the SQLite file. Each write that belongs together is one transaction."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from filelock import FileLock
from sqlite_utils import Database

from listener import secrets
from listener.query import PROCLITICS, And, Not, Or, Phrase, parse_query
from listener.query import Node as QueryNode
from listener.schema import migrations
from listener.textnorm import fold, without_accents, words
from listener.timeutil import iso, parse_iso, utcnow
from sources.base import Entry, FetchResult, SourceState

_CHUNK = 500  # stays under SQLite's bound-parameter limit


def content_key(e: Entry) -> str:
    """What a post says and who said it, whatever id its source gives it."""
    return hashlib.sha256(
        json.dumps([e.title or "", e.text or "", e.author, e.rating], ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )
    ).hexdigest()


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class FetchCounts:
    entries: int = 0
    new: int = 0
    updated: int = 0
    skipped: int = 0  # matched no brand
    rejected: int = 0  # could not be read or stored: dropped, reasons on the fetch run


# Errors that one entry's values can cause; anything else (a full disk, a lock) fails the fetch.
_ENTRY_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.DataError,
    OverflowError,
    ValueError,
    TypeError,
)
MAX_REJECTION_DETAILS = 20
REMINT_WINDOW = timedelta(days=7)
REMINT_MIN_CHARS = 20
SCORE_RETRY = timedelta(minutes=10)
SCORE_GIVE_UP_AFTER = 3
CLOCK_SLACK = timedelta(minutes=1)


@dataclass(frozen=True)
class MatchedEntry:
    entry: Entry
    brands: tuple[str, ...]


@dataclass(frozen=True)
class PendingMention:
    id: int
    title: str
    text: str
    language: str | None
    rating: float | None = None


@dataclass(frozen=True)
class LabelledMention:
    id: int
    label: str | None
    when: str
    url: str | None
    title: str
    text: str
    source_id: str | None = None
    author: str | None = None
    rating: float | None = None
    reach: int | None = None


@dataclass(frozen=True)
class LabelCounts:
    negative: int = 0
    neutral: int = 0
    positive: int = 0

    @property
    def total(self) -> int:
        return self.negative + self.neutral + self.positive


@dataclass(frozen=True)
class Delivery:
    alert_id: int
    channel: str
    title: str
    message: str
    attempts: int
    created_at: str = ""  # the alert's


def _labelled(r: dict[str, Any]) -> LabelledMention:
    return LabelledMention(
        r["id"],
        r["label"],
        r["at"],
        r["url"],
        r["title"] or "",
        r["text"] or "",
        r["source_id"],
        r["author"],
        r["rating"],
        r["reach"],
    )


# Queries by time join brands with CROSS JOIN: SQLite then walks mentions through the time
# index (newest first, or a window) instead of every mention of the brand, so an alert pass
# does not rescan history.
# The effective label: a human correction, else the model's label for this brand (when the
# mention names several), else the model's label for the mention.
_LABEL = "coalesce(c.label, bs.label, s.label)"
_LABEL_JOINS = (
    "LEFT JOIN scores s ON s.mention_id = m.id AND s.model = :model AND s.revision = :rev "
    "LEFT JOIN brand_scores bs ON bs.mention_id = m.id AND bs.brand = b.brand "
    "AND bs.model = :model AND bs.revision = :rev "
    "LEFT JOIN corrections c ON c.mention_id = m.id "
)
_AT = "coalesce(m.published_at, m.fetched_at)"
# Mentions from news sources, left out where opinions are counted (the set is computed once
# per query: a handful of source ids).
_NOT_NEWS = "AND m.source_id NOT IN (SELECT id FROM sources WHERE kind = 'news')"


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def open(cls, path: str | Path, *, migrate: bool = True) -> Store:
        """Open (creating if needed) and migrate. Never share one Store between concurrent
        jobs: open one per job or request."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One Store is used by one job or request at a time, but a web request may hop between
        # worker threads (FastAPI runs dependencies and handlers on a pool).
        db = Database(sqlite3.connect(str(path), check_same_thread=False))
        db.execute("PRAGMA busy_timeout = 30000")  # wait for a reader/writer instead of failing
        db.execute("PRAGMA foreign_keys = ON")
        if migrate:
            if str(path) == ":memory:":
                migrations.apply(db)
            else:
                # Processes starting together on a fresh file would each see every migration
                # pending and race to apply it ("table already exists", "database is locked"):
                # one at a time, and the later ones find nothing left to do.
                with FileLock(f"{path}.migrate.lock", timeout=300):
                    db.enable_wal()  # persistent: recorded in the file
                    migrations.apply(db)
        return cls(db)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        """A write transaction that takes the write lock up front (BEGIN IMMEDIATE).

        A deferred BEGIN that reads and then writes cannot wait for another writer: SQLite
        answers "database is locked" at once instead of using the busy timeout."""
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():  # nested: a savepoint
                yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
        return next(self.db.query(sql, params), None)

    # ---- sources -------------------------------------------------------------------------

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
                    self.db["sources"].insert(  # type: ignore[union-attr]
                        {
                            "id": source.name,
                            "type": source.type,
                            "brand": source.brand,
                            "kind": source.effective_kind(),
                            "config_url": endpoint,
                            "url": endpoint,
                            "enabled": int(source.enabled),
                            "created_at": now_s,
                        }
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
                self.db["sources"].update(source.name, changes)  # type: ignore[union-attr]
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
            raise KeyError(
                f"no source {source_id!r} in sources.yaml"
                if row is None or row["disabled_reason"] == "removed from config"
                else f"{source_id!r} has `enabled: false` in sources.yaml"
            )
        with self._write():
            self.db["sources"].update(  # type: ignore[union-attr]
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
            raise KeyError(f"no source {source_id!r} in the database")
        return SourceState(
            url=secrets.reveal(row["url"]),
            etag=row["etag"],
            last_modified=row["last_modified"],
            cursor=json.loads(row["cursor"] or "{}"),
        )

    def _due_times(self, now: datetime) -> dict[str, datetime | None]:
        """Each enabled source's next due time. One set at a time that is now in the future
        (the clock was corrected backwards since) is re-based on now and stored so: a day's
        correction must not leave a source unfetched for a day."""
        out: dict[str, datetime | None] = {}
        fixed = []
        for r in self.db.query(
            "SELECT id, next_due_at, due_set_at FROM sources "
            "WHERE enabled = 1 ORDER BY coalesce(next_due_at, ''), id"
        ):
            due, set_at = parse_iso(r["next_due_at"]), parse_iso(r["due_set_at"])
            if due is not None and set_at is not None and set_at > now + CLOCK_SLACK:
                due = now + max(due - set_at, timedelta(0))
                fixed.append((iso(due), iso(now), r["id"]))
            out[r["id"]] = due
        if fixed:
            with self._write():
                self.db.conn.executemany(
                    "UPDATE sources SET next_due_at = ?, due_set_at = ? WHERE id = ?", fixed
                )
        return out

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

    # ---- fetches -------------------------------------------------------------------------

    def save_fetch(
        self,
        source_id: str,
        result: FetchResult,
        matched: Sequence[MatchedEntry],
        *,
        started: datetime,
        finished: datetime,
        next_due: datetime,
    ) -> FetchCounts:
        """Mentions, the run record and the source's new state, in one transaction: a crash
        before commit leaves the old cursor, so the next fetch gets the same entries again."""
        fetched_at = iso(finished)
        rejected = list(result.rejected)
        with self._write():
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
                self.db["sources"].update(  # type: ignore[union-attr]
                    source_id, {"last_warning": warning, "last_warning_at": fetched_at}
                )
            self.db["sources"].update(  # type: ignore[union-attr]
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
            self.db["fetch_runs"].insert(  # type: ignore[union-attr]
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
        except _ENTRY_ERRORS:
            pass
        new = updated = 0
        for m in matched:
            try:
                with self.db.atomic():
                    n, u = self._upsert_mentions(source_id, [m], fetched_at)
            except _ENTRY_ERRORS as exc:
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
        for chunk in _chunks(list(by_id)):
            rows = self.db.execute(
                f"SELECT external_id, id, content_hash FROM mentions WHERE source_id = ? "
                f"AND external_id IN ({','.join('?' * len(chunk))})",
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
        search: list[tuple[int, str, str]] = []
        for m in fresh:
            e = m.entry
            cur = conn.execute(
                "INSERT INTO mentions (source_id, external_id, url, author, title, text, html, "
                "language, language_source, language_hint, published_at, fetched_at, rating, "
                "reach, removed_at, raw, content_hash, content_key) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    source_id,
                    e.external_id,
                    e.url,
                    e.author,
                    e.title,
                    e.text,
                    e.html,
                    e.language,
                    e.language_source,
                    e.language_hint,
                    iso(e.published_at),
                    fetched_at,
                    e.rating,
                    e.reach,
                    fetched_at if e.removed else None,
                    json.dumps(e.raw, ensure_ascii=False, default=str),
                    e.content_hash,
                    content_key(e),
                ),
            )
            mention_id = cur.lastrowid
            assert mention_id is not None
            links += [(mention_id, b) for b in m.brands]
            search.append((mention_id, fold(e.title), fold(e.text)))
        for mention_id, m in changed:
            e = m.entry
            conn.execute(
                "UPDATE mentions SET url=?, author=?, title=?, text=?, html=?, language=?, "
                "language_source=?, language_hint=?, published_at=?, updated_at=?, rating=?, "
                "reach=?, raw=?, content_hash=?, content_key=? WHERE id=?",
                (
                    e.url,
                    e.author,
                    e.title,
                    e.text,
                    e.html,
                    e.language,
                    e.language_source,
                    e.language_hint,
                    iso(e.published_at),
                    fetched_at,
                    e.rating,
                    e.reach,
                    json.dumps(e.raw, ensure_ascii=False, default=str),
                    e.content_hash,
                    content_key(e),
                    mention_id,
                ),
            )
            # The text changed, so its old scores no longer describe it: score it again.
            conn.execute("DELETE FROM scores WHERE mention_id = ?", (mention_id,))
            conn.execute("DELETE FROM brand_scores WHERE mention_id = ?", (mention_id,))
            conn.execute("DELETE FROM mentions_search WHERE rowid = ?", (mention_id,))
            links += [(mention_id, b) for b in m.brands]
            search.append((mention_id, fold(e.title), fold(e.text)))
        conn.executemany(
            "INSERT OR IGNORE INTO mention_brands (mention_id, brand) VALUES (?, ?)", links
        )
        conn.executemany(
            "INSERT INTO mentions_search (rowid, title, text) VALUES (?, ?, ?)", search
        )
        return len(fresh), len(changed)

    def _adopt_aliases(
        self, source_id: str, by_id: dict[str, MatchedEntry], existing: dict[str, tuple[int, str]]
    ) -> None:
        """An entry stored under an older form of its id (see Entry.aliases) keeps its row:
        the row takes the current id."""
        wanted = {
            a: ext for ext, m in by_id.items() if ext not in existing for a in m.entry.aliases
        }
        for chunk in _chunks(list(wanted)):
            for alias, mid, h in self.db.execute(
                "SELECT external_id, id, content_hash FROM mentions WHERE source_id = ? "
                f"AND external_id IN ({','.join('?' * len(chunk))})",
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
        for chunk in _chunks([k for k, _ in keyed]):
            seen.update(
                r[0]
                for r in self.db.execute(
                    "SELECT content_key FROM mentions WHERE source_id = ? AND content_key IN "
                    f"({','.join('?' * len(chunk))}) AND fetched_at >= ?",
                    [source_id, *chunk, since],
                )
            )
        dropped = {id(m) for k, m in keyed if k in seen}
        return [m for m in fresh if id(m) not in dropped]

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
    ) -> None:
        """Store a failed fetch on that source only."""
        error = secrets.mask(error) or ""
        with self._write():
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
            self.db["fetch_runs"].insert(  # type: ignore[union-attr]
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

    # ---- mentions and scores ------------------------------------------------------------

    _UNSCORED = (
        "FROM mentions m WHERE NOT EXISTS (SELECT 1 FROM scores s WHERE s.mention_id = m.id "
        "AND s.model = :model AND s.revision = :rev) AND NOT EXISTS (SELECT 1 FROM "
        "score_failures f WHERE f.mention_id = m.id AND f.model = :model AND "
        "f.revision = :rev AND (f.permanent = 1 OR f.next_retry_at > :now))"
    )

    def count_unscored(self, model: str, revision: str | None) -> int:
        """How many mentions `unscored` would still hand out (for progress)."""
        [(n,)] = self.db.execute(
            f"SELECT count(*) {self._UNSCORED}",
            {"model": model, "rev": revision or "", "now": iso(utcnow())},
        ).fetchall()
        return int(n)

    def unscored(self, model: str, revision: str | None, limit: int) -> list[PendingMention]:
        rows = self.db.query(
            f"SELECT m.id, m.title, m.text, m.language, m.rating {self._UNSCORED} "
            "ORDER BY m.id LIMIT :limit",
            {"model": model, "rev": revision or "", "limit": limit, "now": iso(utcnow())},
        )
        return [
            PendingMention(r["id"], r["title"] or "", r["text"] or "", r["language"], r["rating"])
            for r in rows
        ]

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
    ) -> int:
        """Rows of (mention id, Prediction, Verdict or None: the text label is final), and
        per-brand rows (mention id, brand, label, Prediction, passage), in one transaction."""
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
            self.db["scores"].upsert_all(  # type: ignore[union-attr]
                rows, pk=("mention_id", "model", "revision")
            )
            if per_brand:
                self.db["brand_scores"].upsert_all(  # type: ignore[union-attr]
                    per_brand, pk=("mention_id", "brand", "model", "revision")
                )
        return len(rows)

    def brands_of(self, mention_ids: Sequence[int]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for chunk in _chunks(list(mention_ids)):
            for mid, brand in self.db.execute(
                "SELECT mention_id, brand FROM mention_brands WHERE mention_id IN "
                f"({','.join('?' * len(chunk))}) ORDER BY mention_id, brand",
                list(chunk),
            ):
                out.setdefault(mid, []).append(brand)
        return out

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
            self.db["score_failures"].upsert(  # type: ignore[union-attr]
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

    def latest_mentions(
        self, *, brand: str | None = None, search: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """Newest mentions with their brands and latest label, optionally filtered.

        `search` is in the brand query language (listener.query); a malformed one raises
        QuerySyntaxError. The full-text index narrows the candidates, and the query itself
        decides, so a search matches exactly what the same brand query would."""
        where, params = [], []
        if brand:
            where.append("m.id IN (SELECT mention_id FROM mention_brands WHERE brand = ?)")
            params.append(brand)
        # Accents on Latin letters are ignored both ways, as the full-text index does.
        query = parse_query(without_accents(search)) if search else None
        if query is not None:
            narrowed = _search_condition(query.root)
            if narrowed is not None:
                where.append(narrowed[0])
                params.extend(narrowed[1])
        sql = (
            "SELECT m.id, m.source_id, m.url, m.author, m.title, m.text, m.language, "
            "m.published_at, m.fetched_at, m.rating, "
            "(SELECT group_concat(brand, ',') FROM mention_brands WHERE mention_id = m.id) "
            "AS brands, coalesce((SELECT label FROM corrections WHERE mention_id = m.id), "
            "(SELECT label FROM scores WHERE mention_id = m.id ORDER BY scored_at DESC LIMIT 1)"
            ") AS label, (SELECT needs_review FROM scores WHERE mention_id = m.id "
            "ORDER BY scored_at DESC LIMIT 1) AS needs_review FROM mentions m "
            + (f"WHERE {' AND '.join(where)} " if where else "")
            + "ORDER BY coalesce(m.published_at, m.fetched_at) DESC, m.id DESC LIMIT ? OFFSET ?"
        )
        if query is None:
            return list(self.db.query(sql, [*params, limit, 0]))
        found: list[dict[str, Any]] = []
        offset, page = 0, max(limit, 200)
        while len(found) < limit:
            rows = list(self.db.query(sql, [*params, page, offset]))
            found += [
                r
                for r in rows
                if query.matches_tokens(
                    words(without_accents(r["title"] or ""))
                    + words(without_accents(r["text"] or ""))
                )
            ]
            if len(rows) < page:
                break
            offset += page
        return found[:limit]

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
            raise KeyError(f"no mention with id {mention_id}")
        with self._write():
            self.db["corrections"].upsert(  # type: ignore[union-attr]
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
        return self.db.query(
            "SELECT c.mention_id, m.language, m.rating, m.title, m.text, c.label, "
            "(SELECT group_concat(s.model || '@' || s.revision || '=' || s.label, ' ') "
            "FROM scores s WHERE s.mention_id = m.id) AS model_labels, c.by, c.note, "
            "c.created_at FROM corrections c JOIN mentions m ON m.id = c.mention_id "
            "ORDER BY c.created_at, c.mention_id"
        )

    def mention(self, mention_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM mentions WHERE id = ?", [mention_id])

    def recent_labelled(
        self,
        brand: str,
        model: str,
        revision: str | None,
        limit: int,
        source: str | None = None,
        *,
        include_news: bool = True,
    ) -> list[LabelledMention]:
        """A brand's newest labelled mentions, newest first, by published (else fetched) time."""
        return self._labelled(
            brand, model, revision, limit, source, "" if include_news else _NOT_NEWS
        )

    def last_non_negative(
        self,
        brand: str,
        model: str,
        revision: str | None,
        source: str | None = None,
        *,
        include_news: bool = True,
    ) -> LabelledMention | None:
        rows = self._labelled(
            brand,
            model,
            revision,
            1,
            source,
            f"AND {_LABEL} != 'negative' " + ("" if include_news else _NOT_NEWS),
        )
        return rows[0] if rows else None

    def _labelled(
        self,
        brand: str,
        model: str,
        revision: str | None,
        limit: int,
        source: str | None = None,
        where: str = "",
    ) -> list[LabelledMention]:
        rows = self.db.query(
            f"SELECT m.id, {_LABEL} AS label, {_AT} AS at, m.url, m.title, m.text, "
            "m.source_id, m.author, m.rating, m.reach FROM mentions m "
            "CROSS JOIN mention_brands b ON b.mention_id = m.id AND b.brand = :brand "
            f"{_LABEL_JOINS} WHERE {_LABEL} IS NOT NULL {where} "
            "AND (:source IS NULL OR m.source_id = :source) "
            "ORDER BY at DESC, m.id DESC LIMIT :limit",
            {
                "brand": brand,
                "model": model,
                "rev": revision or "",
                "limit": limit,
                "source": source,
            },
        )
        return [_labelled(r) for r in rows]

    # ---- facts for alert rules (time windows are [start, end) on published-else-fetched time)

    def label_counts(
        self,
        brand: str,
        model: str,
        revision: str | None,
        start: datetime,
        end: datetime,
        source: str | None = None,
        *,
        include_news: bool = True,
    ) -> LabelCounts:
        row = (
            self._one(
                f"SELECT sum({_LABEL} = 'negative') AS negative, sum({_LABEL} = 'neutral') AS "
                f"neutral, sum({_LABEL} = 'positive') AS positive FROM mentions m "
                "CROSS JOIN mention_brands b ON b.mention_id = m.id AND b.brand = :brand "
                f"{_LABEL_JOINS} WHERE {_AT} >= :start AND {_AT} < :end "
                "AND (:source IS NULL OR m.source_id = :source) "
                + ("" if include_news else _NOT_NEWS),
                {
                    "brand": brand,
                    "model": model,
                    "rev": revision or "",
                    "start": iso(start),
                    "end": iso(end),
                    "source": source,
                },
            )
            or {}
        )
        return LabelCounts(
            row.get("negative") or 0, row.get("neutral") or 0, row.get("positive") or 0
        )

    def mention_count(self, brand: str, start: datetime, end: datetime) -> int:
        row = self._one(
            "SELECT count(*) AS n FROM mentions m CROSS JOIN mention_brands b "
            f"ON b.mention_id = m.id AND b.brand = ? WHERE {_AT} >= ? AND {_AT} < ?",
            [brand, iso(start), iso(end)],
        )
        return int(row["n"]) if row else 0

    def mentions_between(
        self,
        brand: str,
        model: str,
        revision: str | None,
        start: datetime,
        end: datetime,
        where: str = "",
        limit: int = 100,
        order: str = "at DESC",
        *,
        include_news: bool = True,
    ) -> list[LabelledMention]:
        """A brand's mentions in a window with their effective label, filtered by `where`
        (SQL over m.* and `label`)."""
        rows = self.db.query(
            f"SELECT * FROM (SELECT m.id, {_LABEL} AS label, {_AT} AS at, m.url, m.title, "
            "m.text, m.source_id, m.author, m.rating, m.reach FROM mentions m "
            "CROSS JOIN mention_brands b ON b.mention_id = m.id AND b.brand = :brand "
            f"{_LABEL_JOINS} WHERE {_AT} >= :start AND {_AT} < :end "
            f"{'' if include_news else _NOT_NEWS}) "
            f"WHERE 1 {where} ORDER BY {order}, id DESC LIMIT :limit",
            {
                "brand": brand,
                "model": model,
                "rev": revision or "",
                "start": iso(start),
                "end": iso(end),
                "limit": limit,
            },
        )
        return [_labelled(r) for r in rows]

    def rating_stats(self, brand: str, start: datetime, end: datetime) -> tuple[float | None, int]:
        row = self._one(
            "SELECT avg(m.rating) AS avg, count(m.rating) AS n FROM mentions m "
            "CROSS JOIN mention_brands b ON b.mention_id = m.id AND b.brand = ? "
            f"WHERE {_AT} >= ? AND {_AT} < ? AND m.rating IS NOT NULL",
            [brand, iso(start), iso(end)],
        )
        return (row["avg"], int(row["n"])) if row else (None, 0)

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

    def last_alert_at(self, rule_id: str, scope: str) -> datetime | None:
        row = self._one(
            "SELECT max(created_at) AS at FROM alerts WHERE rule_id = ? AND scope = ?",
            [rule_id, scope],
        )
        return parse_iso(row["at"]) if row else None

    # ---- inbox ------------------------------------------------------------------------------

    def inbox_candidates(
        self, model: tuple[str, str | None], since: datetime
    ) -> list[dict[str, Any]]:
        """Labelled mentions posted since `since` that have no inbox item yet, per brand."""
        name, rev = model
        return list(
            self.db.query(
                f"SELECT m.id, b.brand, {_LABEL} AS label, s.score, s.text_label, s.needs_review, "
                f"c.label AS corrected, m.rating, {_AT} AS at "
                "FROM mentions m CROSS JOIN mention_brands b ON b.mention_id = m.id "
                f"{_LABEL_JOINS} WHERE {_LABEL} IS NOT NULL AND {_AT} >= :since "
                "AND m.id NOT IN (SELECT mention_id FROM inbox) AND m.removed_at IS NULL "
                f"{_NOT_NEWS} GROUP BY m.id",
                {"model": name, "rev": rev or "", "since": iso(since)},
            )
        )

    def add_inbox_items(self, items: Sequence[dict[str, Any]], now: datetime) -> int:
        with self._write():
            cur = self.db.conn.executemany(
                "INSERT OR IGNORE INTO inbox (mention_id, brand, kind, status, posted_at, "
                "due_at, created_at, mixed) VALUES (?, ?, ?, 'open', ?, ?, ?, ?)",
                [
                    (
                        i["mention_id"],
                        i["brand"],
                        i["kind"],
                        iso(i["posted_at"]),
                        iso(i["due_at"]),
                        iso(now),
                        int(bool(i.get("mixed"))),
                    )
                    for i in items
                ],
            )
        return cur.rowcount

    @staticmethod
    def _inbox_filter(
        brand: str | None, status: str | None, kind: str | None, overdue_at: datetime | None
    ) -> tuple[str, dict[str, Any]]:
        where, params = ["1"], {}
        for column, value in (("i.brand", brand), ("i.status", status), ("i.kind", kind)):
            if value:
                where.append(f"{column} = :{column[2:]}")
                params[column[2:]] = value
        if overdue_at is not None:
            where.append("i.status = 'open' AND i.due_at <= :now")
            params["now"] = iso(overdue_at)
        return " AND ".join(where), params

    def inbox(
        self,
        *,
        brand: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        overdue_at: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Inbox items with their mention, oldest due first, a page at a time."""
        where, params = self._inbox_filter(brand, status, kind, overdue_at)
        return list(
            self.db.query(
                "SELECT i.*, m.title, m.text, m.url, m.author, m.language, m.rating, m.source_id "
                "FROM inbox i JOIN mentions m ON m.id = i.mention_id "
                f"WHERE {where} ORDER BY i.due_at, i.mention_id LIMIT :limit OFFSET :offset",
                {**params, "limit": limit, "offset": offset},
            )
        )

    def inbox_count(
        self,
        *,
        brand: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        overdue_at: datetime | None = None,
    ) -> int:
        where, params = self._inbox_filter(brand, status, kind, overdue_at)
        row = self._one(f"SELECT count(*) AS n FROM inbox i WHERE {where}", params)
        return int(row["n"]) if row else 0

    def overdue_inbox(self, now: datetime, brand: str | None = None) -> list[dict[str, Any]]:
        return self.inbox(brand=brand, overdue_at=now, limit=1000)

    def inbox_item(self, mention_id: int) -> dict[str, Any] | None:
        return self._one(
            "SELECT i.*, m.title, m.text, m.url, m.author, m.language, m.rating, m.source_id, "
            "m.published_at FROM inbox i JOIN mentions m ON m.id = i.mention_id "
            "WHERE i.mention_id = ?",
            [mention_id],
        )

    def mark_inbox(
        self, mention_id: int, status: str, by: str | None = None, now: datetime | None = None
    ) -> None:
        if self.inbox_item(mention_id) is None:
            raise KeyError(f"no inbox item for mention {mention_id}")
        closed = None if status == "open" else iso(now or utcnow())
        with self._write():
            self.db.execute(
                "UPDATE inbox SET status = ?, closed_at = ?, closed_by = ? WHERE mention_id = ?",
                [status, closed, by, mention_id],
            )

    def assign_inbox(self, mention_id: int, assignee: str | None) -> None:
        if self.inbox_item(mention_id) is None:
            raise KeyError(f"no inbox item for mention {mention_id}")
        with self._write():
            self.db.execute(
                "UPDATE inbox SET assignee = ? WHERE mention_id = ?", [assignee, mention_id]
            )

    def inbox_all(
        self, brand: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "SELECT * FROM inbox WHERE (:brand IS NULL OR brand = :brand) "
                "AND (:since IS NULL OR posted_at >= :since)",
                {"brand": brand, "since": iso(since) if since else None},
            )
        )

    # ---- alerts and deliveries ----------------------------------------------------------

    def add_alert(self, alert: Any, channels: Sequence[str], now: datetime | None = None) -> bool:
        """Store an alert and one pending delivery per channel, unless its dedupe key exists."""
        with self._write():
            cur = self.db.execute(
                "INSERT OR IGNORE INTO alerts (dedupe_key, rule, rule_id, scope, brand, title, "
                "message, evidence, mention_ids, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
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
            if cur.rowcount == 0:
                return False
            self.db["deliveries"].insert_all(  # type: ignore[union-attr]
                {
                    "alert_id": cur.lastrowid,
                    "channel": c,
                    "status": "pending",
                    "updated_at": iso(now or utcnow()),
                }
                for c in channels
            )
        return True

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

    def claim_delivery(self, alert_id: int, channel: str) -> bool:
        """Mark a delivery as being sent, committed before sending: a crash mid-send leaves it
        'sending', which recover_deliveries turns to 'unknown', never to a second send."""
        cur = self.db.execute(
            "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, updated_at = ? "
            "WHERE alert_id = ? AND channel = ? AND status = 'pending'",
            [iso(utcnow()), alert_id, channel],
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

    def recover_deliveries(self) -> int:
        return self.db.execute(
            "UPDATE deliveries SET status = 'unknown', last_error = 'interrupted while sending' "
            "WHERE status = 'sending'"
        ).rowcount

    def alerts(self, limit: int = 50) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "SELECT a.*, (SELECT group_concat(d.channel || ':' || d.status, ', ') "
                "FROM deliveries d WHERE d.alert_id = a.id) AS deliveries "
                "FROM alerts a ORDER BY a.id DESC LIMIT ?",
                [limit],
            )
        )


_IN_INDEX = "m.id IN (SELECT rowid FROM mentions_search WHERE mentions_search MATCH ?)"
_IN_UNSPACED = (
    "m.id IN (SELECT rowid FROM mentions_search WHERE instr(title, ?) > 0 OR instr(text, ?) > 0)"
)


def _fts_word(word: str, prefix: bool, arabic: bool) -> str:
    """One query word as an FTS5 expression: quoted (so no input is FTS syntax), with the
    Arabic proclitic forms the brand matcher accepts."""
    star = "*" if prefix else ""
    forms = [word] + ([p + word for p in sorted(PROCLITICS)] if arabic else [])
    quoted = ['"' + f.replace('"', '""') + '"' + star for f in forms]
    return quoted[0] if len(quoted) == 1 else "(" + " OR ".join(quoted) + ")"


def _search_condition(node: QueryNode) -> tuple[str, list[str]] | None:
    """SQL that keeps at least every mention the query matches (None: it cannot narrow).

    Exactness is left to Query.matches: the index cannot see inside words of scripts written
    without spaces (found with instr instead), and an exclusion narrows nothing."""
    if isinstance(node, Phrase):
        parts: list[tuple[str, list[str]]] = []
        indexed = []
        for i, w in enumerate(node.words):
            prefix = node.prefix and i == len(node.words) - 1
            if node.unspaced[i]:
                parts.append((_IN_UNSPACED, [w, w]))
            else:
                indexed.append(_fts_word(w, prefix, node.arabic[i]))
        if indexed:
            if len(indexed) == len(node.words) and not any(node.arabic):
                # A plain phrase: FTS5 checks adjacency itself.
                text = '"' + " ".join(w.replace('"', '""') for w in node.words) + '"'
                indexed = [text + ("*" if node.prefix else "")]
            parts.append((_IN_INDEX, [" AND ".join(indexed)]))
        return _joined(parts, "AND")
    if isinstance(node, Not):
        return None
    if isinstance(node, And):
        found = [c for c in map(_search_condition, node.children) if c is not None]
        return _joined(found, "AND") if found else None
    if isinstance(node, Or):
        each = [_search_condition(c) for c in node.children]
        kept = [c for c in each if c is not None]
        return None if len(kept) < len(each) else _joined(kept, "OR")
    raise TypeError(node)


def _joined(parts: list[tuple[str, list[str]]], op: str) -> tuple[str, list[str]] | None:
    if not parts:
        return None
    return (
        "(" + f" {op} ".join(sql for sql, _ in parts) + ")",
        [p for _, params in parts for p in params],
    )
