"""A real uvicorn server on a loopback port, for tests that use the web app over HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

# Requests to the app under test: a busy CI machine may take many seconds to answer, and that
# is not what these tests check (httpx's default would fail them after 5 s).
http = httpx.Client(timeout=httpx.Timeout(120.0))


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Run app until the block ends; yields its base URL."""
    port = free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the web server did not start"
    try:
        yield f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def sign_in(page: Any, base: str, name: str, token: str) -> None:
    """Sign a Playwright page in through the sign-in form, as a person does."""
    page.goto(base + "/signin")
    page.fill("#signin input[name=name]", name)
    page.fill("#signin input[name=token]", token)
    page.click("#signin button")
    page.wait_for_selector("#who")
