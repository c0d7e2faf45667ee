"""Database schema as numbered sqlite-utils migrations: applied at start, twice is a no-op.

Never edit a migration that has shipped; add a new one.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.db import Table
from sqlite_utils.migrations import Migrations

migrations = Migrations("listener")

# unicode61 folds case in every script and strips Latin diacritics; we store folded text
# (textnorm.fold) so Arabic harakat and ё/е never split a match either.
FTS_TOKENIZER = "unicode61 remove_diacritics 2"


def _t(db: Database, name: str) -> Table:
    return db.table(name)


@migrations()
def m001_initial(db: Database) -> None:
    _t(db, "sources").create(
        {
            "id": str,
            "type": str,
            "brand": str,
            "config_url": str,  # endpoint as configured; a change resets the state below
            "url": str,  # effective endpoint; a 301 rewrites it
            "enabled": int,
            "disabled_reason": str,
            "etag": str,
            "last_modified": str,
            "cursor": str,  # JSON
            "next_due_at": str,
            "consecutive_failures": int,
            "last_error": str,
            "last_run_at": str,
            "last_success_at": str,
            "created_at": str,
        },
        pk="id",
        not_null={"type", "enabled", "consecutive_failures"},
        defaults={"enabled": 1, "consecutive_failures": 0, "cursor": "{}"},
    )
    _t(db, "mentions").create(
        {
            "id": int,
            "source_id": str,
            "external_id": str,
            "url": str,
            "author": str,
            "title": str,
            "text": str,
            "html": str,
            "language": str,
            "published_at": str,
            "fetched_at": str,
            "updated_at": str,
            "rating": float,
            "raw": str,  # JSON, as the source sent it
            "content_hash": str,
        },
        pk="id",
        not_null={"source_id", "external_id", "fetched_at", "content_hash"},
        foreign_keys=[("source_id", "sources", "id")],
    )
    _t(db, "mentions").create_index(["source_id", "external_id"], unique=True)
    _t(db, "mentions").create_index(["published_at"])
    _t(db, "mention_brands").create(
        {"mention_id": int, "brand": str},
        pk=("mention_id", "brand"),
        foreign_keys=[("mention_id", "mentions", "id")],
    )
    _t(db, "mention_brands").create_index(["brand", "mention_id"])
    _t(db, "scores").create(
        {
            "mention_id": int,
            "model": str,
            "revision": str,
            "label": str,
            "score": float,  # p(positive) - p(negative), in [-1, 1]
            "scores": str,  # JSON {"negative": p, "neutral": p, "positive": p}
            "scored_at": str,
        },
        pk=("mention_id", "model", "revision"),
        foreign_keys=[("mention_id", "mentions", "id")],
    )
    _t(db, "fetch_runs").create(
        {
            "id": int,
            "source_id": str,
            "started_at": str,
            "finished_at": str,
            "status": str,  # ok, not_modified, error
            "http_status": int,
            "entries": int,
            "new": int,
            "updated": int,
            "skipped": int,  # entries that matched no brand
            "error": str,
        },
        pk="id",
        foreign_keys=[("source_id", "sources", "id")],
    )
    _t(db, "fetch_runs").create_index(["source_id", "started_at"])
    _t(db, "alerts").create(
        {
            "id": int,
            "dedupe_key": str,
            "rule": str,
            "brand": str,
            "title": str,
            "message": str,
            "evidence": str,  # JSON
            "mention_ids": str,  # JSON list
            "created_at": str,
        },
        pk="id",
        not_null={"dedupe_key", "rule"},
    )
    _t(db, "alerts").create_index(["dedupe_key"], unique=True)
    _t(db, "deliveries").create(
        {
            "alert_id": int,
            "channel": str,
            "status": str,  # pending, sending, sent, unknown, failed (m008)
            "attempts": int,
            "last_error": str,
            "updated_at": str,
            "sent_at": str,
        },
        pk=("alert_id", "channel"),
        foreign_keys=[("alert_id", "alerts", "id")],
        defaults={"attempts": 0},
    )
    db.execute(
        f"CREATE VIRTUAL TABLE mentions_search USING fts5(title, text, tokenize='{FTS_TOKENIZER}')"
    )


@migrations()
def m002_language_fusion_corrections(db: Database) -> None:
    _t(db, "mentions").add_column("language_source", str)  # hint | detected
    _t(db, "scores").add_column("text_label", str)  # the model's label before rating fusion
    _t(db, "scores").add_column("needs_review", int)  # top probability under the threshold
    _t(db, "corrections").create(
        {"mention_id": int, "label": str, "by": str, "note": str, "created_at": str},
        pk="mention_id",
        foreign_keys=[("mention_id", "mentions", "id")],
    )


@migrations()
def m003_reach_removed(db: Database) -> None:
    _t(db, "mentions").add_column("reach", int)  # author's followers, karma...: for ranking
    _t(db, "mentions").add_column("removed_at", str)  # deleted/removed at the source


@migrations()
def m004_alert_scope_and_inbox(db: Database) -> None:
    _t(db, "alerts").add_column("rule_id", str)  # the rule's name in sources.yaml
    _t(db, "alerts").add_column("scope", str)  # the brand or source it is about
    _t(db, "alerts").create_index(["rule_id", "scope", "created_at"])
    _t(db, "inbox").create(
        {
            "mention_id": int,
            "brand": str,
            "kind": str,  # reply | thank
            "status": str,  # open | replied | thanked | ignored
            "assignee": str,
            "posted_at": str,  # when the customer wrote: the response clock starts here
            "due_at": str,
            "created_at": str,
            "closed_at": str,
            "closed_by": str,
        },
        pk="mention_id",
        foreign_keys=[("mention_id", "mentions", "id")],
        not_null={"kind", "status"},
    )
    _t(db, "inbox").create_index(["status", "due_at"])


@migrations()
def m005_time_indexes(db: Database) -> None:
    # Alert windows, streaks, exports and the inbox all ask "mentions by published-else-fetched
    # time": without this index every alert pass would scan the whole history.
    db.execute("CREATE INDEX mentions_at ON mentions (coalesce(published_at, fetched_at))")
    db.execute("CREATE INDEX mentions_source_fetched ON mentions (source_id, fetched_at)")


@migrations()
def m006_score_failures(db: Database) -> None:
    # A text the model cannot score (crashes on it) is recorded here and skipped, so one bad
    # input never blocks its batch or is retried forever.
    _t(db, "score_failures").create(
        {"mention_id": int, "model": str, "revision": str, "error": str, "failed_at": str},
        pk=("mention_id", "model", "revision"),
        foreign_keys=[("mention_id", "mentions", "id")],
    )


@migrations()
def m007_scores_by_model(db: Database) -> None:
    # Views ask "has this model scored anything?" and "which model scored last?"
    _t(db, "scores").create_index(["model", "revision"])
    _t(db, "scores").create_index(["scored_at"])


@migrations()
def m008_delivery_retry_time(db: Database) -> None:
    # A channel that is down is retried with backoff, not every pass, and given up on after a
    # day ('failed', re-queued by `listener alerts retry`).
    _t(db, "deliveries").add_column("next_attempt_at", str)


@migrations()
def m009_rejected_entries_and_safe_links(db: Database) -> None:
    # One unreadable entry is dropped and counted on its fetch, never the whole response.
    _t(db, "fetch_runs").add_column("rejected", int)
    _t(db, "fetch_runs").add_column("rejected_detail", str)  # the first few reasons, JSON
    # Only http(s) links are kept: a javascript: link stored before is no link at all.
    db.execute(
        "UPDATE mentions SET url = NULL WHERE url IS NOT NULL AND NOT ("
        "lower(substr(ltrim(url), 1, 7)) = 'http://' OR "
        "lower(substr(ltrim(url), 1, 8)) = 'https://')"
    )


@migrations()
def m010_kinds_mixed_and_brand_scores(db: Database) -> None:
    # What a source carries (news, social, reviews): news is reported, not somebody's opinion
    # of the brand, so it never enters the inbox and streak/spike rules skip it by default.
    _t(db, "sources").add_column("kind", str)
    # A 4-5 star review whose words complain: a reply item, marked mixed.
    _t(db, "inbox").add_column("mixed", int)
    # One label per brand when a mention names several ("A is far better than B"), scored
    # on the sentences around each brand's name; views use it for that brand.
    _t(db, "brand_scores").create(
        {
            "mention_id": int,
            "brand": str,
            "model": str,
            "revision": str,
            "label": str,
            "score": float,
            "scores": str,
            "text": str,
        },
        pk=("mention_id", "brand", "model", "revision"),
        foreign_keys=[("mention_id", "mentions", "id")],
    )


@migrations()
def m011_retries_and_due_times(db: Database) -> None:
    # A text the model failed on is retried with backoff; only a text that fails on its own
    # again and again is given up on ("permanent"), so a passing out-of-memory is not final.
    _t(db, "score_failures").add_column("attempts", int)
    _t(db, "score_failures").add_column("next_retry_at", str)
    _t(db, "score_failures").add_column("permanent", int)
    db.execute("UPDATE score_failures SET attempts = 1, permanent = 0")
    # When a source's next due time was set: a due time set "in the future" means the clock
    # was corrected backwards since, and the delay is re-based on now (see Store.due_sources).
    _t(db, "sources").add_column("due_set_at", str)


@migrations()
def m012_language_hint(db: Database) -> None:
    # The source's own language claim, kept beside the language used: a feed marked `en`
    # carrying Finnish reviews is scored and answered in Finnish (detection wins when sure).
    _t(db, "mentions").add_column("language_hint", str)


@migrations()
def m013_content_keys(db: Database) -> None:
    # Some feeds mint a new guid for the same post at every fetch: the same source saying the
    # same thing again within a week is the same mention (see Store._upsert_mentions).
    import hashlib
    import json

    _t(db, "mentions").add_column("content_key", str)
    rows = db.execute("SELECT id, title, text, author, rating FROM mentions").fetchall()
    db.conn.executemany(
        "UPDATE mentions SET content_key = ? WHERE id = ?",
        [
            (
                hashlib.sha256(
                    json.dumps([t or "", x or "", a, r], ensure_ascii=False).encode(
                        "utf-8", "surrogatepass"
                    )
                ).hexdigest(),
                mid,
            )
            for mid, t, x, a, r in rows
        ],
    )
    db.execute("CREATE INDEX mentions_source_content ON mentions (source_id, content_key)")


@migrations()
def m014_fetch_warnings(db: Database) -> None:
    # A fetch that stored what it read but may have missed some (more new posts than one fetch
    # reads, X's 7-day window passed by, a page that failed): said on the run and the source.
    _t(db, "fetch_runs").add_column("warning", str)
    _t(db, "sources").add_column("last_warning", str)
    _t(db, "sources").add_column("last_warning_at", str)


@migrations()
def m015_workers_and_leases(db: Database) -> None:
    # Several workers may share a database (listener.workers): each claim of a piece of work
    # has an owner and an expiry, renewed while the owner works and free once it lapses.
    for table in ("sources", "deliveries"):
        _t(db, table).add_column("lease_owner", str)
        _t(db, table).add_column("lease_expires", str)
    _t(db, "score_claims").create(
        {"mention_id": int, "model": str, "revision": str, "owner": str, "expires_at": str},
        pk=("mention_id", "model", "revision"),
    )
    _t(db, "score_claims").create_index(["owner"])
    _t(db, "leases").create({"name": str, "owner": str, "expires_at": str}, pk="name")
    _t(db, "workers").create(
        {"id": str, "host": str, "pid": int, "roles": str, "started_at": str, "seen_at": str},
        pk="id",
    )


@migrations()
def m016_audit_log(db: Database) -> None:
    # Who changed what from the web, CLI or API: written in the transaction of the change.
    _t(db, "audit_log").create(
        {"id": int, "at": str, "actor": str, "action": str, "target": str, "detail": str},
        pk="id",
        not_null={"at", "actor", "action"},
    )
    _t(db, "audit_log").create_index(["at"])


@migrations()
def m017_replies(db: Database) -> None:
    # Replies posted where the mention was written (alerts.replies): one per inbox item.
    _t(db, "replies").create(
        {
            "mention_id": int,
            "source_id": str,
            "text": str,
            "status": str,
            "generation": int,
            "idempotency_key": str,
            "approved_by": str,
            "approved_at": str,
            "send_after": str,
            "attempts": int,
            "next_attempt_at": str,
            "first_tried_at": str,
            "last_error": str,
            "platform_id": str,
            "platform_url": str,
            "posted_at": str,
            "response": str,
            "updated_at": str,
            "lease_owner": str,
            "lease_expires": str,
        },
        pk="mention_id",
        not_null={"status", "text", "idempotency_key"},
        foreign_keys=[("mention_id", "mentions", "id")],
    )
    _t(db, "replies").create_index(["status", "send_after"])


@migrations()
def m018_platform_checks(db: Database) -> None:
    # When an open inbox item was last looked up on its platform for a reply the team made
    # there (alerts.replies.check_elsewhere).
    _t(db, "inbox").add_column("platform_checked_at", str)
