"""Links that came from outside: which may be stored, rendered as a link, or put in a message.

A feed decides what its <link> says. Only http(s) URLs with a host are kept as links: a
`javascript:` or `data:` URL rendered as an href runs script in the dashboard's origin.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

import regex

MAX_URL_CHARS = 4096
# Characters that chat tools read as markup or mentions (<!channel>, <@U123>, [text](url),
# *bold*, `code`, @everyone) or that end a link early: percent-encoded in messages. Encoding
# them keeps the link pointing where it did for any server that decodes percent-escapes.
_MESSAGE_UNSAFE = "".join(sorted(set("<>[]()`*_~|@!\"'\\{}^ ")))
_ASCII_CONTROL = regex.compile(r"[\x00-\x20\x7f]")
_HOST = regex.compile(r"^(?:[\p{L}\p{M}\p{N}_-]+(?:\.[\p{L}\p{M}\p{N}_-]+)*\.?|[0-9A-Fa-f:.]+)$")


def http_url(url: object) -> str | None:
    """The URL if it is an absolute http(s) URL with a host, else None."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url or len(url) > MAX_URL_CHARS:
        return None
    try:
        parts = urlsplit(url)  # also drops tabs/newlines, as browsers do before reading it
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host or not _HOST.match(host):
        return None
    if _ASCII_CONTROL.search(url.replace(" ", "")):
        return None
    return url


def message_link(url: object) -> str | None:
    """A URL made inert for chat and email messages, or None if it is not an http(s) link.

    The user-info part is dropped (https://bank.example@evil.example reads as the bank), the
    host is shown as its ASCII (punycode) form so look-alike letters cannot pass as another
    name, and markup characters in path, query and fragment are percent-encoded."""
    checked = http_url(url)
    if checked is None:
        return None
    parts = urlsplit(checked)
    host = parts.hostname or ""
    try:
        ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return None
    if ":" in ascii_host:
        ascii_host = f"[{ascii_host}]"
    netloc = ascii_host + (f":{parts.port}" if parts.port else "")

    def safe(part: str) -> str:
        # quote() keeps '%' (existing escapes survive) and never encodes '_' or '~' itself.
        return quote(part, safe="/?&=#%+,;:$.-").replace("_", "%5F").replace("~", "%7E")

    path, query, fragment = (safe(p) for p in (parts.path, parts.query, parts.fragment))
    rest = urlunsplit(("", "", path, query, fragment))
    if any(c in rest for c in _MESSAGE_UNSAFE):
        return None
    return f"{parts.scheme.lower()}://{netloc}{rest}"
