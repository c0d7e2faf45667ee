"""Replies posted where the mention was written, through the source's official API.

A person approves a reply (`listener inbox reply`, the inbox page, the API), or a source's
`auto_reply` approves the inbox's draft after a delay. The reply pass then sends what is due
with alert delivery's discipline: the reply is claimed (committed as 'sending') before the
call and recorded after it, so a crash or a kill never posts it twice. A send interrupted
mid-way is sent again only where the platform cannot take it twice (an idempotency key, a
fixed record key, a reply that replaces the last one); elsewhere it becomes 'unknown' for a
person to check. Every outcome is written to the audit log with the platform's answer, and a
sent reply closes its inbox item at the platform's own time of the reply.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from alerts.delivery import after_failure
from alerts.inbox import item_draft
from listener.storage import ReplyBusy, Storage
from listener.timeutil import parse_iso, utcnow
from listener.workers import Worker
from sources import reply_path
from sources.base import (
    FetchError,
    Posted,
    ReplyAttempt,
    ReplyCheck,
    ReplyError,
    ReplyPath,
    ReplyTarget,
)
from sources.http import client_or_own

log = logging.getLogger("listener")

# What a sent reply closes its item as.
CLOSES_AS = {"reply": "replied", "thank": "thanked"}
AUTO = "auto"  # the audit actor of replies approved by a source's auto_reply
# An item that should have been answered automatically this long ago (listener was stopped,
# or auto_reply was just switched on over a backlog) is left to people: a thank-you days late
# reads as a bot.
AUTO_REPLY_LATE = timedelta(hours=6)


# Open items are looked up on their platform for an answer the team wrote there (the store's
# console, the brand's account in an app): each at most this often, while this young, and this
# many per source and pass, so a large inbox costs a bounded number of calls.
CHECK_EVERY = timedelta(hours=1)
CHECK_WINDOW = timedelta(days=14)
CHECKS_PER_PASS = 50
CHECK_PAUSE = timedelta(minutes=15)  # after a platform or key failure, per source
_paused: dict[str, datetime] = {}  # in memory: a restart merely checks once more


class ReplyRefused(ValueError):
    """A reply that cannot be approved: no such item, no reply path, an empty or too long
    text, one already sent. The message says which."""


def path_for(config: Any, source_id: str) -> tuple[Any, ReplyPath]:
    """The configured source and its reply path; ReplyRefused when it has none."""
    source = next((s for s in config.sources if s.name == source_id), None)
    if source is None:
        raise ReplyRefused(f"source {source_id!r} is no longer in sources.yaml")
    path = reply_path(source.type)
    if path is None:
        raise ReplyRefused(
            f"{source.type} sources have no reply API listener can use: answer it where it "
            "was posted"
        )
    return source, path


def path_or_none(config: Any, source_id: str) -> ReplyPath | None:
    """The source's reply path, or None where its items are answered where they were
    posted."""
    try:
        return path_for(config, source_id)[1]
    except ReplyRefused:
        return None


def check_text(text: str, path: ReplyPath, where: str) -> str:
    text = text.strip()
    if not text:
        raise ReplyRefused(f"{where}: the reply is empty")
    if len(text) > path.max_chars:
        raise ReplyRefused(
            f"{where}: the reply is {len(text)} characters; this platform takes at most "
            f"{path.max_chars}"
        )
    return text


def approve(
    config: Any,
    store: Storage,
    mention_id: int,
    text: str | None,
    actor: str,
    *,
    send_after: datetime | None = None,
    now: datetime | None = None,
) -> str:
    """Approve a reply to an inbox item (`text`, or None for the item's draft), to be posted
    at the next reply pass (or at `send_after`). Audited; what was done in words.
    ReplyRefused or ReplyBusy (listener.storage) when it cannot be."""
    now = now or utcnow()
    item = store.inbox_item(mention_id)
    if item is None:
        raise ReplyRefused(f"no inbox item for mention {mention_id}")
    if item["status"] != "open":
        raise ReplyRefused(
            f"#{mention_id} is {item['status']}; reopen it (`listener inbox mark "
            f"{mention_id} open`) to reply"
        )
    _, path = path_for(config, item["source_id"])
    body = check_text(item_draft(config, item)[1] if text is None else text, path, f"#{mention_id}")
    detail = {"text": body, "send_after": (send_after or now).isoformat()}
    with store.audited(actor, "reply-approve", f"inbox {mention_id}", detail, now=now):
        store.approve_reply(mention_id, item["source_id"], body, actor, send_after or now, now)
    when = f" at {(send_after or now).isoformat(timespec='minutes')}" if send_after else ""
    return f"#{mention_id}: reply approved; it goes out with the next reply pass{when}"


def cancel(store: Storage, mention_id: int, actor: str) -> str:
    """Stop an approved reply that has not gone out. NotFound / ReplyBusy otherwise."""
    with store.audited(actor, "reply-cancel", f"inbox {mention_id}"):
        store.cancel_reply(mention_id)
    return f"#{mention_id}: reply cancelled; nothing was posted"


def auto_approve(config: Any, store: Storage, now: datetime | None = None) -> int:
    """Queue the draft of every open item a source answers by itself (its `auto_reply`),
    to go `delay` after the item appeared. Items whose words and stars disagree, items a
    person already answered or queued, and items whose time passed long ago
    (AUTO_REPLY_LATE) are left alone."""
    now = now or utcnow()
    queued = 0
    for source in config.sources:
        rule = source.auto_reply
        if rule is None or not source.enabled:  # config allows auto_reply only with a path
            continue
        for item in store.auto_reply_candidates(source.name, list(rule.kinds)):
            appeared = parse_iso(item["created_at"]) or now
            if appeared + rule.delay + AUTO_REPLY_LATE < now:
                continue  # a backlog from before auto_reply was on: people answer it
            try:
                approve(
                    config,
                    store,
                    item["mention_id"],
                    None,
                    f"{AUTO}:{source.name}",
                    send_after=appeared + rule.delay,
                    now=now,
                )
            except (ReplyRefused, ReplyBusy) as exc:  # too long a draft, say: a person answers
                log.warning(
                    "%s: no automatic reply to #%s: %s", source.name, item["mention_id"], exc
                )
                continue
            queued += 1
    return queued


@dataclass
class ReplyPassReport:
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    answered_elsewhere: int = 0  # items closed because the team answered on the platform


def _target(row: dict[str, Any]) -> ReplyTarget:
    raw = json.loads(row["raw"] or "{}") if isinstance(row["raw"], str) else (row["raw"] or {})
    return ReplyTarget(row["external_id"], row["url"], row["author"], row["language"], raw)


def send_due(
    config: Any,
    store: Storage,
    worker: Worker,
    client: httpx.Client | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> ReplyPassReport:
    """Post every approved reply whose time has come: claim, send, record."""
    report = ReplyPassReport()
    due = store.due_replies(clock())
    if not due:
        return report
    with client_or_own(client, allow_private=config.network.allow_private_addresses) as http:
        for row in due:
            _send_one(config, store, worker, http, clock, row, report)
    return report


def _send_one(
    config: Any,
    store: Storage,
    worker: Worker,
    client: httpx.Client,
    clock: Callable[[], datetime],
    row: dict[str, Any],
    report: ReplyPassReport,
) -> None:
    mention_id = row["mention_id"]
    try:
        source, path = path_for(config, row["source_id"])
    except ReplyRefused as exc:
        if store.claim_reply(
            mention_id, row["idempotency_key"], worker.id, worker.until(clock()), clock()
        ):
            _record_failure(store, row, ReplyError(str(exc), final=True), None, clock(), report)
        return
    started = clock()
    if not store.claim_reply(
        mention_id, row["idempotency_key"], worker.id, worker.until(started), started
    ):
        return  # cancelled, re-approved or taken by another worker meanwhile
    try:
        attempt = ReplyAttempt(row["idempotency_key"], parse_iso(row["approved_at"]) or started)
        posted = path.reply(source, _target(row), row["text"], attempt, client)
    except ReplyError as exc:
        _record_failure(store, row, exc, path, clock(), report)
        return
    except Exception as exc:  # a bug in a reply path: it may have posted
        log.exception("reply to #%s crashed", mention_id)
        error = ReplyError(f"the reply path crashed: {type(exc).__name__}: {exc}")
        _record_failure(store, row, error, path, clock(), report)
        return
    _record_sent(store, row, posted, clock())
    report.sent += 1


def _record_sent(store: Storage, row: dict[str, Any], posted: Posted, now: datetime) -> None:
    mention_id = row["mention_id"]
    detail = {
        "platform_id": posted.platform_id,
        "url": posted.url,
        "approved_by": row["approved_by"],
        "attempt": row["attempts"] + 1,
        "response": posted.response,
    }
    with store.audited("listener", "reply-sent", f"inbox {mention_id}", detail, now=now):
        store.finish_reply(
            mention_id,
            "sent",
            platform_id=posted.platform_id,
            platform_url=posted.url,
            posted_at=posted.at or now,
            response=posted.response,
            close_as=CLOSES_AS.get(row["kind"], "replied"),
            now=now,
        )
    log.info("reply to #%s posted: %s", mention_id, posted.url or posted.platform_id)


def _record_failure(
    store: Storage,
    row: dict[str, Any],
    exc: ReplyError,
    path: ReplyPath | None,
    now: datetime,
    report: ReplyPassReport,
) -> None:
    """A refusal is final; a failure with an answer from the platform (5xx, 429) is tried
    again later; one without any answer may have been posted: tried again only where the
    platform cannot take it twice, else 'unknown'."""
    mention_id, attempts = row["mention_id"], row["attempts"] + 1
    retry_at = None
    if exc.final:
        status = "failed"
    elif exc.http_status is None and not resend_allowed(path, row, now):
        status = "unknown"
    else:
        status, retry_at = after_failure(attempts, now)
        status = "approved" if status == "pending" else status
    detail = {"error": str(exc), "status": status, "attempt": attempts}
    action = "reply-retry" if status == "approved" else f"reply-{status}"
    with store.audited("listener", action, f"inbox {mention_id}", detail, now=now):
        store.finish_reply(mention_id, status, error=str(exc), retry_at=retry_at, now=now)
    if status != "approved":
        report.failed += 1
        report.errors.append(f"reply to #{mention_id}: {exc}")
        log.error("reply to #%s %s: %s", mention_id, status, exc)
    else:
        log.warning("reply to #%s not posted yet (retried at %s): %s", mention_id, retry_at, exc)


def resend_allowed(path: ReplyPath | None, row: dict[str, Any], now: datetime) -> bool:
    """Whether an attempt that may have reached the platform can be sent again with its key."""
    if path is None:
        return False
    first = parse_iso(row["first_tried_at"]) if row.get("first_tried_at") else now
    return now - (first or now) < path.resend_safe


def recover(config: Any, store: Storage, now: datetime | None = None) -> tuple[int, int]:
    """Replies left 'sending' by a worker that stopped mid-send: (sent again, left for a
    person). Sent again only where the platform cannot take them twice."""
    now = now or utcnow()
    again = unknown = 0
    for row in store.interrupted_replies(now):
        path = reply_path(row["source_type"]) if row.get("source_type") else None
        status = "approved" if resend_allowed(path, row, now) else "unknown"
        action = "reply-resume" if status == "approved" else "reply-unknown"
        detail = {"error": "interrupted while sending", "status": status}
        try:
            with store.audited("listener", action, f"inbox {row['mention_id']}", detail, now=now):
                if not store.resume_reply(row["mention_id"], status, now):
                    raise _Unchanged  # recovered by another worker meanwhile: no audit row
        except _Unchanged:
            continue
        if status == "approved":
            again += 1
        else:
            unknown += 1
            log.warning(
                "the reply to #%s was interrupted mid-send and may have been posted: marked "
                "'unknown'; check %s and approve it again if it is not there",
                row["mention_id"],
                row.get("source_id"),
            )
    return again, unknown


class _Unchanged(Exception):
    pass


def check_elsewhere(
    config: Any,
    store: Storage,
    client: httpx.Client | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> int:
    """Close the open items the team answered on the platform itself, at the platform's time
    of that answer (so time to reply stays true), cancelling any reply of ours still queued
    for them. Returns how many were closed."""
    checkable: list[tuple[Any, ReplyCheck]] = []
    for s in config.sources:
        path = reply_path(s.type)
        if s.enabled and isinstance(path, ReplyCheck):
            checkable.append((s, path))
    if not checkable:
        return 0
    with client_or_own(client, allow_private=config.network.allow_private_addresses) as http:
        return sum(_check_source(store, s, check, http, clock) for s, check in checkable)


def _check_source(
    store: Storage,
    source: Any,
    path: ReplyCheck,
    client: httpx.Client,
    clock: Callable[[], datetime],
) -> int:
    now = clock()
    if _paused.get(source.name, now) > now:
        return 0
    # A platform's read quota is shared with collecting: at most `checks_per_hour` lookups.
    room = path.checks_per_hour - store.platform_checks_since(source.name, now - CHECK_EVERY)
    if room <= 0:
        return 0
    rows = store.reply_check_candidates(
        source.name, now - CHECK_EVERY, now - CHECK_WINDOW, min(room, CHECKS_PER_PASS)
    )
    checked: list[int] = []
    closed = 0
    for row in rows:
        mention_id = row["mention_id"]
        try:
            found = path.find_reply(source, _target(row), client)
        except FetchError as exc:
            log.warning("could not look up #%s on its platform: %s", mention_id, exc)
            if exc.disable or exc.http_status in (401, 403, 429) or exc.http_status is None:
                _paused[source.name] = now + CHECK_PAUSE  # the key or the platform itself
                break
            checked.append(mention_id)  # this one item (deleted, say): not every pass
            continue
        except Exception:  # a bug in one platform's check never stops the rest
            log.exception("looking up #%s on its platform crashed", mention_id)
            checked.append(mention_id)
            continue
        if found is None:
            checked.append(mention_id)
            continue
        at = clock()
        detail = {"platform_id": found.platform_id, "url": found.url, "response": found.response}
        status = CLOSES_AS.get(row["kind"], "replied")
        try:
            with store.audited(
                "platform", "reply-elsewhere", f"inbox {mention_id}", detail, now=at
            ):
                if not store.close_answered_elsewhere(mention_id, status, found.at or at, now=at):
                    raise _Unchanged  # closed by a person meanwhile: no audit row
        except _Unchanged:
            continue
        closed += 1
        log.info("#%s was answered on the platform: closed as %s", mention_id, status)
    if checked:
        store.mark_platform_checked(checked, now)
    return closed
