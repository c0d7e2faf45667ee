"""Whole responses of the dashboard's read-only pages, kept for a short time.

A team leaves the dashboard open on many screens: the same few pages are asked for again and
again while the data under them changes only when a collection pass runs. A GET answered
once is answered from memory for `ttl` seconds; after that the next request still gets the
kept copy at once while one background request computes a fresh one (no visitor waits on a
slow aggregate once a page has been seen). Any other method (a reply, a resolve, a retry)
empties the cache, and a response computed while such a write ran is not kept, so nobody
sees a page from before their own change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("listener")


@dataclass
class Kept:
    at: float
    start: Message
    body: bytes


class ResponseCache:
    def __init__(
        self,
        app: App,
        ttl: float,
        skip: tuple[str, ...] = ("/export", "/static"),
        max_bytes: int = 64 << 20,
        max_body: int = 4 << 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app, self.ttl, self.skip, self.clock = app, ttl, skip, clock
        self.max_bytes, self.max_body = max_bytes, max_body
        self._kept: OrderedDict[tuple[Any, ...], Kept] = OrderedDict()
        self._computing: dict[tuple[Any, ...], asyncio.Future[Kept]] = {}
        self._refreshing: set[asyncio.Task[None]] = set()
        self._bytes = 0  # of the bodies kept
        self._writes = 0  # bumped by every write: what was computed across one is not kept

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            self._written()
            try:
                await self.app(scope, receive, send)
            finally:
                self._written()
            return
        if scope["method"] == "HEAD" or scope["path"].startswith(self.skip):
            await self.app(scope, receive, send)
            return
        key = self._key(scope)
        kept = self._kept.get(key)
        if kept is None:
            kept, mine = await self._compute_once(key, scope)
            if kept.at < 0 and not mine:  # not kept (an error page, a cookie): not shared
                await self.app(scope, receive, send)
                return
        elif self.clock() - kept.at >= self.ttl and key not in self._computing:
            task = asyncio.create_task(self._refresh(key, scope))
            self._refreshing.add(task)
            task.add_done_callback(self._refreshing.discard)
        await send(kept.start)
        await send({"type": "http.response.body", "body": kept.body, "more_body": False})

    def _written(self) -> None:
        self._writes += 1
        self._kept.clear()
        self._bytes = 0

    @staticmethod
    def _key(scope: Scope) -> tuple[Any, ...]:
        # Host: pages hold absolute links. Cookie: a page shows forms only in a session.
        headers = dict(scope["headers"])
        return (
            scope["path"],
            scope.get("query_string", b""),
            headers.get(b"host"),
            headers.get(b"cookie"),
            headers.get(b"authorization"),
        )

    async def _compute_once(self, key: tuple[Any, ...], scope: Scope) -> tuple[Kept, bool]:
        """One computation per key at a time: requests that miss together wait for it. The
        response, and whether this call computed it."""
        running = self._computing.get(key)
        if running is not None:
            return await asyncio.shield(running), False
        future: asyncio.Future[Kept] = asyncio.get_running_loop().create_future()
        self._computing[key] = future
        try:
            kept = await self._capture(key, scope)
            future.set_result(kept)
            return kept, True
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        finally:
            del self._computing[key]

    async def _refresh(self, key: tuple[Any, ...], scope: Scope) -> None:
        try:
            await self._compute_once(key, scope)
        except Exception:  # the kept copy stays; the next request after ttl tries again
            log.exception("refreshing %s failed", scope["path"])

    async def _capture(self, key: tuple[Any, ...], scope: Scope) -> Kept:
        """The app's response to this request, kept if it may be (then its `at` is when)."""
        writes = self._writes
        start: Message = {}
        chunks: list[bytes] = []
        asked = False

        async def receive() -> Message:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # a listener for disconnects waits until cancelled
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(dict(scope), receive, send)
        body = b"".join(chunks)
        headers = {k.lower() for k, _ in start.get("headers", [])}
        if (
            start.get("status") != 200
            or b"set-cookie" in headers
            or len(body) > self.max_body
            or writes != self._writes
        ):
            return Kept(-1.0, start, body)
        kept = Kept(self.clock(), start, body)
        old = self._kept.pop(key, None)
        self._bytes += len(body) - (len(old.body) if old else 0)
        self._kept[key] = kept
        # Bounded in bytes however many distinct addresses (search queries) come: the oldest
        # kept go first.
        while self._bytes > self.max_bytes:
            _, dropped = self._kept.popitem(last=False)
            self._bytes -= len(dropped.body)
        return kept
