"""The dashboard's response cache: a page computed once per ttl, stale copies answered at once
while one fresh one is computed, and every write emptying it."""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from listener.web.response_cache import ResponseCache


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock, max_bytes: int = 1 << 20) -> tuple[TestClient, dict[str, int]]:
    state = {"version": 1, "computed": 0}

    def page(request: Request) -> PlainTextResponse:
        state["computed"] += 1
        status = 404 if request.path_params["name"] == "missing" else 200
        return PlainTextResponse(f"v{state['version']}", status_code=status)

    def write(request: Request) -> PlainTextResponse:
        state["version"] += 1
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/p/{name}", page), Route("/write", write, methods=["POST"])])
    app.add_middleware(ResponseCache, ttl=30.0, clock=clock, max_bytes=max_bytes)
    return TestClient(app), state


def test_a_page_is_computed_once_per_ttl_and_per_visitor_kind():
    client, state = make(Clock())
    with client:
        assert [client.get("/p/a").text for _ in range(5)] == ["v1"] * 5
        assert state["computed"] == 1
        client.get("/p/a", headers={"Cookie": "listener_session=x"})  # a session: other forms
        client.get("/p/a?days=7")
        assert state["computed"] == 3


def test_a_stale_page_is_answered_at_once_and_refreshed_behind():
    clock = Clock()
    client, state = make(clock)
    with client:
        client.get("/p/a")
        state["version"] = 2  # the collector stored something meanwhile
        assert client.get("/p/a").text == "v1"  # within ttl
        clock.now = 31.0
        assert client.get("/p/a").text == "v1"  # stale, answered without waiting
        deadline = time.monotonic() + 5
        while client.get("/p/a").text != "v2" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.get("/p/a").text == "v2"
        assert state["computed"] == 2


def test_a_write_empties_the_cache():
    client, _ = make(Clock())
    with client:
        assert client.get("/p/a").text == "v1"
        client.post("/write")
        assert client.get("/p/a").text == "v2"  # your own change, at once


def test_error_pages_are_not_kept():
    client, state = make(Clock())
    with client:
        assert client.get("/p/missing").status_code == 404
        assert client.get("/p/missing").status_code == 404
        assert state["computed"] == 2


def test_the_oldest_pages_go_when_the_kept_bytes_would_pass_the_cap():
    client, state = make(Clock(), max_bytes=4)  # two 2-byte bodies ("v1")
    with client:
        for name in ("a", "b", "c"):
            client.get(f"/p/{name}")
        client.get("/p/c")
        client.get("/p/b")
        assert state["computed"] == 3  # b and c kept
        client.get("/p/a")
        assert state["computed"] == 4  # a had gone
