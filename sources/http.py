"""The HTTP side of feed-like collectors: conditional GET, bounded size and time, clear errors.

Every response body is decoded here, not by httpx, so that the size cap counts decoded bytes
however many compression layers a server stacks (more than two are refused), and memory stays
bounded while decoding a bomb. The socket layer (sources.net) adds the total deadline and the
address check.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from listener import USER_AGENT
from listener.textnorm import clean, html_to_text
from listener.timeutil import utcnow
from sources.base import FetchError
from sources.net import (
    AddressRefused,
    Dialer,
    GuardedBackend,
    Resolver,
    deadline,
    system_dialer,
    system_resolver,
)

MAX_BODY_BYTES = 20 * 1024 * 1024
TOTAL_TIMEOUT_S = 60.0
MAX_ENCODING_LAYERS = 2
_PERMANENT = (301, 308)
_PIECE = 64 * 1024  # decoded bytes produced per step: the most a bomb gets to allocate at once


class FetchClient(httpx.Client):
    """An httpx client whose connections go through a GuardedBackend."""

    backend: GuardedBackend

    def abort(self) -> int:
        """Cut every connection in flight and refuse new ones (for shutdown)."""
        return self.backend.abort()


def make_client(
    timeout_s: float = 20.0,
    *,
    allow_private: bool = True,
    resolver: Resolver = system_resolver,
    dialer: Dialer = system_dialer,
) -> FetchClient:
    client = FetchClient(
        timeout=httpx.Timeout(timeout_s, connect=10.0),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"},
        follow_redirects=True,
        max_redirects=5,
    )
    client.backend = GuardedBackend(allow_private=allow_private, resolver=resolver, dialer=dialer)
    # httpx builds one transport per proxy from the environment; each gets our backend, so a
    # proxied fetch is bounded in time too (its address check applies to the proxy).
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if pool is not None:
            if not hasattr(pool, "_network_backend"):
                raise RuntimeError("this httpcore version cannot take a network backend")
            pool._network_backend = client.backend
    return client


@contextmanager
def client_or_own(client: httpx.Client | None, *, allow_private: bool) -> Iterator[httpx.Client]:
    """The caller's client, or one of our own for the duration of the block, closed after."""
    if client is not None:
        yield client
        return
    with make_client(allow_private=allow_private) as own:
        yield own


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
        return timedelta(seconds=min(int(value), 30 * 86400))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(when - utcnow(), timedelta(0)), timedelta(days=30))


class _Inflater:
    """One Content-Encoding layer (gzip or deflate), decoded in bounded pieces."""

    def __init__(self, encoding: str) -> None:
        self.gzip = encoding in ("gzip", "x-gzip")
        self._raw_fallback = not self.gzip  # HTTP deflate is zlib-wrapped, sometimes raw
        self._d = self._new()

    def _new(self, raw: bool = False) -> Any:
        return zlib.decompressobj(
            16 + zlib.MAX_WBITS if self.gzip else -zlib.MAX_WBITS if raw else zlib.MAX_WBITS
        )

    def decode(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            yield from self._feed(chunk)
        while out := self._d.decompress(b"", _PIECE):
            yield out
        if tail := self._d.flush():
            yield tail

    def _feed(self, data: bytes) -> Iterator[bytes]:
        while True:
            try:
                out = self._d.decompress(data, _PIECE)
            except zlib.error:
                if not self._raw_fallback:
                    raise
                self._raw_fallback = False
                self._d = self._new(raw=True)
                out = self._d.decompress(data, _PIECE)
            self._raw_fallback = False
            if out:
                yield out
            data = self._d.unconsumed_tail
            if self._d.eof:
                rest = self._d.unused_data
                if not (rest and self.gzip):
                    return  # anything after the end of the stream is ignored
                self._d, data = self._new(), rest  # a multi-member gzip body
            elif not data and len(out) < _PIECE:
                return


def _encodings(response: httpx.Response, url: str) -> list[str]:
    found = [
        e.strip().lower() for e in response.headers.get_list("content-encoding", split_commas=True)
    ]
    layers = [e for e in found if e and e != "identity"]
    if len(layers) > MAX_ENCODING_LAYERS:
        raise FetchError(
            f"{url}: refused: Content-Encoding stacks {len(layers)} layers "
            f"({', '.join(layers)}); at most {MAX_ENCODING_LAYERS} are accepted"
        )
    unknown = [e for e in layers if e not in ("gzip", "x-gzip", "deflate")]
    if unknown:
        raise FetchError(
            f"{url}: unsupported Content-Encoding {', '.join(unknown)} "
            "(gzip and deflate are asked for)"
        )
    return layers


def _read_body(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    too_big = FetchError(f"{url}: response is larger than {max_bytes // (1024 * 1024)} MB")
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_big
    stream: Iterable[bytes] = response.iter_raw()
    for encoding in reversed(_encodings(response, url)):
        stream = _Inflater(encoding).decode(stream)
    chunks: list[bytes] = []
    size = 0
    try:
        for piece in stream:
            size += len(piece)
            if size > max_bytes:
                raise too_big
            chunks.append(piece)
    except zlib.error as exc:
        raise FetchError(f"{url}: response body does not decompress ({exc})") from None
    return b"".join(chunks)


def conditional_get(
    client: httpx.Client,
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int | None = None,
    total_timeout_s: float | None = None,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    """GET with If-None-Match/If-Modified-Since. Raises FetchError for anything but 200/304.

    Connecting, TLS, headers and body share one deadline of total_timeout_s."""
    sent = dict(headers or {})
    if etag:
        sent["If-None-Match"] = etag
    if last_modified:
        sent["If-Modified-Since"] = last_modified
    return request(client, "GET", url, headers=sent, max_bytes=max_bytes, timeout_s=total_timeout_s)


def request(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    form: dict[str, str] | None = None,
    max_bytes: int | None = None,
    timeout_s: float | None = None,
    api: bool = False,
) -> HttpResponse:
    """One request under the limits of every fetch: a bounded body, one deadline for
    connecting, TLS, headers and body, and FetchError naming the URL for anything but
    200/304. `api`: any 2xx is an answer, and a refusal's message quotes the start of the
    API's own explanation ("Validation failed: ...")."""
    max_bytes = max_bytes or MAX_BODY_BYTES
    total_timeout_s = timeout_s or TOTAL_TIMEOUT_S
    backend = getattr(client, "backend", None)
    started = time.monotonic()
    try:
        with (
            deadline(total_timeout_s),
            client.stream(method, url, headers=headers, json=json_body, data=form) as response,
        ):
            if api and 200 <= response.status_code < 300:
                pass
            elif api and response.status_code >= 400:
                _raise_for_status(response, url, _explanation(response, url))
            else:
                _raise_for_status(response, url)
            body = _read_body(response, url, max_bytes)
    except AddressRefused as exc:
        raise FetchError(f"{url}: {exc}") from None
    except httpx.TooManyRedirects:
        raise FetchError(f"{url}: too many redirects") from None
    except httpx.InvalidURL as exc:
        raise FetchError(f"{url}: invalid URL ({exc})") from None
    except (httpx.HTTPError, httpx.StreamError) as exc:
        if backend is not None and backend.aborted.is_set():
            raise FetchError(
                f"{url}: stopped: listener is shutting down", interrupted=True
            ) from None
        if isinstance(exc, httpx.TimeoutException) and (
            time.monotonic() - started >= total_timeout_s - 0.05
        ):
            raise FetchError(
                f"{url}: no complete response within {total_timeout_s:g} s "
                "(the total time limit for one fetch)"
            ) from None
        if isinstance(exc, httpx.TimeoutException):
            raise FetchError(f"{url}: timed out ({type(exc).__name__})") from None
        raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from None
    history = response.history
    permanent = (
        str(response.url) if history and all(r.status_code in _PERMANENT for r in history) else None
    )
    return HttpResponse(response.status_code, str(response.url), permanent, response.headers, body)


ERROR_DETAIL_BYTES = 16 * 1024  # of an API's error body read for its message
ERROR_DETAIL_CHARS = 300


def _explanation(response: httpx.Response, url: str) -> str:
    """The API's own words for a refusal, from its (JSON) error body, cleaned and short."""
    try:
        body = _read_body(response, url, ERROR_DETAIL_BYTES)
        doc = json.loads(body)
    except (FetchError, ValueError, RecursionError):
        return ""
    parts: list[str] = []
    if isinstance(doc, dict):
        for key in ("error", "message", "error_description", "detail", "title"):
            if isinstance(doc.get(key), str):
                parts.append(doc[key])
        errors = doc.get("errors")  # JSON:API (App Store Connect)
        for err in errors if isinstance(errors, list) else []:
            if isinstance(err, dict):
                parts += [str(err[k]) for k in ("title", "detail", "message") if err.get(k)]
        if isinstance(doc.get("error"), dict):  # Google's {"error": {"message": ...}}
            parts.append(str(doc["error"].get("message") or ""))
    text = " ".join(" ".join(p for p in parts if p).split())
    if "<" in text:  # Google writes markup into its messages ("your <a href=...>quota</a>")
        text = html_to_text(text)
    return clean(text)[:ERROR_DETAIL_CHARS]


def _raise_for_status(response: httpx.Response, url: str, detail: str = "") -> None:
    status = response.status_code
    if status in (200, 304):
        return
    reason = response.reason_phrase or ""
    if detail:
        reason = f"{reason}: {detail}" if reason else detail
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


def get_json(client: httpx.Client, url: str, headers: dict[str, str] | None = None) -> Any:
    """GET a JSON API with the same limits and errors as feeds."""
    return _json(conditional_get(client, url, headers=headers), url)


def post_json(
    client: httpx.Client, url: str, payload: Any, headers: dict[str, str] | None = None
) -> Any:
    """POST JSON to an API and read its JSON answer, under the same limits."""
    return _json(request(client, "POST", url, headers=headers, json_body=payload), url)


def call_api(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    form: dict[str, str] | None = None,
) -> Any:
    """A call to a JSON API (any 2xx is an answer): its JSON, or None for an empty body. A
    refusal's FetchError quotes the API's explanation."""
    response = request(
        client, method, url, headers=headers, json_body=json_body, form=form, api=True
    )
    return _json(response, url) if response.body.strip() else None


def _json(response: HttpResponse, url: str) -> Any:
    try:
        return json.loads(response.body)
    except (ValueError, RecursionError) as exc:
        raise FetchError(f"{url}: response is not JSON ({exc})") from None
