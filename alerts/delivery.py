"""Sending stored alerts: each delivery once per channel, or bundled into a daily digest."""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from typing import Any

from alerts.notifiers import Notifier, NotifierError, build_notifier
from alerts.settings import CONSOLE
from listener import secrets
from listener.storage import Delivery, Storage
from listener.timeutil import parse_iso, utcnow
from listener.workers import Worker

log = logging.getLogger("listener")

# A channel that is down is retried after 1, 2, 4 ... minutes, then hourly; after GIVE_UP_AFTER
# attempts (about a day of trying) the delivery is 'failed': a day-old alert is history, and
# a dead endpoint must not cost every pass a timeout forever.
FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(hours=1)
GIVE_UP_AFTER = 30


def after_failure(attempts: int, now: datetime) -> tuple[str, datetime | None]:
    """(status, retry time) for a delivery whose send number `attempts` just failed."""
    if attempts >= GIVE_UP_AFTER:
        return "failed", None
    return "pending", now + min(FIRST_RETRY * 2 ** min(attempts - 1, 10), MAX_RETRY)


def build_notifiers(config: Any) -> dict[str, Notifier]:
    channels: dict[str, Notifier] = {CONSOLE: build_notifier(CONSOLE, "console://")}
    for n in config.notifiers:
        url = n.url.get_secret_value()
        secrets.register(f"notifier {n.name}", url, from_env=False)  # even if written inline
        channels[n.name] = build_notifier(n.name, url)
    return channels


def digest_times(config: Any) -> dict[str, time]:
    """Channels that get one daily digest instead of an alert each, and when (UTC)."""
    return {n.name: time.fromisoformat(n.digest) for n in config.notifiers if n.digest}


def digest_due(oldest_pending: datetime, at: time, now: datetime) -> bool:
    """A digest goes at the first daily `at` after its oldest alert; a failed one is retried
    every pass after that."""
    today = datetime.combine(now.date(), at, tzinfo=now.tzinfo)
    latest = today if now >= today else today - timedelta(days=1)
    return latest >= oldest_pending


def digest_text(deliveries: list[Delivery]) -> tuple[str, str]:
    n = len(deliveries)
    title = f"listener daily digest: {n} alert{'s' if n != 1 else ''}"
    body = "\n\n".join(f"🔔 {d.title}\n{d.message}" for d in deliveries)
    return title, body


def _send(
    store: Storage,
    notifier: Notifier,
    batch: list[Delivery],
    title: str,
    body: str,
    now: datetime,
    worker: Worker | None = None,
) -> str | None:
    """Claim, send, record: claimed rows are committed as 'sending' (held by `worker`) before
    the send, so a crash mid-send never leads to a second send."""
    owner, until = (worker.id, worker.until(utcnow())) if worker else ("", None)
    claimed = [d for d in batch if store.claim_delivery(d.alert_id, d.channel, owner, until)]
    if not claimed:
        return None
    try:
        notifier.send(title, body)
    except NotifierError as exc:
        error = str(exc)
    else:
        for d in claimed:
            store.finish_delivery(d.alert_id, d.channel, "sent")
        return None
    for d in claimed:
        status, retry_at = after_failure(d.attempts + 1, now)
        store.finish_delivery(d.alert_id, d.channel, status, error, retry_at)
        if status == "failed":
            log.error(
                "gave up on alert %d for %s after %d attempts (`listener alerts retry` "
                "re-queues it): %s",
                d.alert_id,
                d.channel,
                d.attempts + 1,
                error,
            )
    return error


def deliver_pending(
    store: Storage,
    channels: dict[str, Notifier],
    digests: dict[str, time] | None = None,
    now: datetime | None = None,
    worker: Worker | None = None,
) -> tuple[int, list[str]]:
    """Send the deliveries that are due. A failed one is retried later (after_failure); after
    one failure a channel is left alone for the rest of the pass, so a dead endpoint costs one
    timeout per pass, not one per waiting alert."""
    now = now or utcnow()
    digests = digests or {}
    sent, errors = 0, []
    pending = store.pending_deliveries(now)
    for name, notifier in channels.items():
        mine = [d for d in pending if d.channel == name]
        if not mine:
            continue
        if name in digests:
            oldest = min(parse_iso(d.created_at) or now for d in mine)
            if not digest_due(oldest, digests[name], now):
                continue
            batches = [(mine, *digest_text(mine))]
        else:
            batches = [([d], d.title, d.message) for d in mine]
        for batch, title, body in batches:
            error = _send(store, notifier, batch, title, body, now, worker)
            if error:
                errors.append(error)
                log.error("%s", error)
                break
            sent += len(batch)
    return sent, errors
