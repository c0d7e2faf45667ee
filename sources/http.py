"""The HTTP side of feed-like collectors: conditional GET, bounded size and time, clear errors."""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from listener import USER_AGENT
from listener.timeutil import utcnow
from sources.base import FetchError

MAX_BODY_BYTES = 20 * 1024 * 1024
TOTAL_TIMEOUT_S = 60.0
_PERMANENT = (301, 308)


def refuse_private(request: httpx.Request) -> None:
    """For configs written by someone else: never fetch loopback, private, link-local or
    other internal addresses (checked on every request, redirects included)."""
    host = request.url.host
    try:
        infos = socket.getaddrinfo(host, request.url.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return  # the request itself will fail with a clear DNS error
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (address.is_private or address.is_loopback or address.is_link_local
                or address.is_multicast or address.is_reserved or address.is_unspecified):
            raise FetchError(f"{request.url}: refused: {address} is a loopback/private "
                             "address (network.allow_private_addresses is false)")


def make_client(timeout_s: float = 20.0, *, allow_private: bool = True) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(timeout_s, connect=10.0),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
        max_redirects=5,
        event_hooks={"request": [] if allow_private else [refuse_private]},
    )


@dataclass
class HttpResponse:
    status: int
    url: str  # after redirects
    permanent_url: str | None  # set when every redirect on the way was permanent
    headers: httpx.Headers
    body: bytes


def parse_retry_after(value: str | None) -> timedelta | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when - utcnow(), timedelta(0))


def conditional_get(
    client: httpx.Client,
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int | None = None,
    total_timeout_s: float | None = None,
) -> HttpResponse:
    """GET with If-None-Match/If-Modified-Since. Raises FetchError for anything but 200/304."""
    max_bytes = max_bytes or MAX_BODY_BYTES
    total_timeout_s = total_timeout_s or TOTAL_TIMEOUT_S
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    deadline = time.monotonic() + total_timeout_s
    try:
        with client.stream("GET", url, headers=headers) as response:
            _raise_for_status(response, url)
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(
                        f"{url}: response is larger than {max_bytes // (1024 * 1024)} MB"
                    )
                if time.monotonic() > deadline:
                    raise FetchError(f"{url}: body still arriving after {total_timeout_s:.0f} s")
                chunks.append(chunk)
    except httpx.TooManyRedirects:
        raise FetchError(f"{url}: too many redirects") from None
    except httpx.TimeoutException as exc:
        raise FetchError(f"{url}: timed out ({type(exc).__name__})") from None
    except httpx.InvalidURL as exc:
        raise FetchError(f"{url}: invalid URL ({exc})") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from None
    history = response.history
    permanent = (
        str(response.url)
        if history and all(r.status_code in _PERMANENT for r in history)
        else None
    )
    return HttpResponse(
        response.status_code, str(response.url), permanent, response.headers, b"".join(chunks)
    )


def _raise_for_status(response: httpx.Response, url: str) -> None:
    status = response.status_code
    if status in (200, 304):
        return
    reason = response.reason_phrase or ""
    if status in (429, 503):
        raise FetchError(
            f"{url}: HTTP {status} {reason}; backing off",
            http_status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status == 410:
        raise FetchError(
            f"{url}: HTTP 410 Gone; the feed was removed, so this source is disabled. "
            "Remove it from sources.yaml or give it a new url.",
            http_status=status,
            disable=True,
        )
    raise FetchError(f"{url}: HTTP {status} {reason}", http_status=status)


def get_json(client: httpx.Client, url: str) -> Any:
    """GET a JSON API with the same limits and errors as feeds."""
    response = conditional_get(client, url)
    try:
        return json.loads(response.body)
    except ValueError as exc:
        raise FetchError(f"{url}: response is not JSON ({exc})") from None
