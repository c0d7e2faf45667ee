"""Notification channels behind one protocol, registered by kind. Apprise covers Slack, Teams,
Discord, Telegram, email, webhooks and ~100 more; `console` prints to standard output."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Protocol

import click

log = logging.getLogger(__name__)
# Apprise's DEBUG log prints each service URL, token and all: never let it log DEBUG.
logging.getLogger("apprise").setLevel(logging.INFO)


class NotifierError(Exception):
    pass


class Notifier(Protocol):
    name: str

    def send(self, title: str, body: str) -> None:
        """Deliver or raise NotifierError; the message never contains the channel's secret URL."""


NotifierFactory = Callable[[str, str], Notifier]  # (name, url) -> Notifier
NOTIFIERS: dict[str, NotifierFactory] = {}


def register(kind: str) -> Callable[[NotifierFactory], NotifierFactory]:
    def inner(factory: NotifierFactory) -> NotifierFactory:
        NOTIFIERS[kind] = factory
        return factory

    return inner


@register("console")
class ConsoleNotifier:
    def __init__(self, name: str, url: str = "console://") -> None:
        self.name = name

    def send(self, title: str, body: str) -> None:
        click.echo(f"\n🔔 {title}\n{body}\n")


@register("apprise")
class AppriseNotifier:
    def __init__(self, name: str, url: str) -> None:
        import apprise

        self.name = name
        self._apprise = apprise.Apprise()
        self._capture = apprise.LogCapture
        # The URL's longer parts (tokens, passwords, webhook paths), kept out of any error.
        self._secrets = sorted(
            (p for p in re.split(r"[/:@?&=#]+", url) if len(p) >= 6), key=len, reverse=True
        )
        if not self._apprise.add(url):
            # Never echo the URL: it usually holds a token.
            raise NotifierError(f"notifier {name!r}: not a URL Apprise understands")

    def send(self, title: str, body: str) -> None:
        # Apprise says why a send failed (HTTP status, connection error) only in its log.
        with self._capture(level=logging.WARNING, fmt="%(message)s") as captured:
            ok = self._apprise.notify(title=title, body=body)
        if not ok:
            why = " ".join(captured.getvalue().split())[-300:] or "no reason given"
            for secret in self._secrets:
                why = why.replace(secret, "***")
            raise NotifierError(f"notifier {self.name!r}: delivery failed: {why}")


def build_notifier(name: str, url: str) -> Notifier:
    kind = "console" if url.startswith("console://") else "apprise"
    return NOTIFIERS[kind](name, url)
