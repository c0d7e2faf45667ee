"""Misbehaving servers on loopback, each bounded in time so a test can never hang on one."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def dribbling_server(
    *, send_headers_slowly: bool = True, every: float = 0.2, give_up_after: float = 30.0
) -> Iterator[str]:
    """Accepts connections and answers one byte at a time (a header line that never ends),
    or, with send_headers_slowly=False, never answers at all. Yields its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    stop = threading.Event()
    connections: list[socket.socket] = []

    def handle(conn: socket.socket) -> None:
        end = time.monotonic() + give_up_after
        try:
            conn.settimeout(2)
            conn.recv(65536)  # the request
            if send_headers_slowly:
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not stop.is_set() and time.monotonic() < end:
                if send_headers_slowly:
                    conn.sendall(b"a")
                time.sleep(every)
        except OSError:
            pass  # the client hung up: what we wanted
        finally:
            conn.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connections.append(conn)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/feed.xml"
    finally:
        stop.set()
        listener.close()
        thread.join(5)
