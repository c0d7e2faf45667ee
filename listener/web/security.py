"""What every response of the dashboard carries, and which requests it answers at all.

Plain ASGI middleware (no per-request task or buffering): the Host check against DNS
rebinding, and headers that keep a browser from running or framing anything we did not serve.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No inline script or style anywhere: even markup that slipped through escaping cannot run.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",  # mention links must not tell sites our dashboard's URL
    "x-content-type-options": "nosniff",
    "cross-origin-opener-policy": "same-origin",
}


def script_hashes(html: str) -> list[str]:
    """CSP source expressions for the inline scripts of a page we generate (e.g. /docs)."""
    found = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    return [
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in found
    ]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._raw = [(k.encode(), v.encode()) for k, v in HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self._raw if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def host_of(header: str) -> str:
    """The host name of a Host header, IPv6 literals included ("[::1]:8080" -> "::1")."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else ""
    host = header.rsplit(":", 1)[0] if header.count(":") == 1 else header
    return host.rstrip(".")


class HostCheck:
    """Answer only requests naming an allowed host. A page on any web site can point its
    own name at 127.0.0.1 (DNS rebinding) and read a dashboard that trusts whoever reaches
    the port; the Host header it sends still carries its own name."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = {h.strip().strip("[]").lower().rstrip(".") for h in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or "*" in self.allowed:
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = dict(scope.get("headers", []))
        host = host_of(headers.get(b"host", b"").decode("latin-1"))
        if host in self.allowed:
            await self.app(scope, receive, send)
            return
        await _refuse(send, 400, b"Invalid host header")


MAX_BODY_BYTES = 64 * 1024  # forms and API calls are a few hundred bytes; nothing is uploaded


class BodyLimit:
    """Refuse request bodies past MAX_BODY_BYTES (413) before anything parses them: form
    parsing would otherwise hold any amount a client sends in memory."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = dict(scope.get("headers", []))
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            await _too_large(send)
            return
        received = 0
        refused = False

        async def counted() -> Message:
            # Past the limit: answer 413 now, and tell the app the client has gone.
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    refused = True
                    await _too_large(send)
                    return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, unless_refused)


async def _too_large(send: Send) -> None:
    await _refuse(send, 413, b"Request body too large")


async def _refuse(send: Send, status: int, body: bytes) -> None:
    """A whole plain-text response, sent before the app sees the request."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def add_security(app: Any, allowed_hosts: Iterable[str]) -> None:
    app.add_middleware(BodyLimit)
    app.add_middleware(HostCheck, allowed=list(allowed_hosts))
    app.add_middleware(SecurityHeaders)
