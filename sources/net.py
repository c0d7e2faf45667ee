"""The socket layer under every feed and JSON fetch: which address is dialled, and for how long.

Two guarantees live here rather than in httpx event hooks, because only the code that opens the
socket knows them for sure:

- **The address checked is the address dialled.** A name is resolved once; with
  `network.allow_private_addresses: false` every address it resolves to must be globally
  reachable, a failed lookup refuses the request (fail closed), and the socket connects to the
  checked address itself. (Checking in a hook and letting httpx resolve again lets a DNS server
  that answers differently the second time, DNS rebinding, reach 127.0.0.1.)
- **One total deadline per fetch** (connect, TLS, headers and body together). Every socket
  operation waits at most the time left, so a server that sends a byte every few seconds cannot
  stretch a fetch past it; `abort()` cuts every open connection at once, for shutdown.
"""

from __future__ import annotations

import contextvars
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
Dialer = Callable[[str, int, "float | None", "str | None", Iterable[Any]], httpcore.NetworkStream]

# What Python's copy of IANA's special-purpose registries (ipaddress.is_global) lacks in 3.11:
# the whole IETF protocol block, the deprecated 6to4 relay anycast, local-use NAT64 (RFC 8215)
# and SRv6 SIDs. Multicast counts as "global" there but is never a feed server.
_EXTRA_SPECIAL = [
    ipaddress.ip_network(n)
    for n in ("192.0.0.0/24", "192.88.99.0/24", "64:ff9b:1::/48", "5f00::/16")
]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(Exception):
    """The target resolved to an address listener was told not to reach, or did not resolve."""


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo server-side, NAT64)."""
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Globally reachable unicast: not loopback, private, link-local, shared (100.64/10, cloud
    metadata at 100.100.100.200 included), documentation, reserved or multicast; IPv6 forms
    that carry an IPv4 address are judged by that address."""
    if address.is_multicast or not address.is_global:
        return False
    if any(address in net for net in _EXTRA_SPECIAL if net.version == address.version):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public(inner)
    return True


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for info in infos:
        seen.setdefault(str(info[4][0]).split("%")[0], None)  # keep DNS order, drop dupes
    return list(seen)


_SYNC = httpcore.SyncBackend()


def system_dialer(
    ip: str,
    port: int,
    timeout: float | None,
    local_address: str | None,
    socket_options: Iterable[Any],
) -> httpcore.NetworkStream:
    return _SYNC.connect_tcp(ip, port, timeout, local_address, socket_options)


# --- the per-fetch deadline ------------------------------------------------------------------

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "listener_fetch_deadline", default=None
)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every socket operation of this thread's requests inside the block shares one budget."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    end = _deadline.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise expired("the fetch's total time limit was reached")
    return left if timeout is None else min(timeout, left)


# --- the backend httpx's connection pool dials through ------------------------------------------


class GuardedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, backend: GuardedBackend) -> None:
        self._inner = inner
        self._backend = backend
        backend._opened(self)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._backend.check_open(httpcore.ReadError)
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._backend.check_open(httpcore.WriteError)
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._backend._closed(self)
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        self._backend._closed(self)
        upgraded = self._inner.start_tls(
            ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout)
        )
        return GuardedStream(upgraded, self._backend)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def cut(self) -> None:
        """Unblock a thread waiting in recv on this connection (shutdown)."""
        sock = self._inner.get_extra_info("socket")
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore network backend: resolve once, check, dial the checked address."""

    def __init__(
        self,
        *,
        allow_private: bool = True,
        resolver: Resolver = system_resolver,
        dialer: Dialer = system_dialer,
    ) -> None:
        self.allow_private = allow_private
        self._resolve = resolver
        self._dial = dialer
        self._lock = threading.Lock()
        self._streams: set[GuardedStream] = set()
        self.aborted = threading.Event()

    def check_open(self, error: type[Exception]) -> None:
        if self.aborted.is_set():
            raise error("fetch aborted: listener is shutting down")

    def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to dial for host, in order; raises AddressRefused."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            found = [str(literal)]
        else:
            try:
                found = self._resolve(host, port)
            except (OSError, UnicodeError) as exc:
                # Fail closed: never hand the name to anything that would resolve it again.
                raise AddressRefused(f"cannot resolve {host}: {exc}") from None
            if not found:
                raise AddressRefused(f"cannot resolve {host}: no addresses")
        if not self.allow_private:
            for text in found:
                address = ipaddress.ip_address(text)
                if not is_public(address):
                    what = f"{address} is" if literal else f"{host} resolves to {address},"
                    raise AddressRefused(
                        f"refused: {what} not a public address "
                        "(network.allow_private_addresses is false)"
                    )
        return found

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        self.check_open(httpcore.ConnectError)
        last: Exception | None = None
        for ip in self.addresses(host, port):
            try:
                inner = self._dial(
                    ip,
                    port,
                    _bounded(timeout, httpcore.ConnectTimeout),
                    local_address,
                    socket_options or [],
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout, OSError) as exc:
                last = exc  # try the next address the name resolved to
                continue
            return GuardedStream(inner, self)
        if isinstance(last, httpcore.ConnectTimeout):
            raise last
        raise httpcore.ConnectError(f"cannot connect to {host}:{port}: {last}")

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise AddressRefused("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def abort(self) -> int:
        """Refuse new connections and cut the open ones; returns how many were cut."""
        self.aborted.set()
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.cut()
        return len(streams)

    def _opened(self, stream: GuardedStream) -> None:
        with self._lock:
            self._streams.add(stream)

    def _closed(self, stream: GuardedStream) -> None:
        with self._lock:
            self._streams.discard(stream)
