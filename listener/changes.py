"""Every change a person makes to what listener holds (a label corrected, an inbox item marked
or assigned, deliveries queued again, a source switched back on), made the same way from the
CLI, the web page and the API, and each written to the audit log in the transaction that makes
it: who (`actor`: "web:anna", "cli:root", "api"), when, what, to which item."""

from __future__ import annotations

import getpass
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from alerts.inbox import MarkRefused, mark_change
from listener.storage import Storage


def cli_actor() -> str:
    """The CLI's actor: the operating-system user running it."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # a container user without a passwd entry
        return "cli"


def correct_label(
    store: Storage,
    mention_id: int,
    label: str,
    actor: str,
    note: str | None = None,
    by: str | None = None,
) -> None:
    """A person's label for a mention, credited to `by` (else the actor); NotFound for no
    such mention."""
    detail = {"label": label, "note": note}
    with store.audited(actor, "label", f"mention {mention_id}", detail):
        store.add_correction(mention_id, label, by=by or actor, note=note)


def mark_item(
    store: Storage, mention_id: int, status: str, actor: str, by: str | None = None
) -> tuple[dict[str, Any], str]:
    """Mark an inbox item: the item as it was, and what changed in words. KeyError for no
    such item, MarkRefused for a status that does not fit; the same status writes nothing."""
    item = store.inbox_item(mention_id)
    if item is None:
        raise KeyError(f"no inbox item for mention {mention_id}")
    message = mark_change(item, status)
    if item["status"] != status:
        who = by or actor
        detail = {"status": status, "was": item["status"], "by": who}
        with store.audited(actor, "mark", f"inbox {mention_id}", detail):
            store.mark_inbox(mention_id, status, who)
        message += f" by {who}"
    return item, message


def assign_item(store: Storage, mention_id: int, assignee: str | None, actor: str) -> str:
    """Give an inbox item to someone (None: to no one); what changed in words."""
    item = store.inbox_item(mention_id)
    if item is None:
        raise KeyError(f"no inbox item for mention {mention_id}")
    if item["assignee"] == assignee:
        return f"#{mention_id} was already assigned to {assignee or 'no one'}"
    detail = {"assignee": assignee, "was": item["assignee"]}
    with store.audited(actor, "assign", f"inbox {mention_id}", detail):
        store.assign_inbox(mention_id, assignee)
    return f"#{mention_id}: assigned to {assignee or 'no one'}"


@dataclass
class BulkResult:
    """What one action over many items did."""

    changed: int = 0  # items changed (already so: not counted)
    messages: list[str] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (item, why not)

    @property
    def refused_ids(self) -> list[int]:
        return [i for i, _ in self.refused]


def bulk(
    store: Storage,
    mention_ids: Iterable[int],
    actor: str,
    *,
    status: str | None = None,
    assignee: str | None = None,
    unassign: bool = False,
    by: str | None = None,
) -> BulkResult:
    """Mark and/or assign many inbox items, each in its own transaction; one that cannot be
    changed (no such item, a status that does not fit it) is named and the rest still are."""
    result = BulkResult()
    for mention_id in dict.fromkeys(mention_ids):  # each once, in the order given
        item = store.inbox_item(mention_id)
        try:
            if item is None:
                raise KeyError(f"no inbox item for mention {mention_id}")
            if assignee or unassign:
                result.messages.append(assign_item(store, mention_id, assignee or None, actor))
            if status:
                result.messages.append(mark_item(store, mention_id, status, actor, by)[1])
        except KeyError as exc:
            result.refused.append((mention_id, str(exc.args[0])))
            continue
        except MarkRefused as exc:
            result.refused.append((mention_id, str(exc)))
            continue
        moved = (assignee or unassign) and item["assignee"] != (assignee or None)
        if moved or (status and item["status"] != status):
            result.changed += 1
    return result


def requeue(store: Storage, alert_id: int | None, actor: str) -> int:
    """Queue again the failed or interrupted deliveries of one alert (None: of all)."""
    target = f"alert {alert_id}" if alert_id is not None else "all alerts"
    detail: dict[str, Any] = {}  # written when the block ends: the count goes in
    with store.audited(actor, "retry", target, detail):
        detail["queued"] = n = store.requeue_deliveries(alert_id)
    return n


def enable_source(store: Storage, source_id: str, actor: str) -> None:
    with store.audited(actor, "enable", f"source {source_id}"):
        store.enable_source(source_id)
