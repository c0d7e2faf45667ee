"""Alert text that reads well in Slack, Teams, email or a terminal, built from untrusted
mention text that must not break the message or ping anyone."""

from __future__ import annotations

import unicodedata
from datetime import timedelta

import regex

from listener.urls import message_link

SNIPPET_CHARS = 160
# Slack/Discord/Teams read <...> as links and mentions, @here/@channel/@everyone ping a whole
# room, and markdown turns [text](url) into a disguised link.
_CONTROL = regex.compile(r"[\p{Cc}\p{Cf}--[\n\t]]", flags=regex.V1)
_PING = regex.compile(r"@(?=\w)")
# Zalgo: stacks of combining marks that overflow lines. Real scripts use at most two or three
# on one letter (Vietnamese, Arabic harakat), so keep three.
_MARK_STACK = regex.compile(r"(\p{M}{3})\p{M}+")
_MARKUP = str.maketrans(
    {
        "<": "‹",
        ">": "›",
        "[": "⟦",
        "]": "⟧",
        "`": "ˋ",
        "*": "∗",
        "_": "＿",
        "~": "∼",
        "|": "│",
        "&": "＆",
    }
)


def neutralise(text: str) -> str:
    """Untrusted text, made inert: no control or bidi characters, no markup, no pings."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)
    text = _MARK_STACK.sub(r"\1", text)
    text = text.translate(_MARKUP)
    return _PING.sub("@\u2060", text)  # a word joiner after @ stops the mention


def snippet(title: str, text: str, limit: int = SNIPPET_CHARS) -> str:
    flat = (
        " ".join(f"{title} {text}".split())
        if title and not text.startswith(title)
        else (" ".join(text.split()))
    )
    flat = flat if len(flat) <= limit else flat[: limit - 1] + "…"
    return neutralise(flat)


def human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            value = seconds / size
            return (
                f"{value:.0f} {unit}"
                if value >= 10 or value.is_integer()
                else (f"{value:.1f} {unit}")
            )
    return f"{seconds} s"


def link_line(url: str | None) -> str:
    """The mention's link on its own line, made inert (see listener.urls.message_link)."""
    link = message_link(url)
    return f"\n  {link}" if link else ""
