"""A real PostgreSQL server for the tests: the one LISTENER_TEST_POSTGRES names (a URL to a
database whose user may create databases), else one started here from Debian's `postgresql`
package in a temporary directory on 127.0.0.1 (as the `postgres` user when run as root,
since the server refuses root). Each test gets a fresh database of its own."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def _bin(name: str) -> str | None:
    """The server's own binary (Debian keeps it off PATH), else one on PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(durable: bool = False) -> Iterator[str | None]:
    """The admin URL of a running server, or None where no server can be had. Not durable
    (fsync off) unless asked: benchmarks ask, tests need no crash safety of the server."""
    if os.environ.get("LISTENER_TEST_POSTGRES"):
        yield os.environ["LISTENER_TEST_POSTGRES"]
        return
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not (initdb and pg_ctl):
        yield None
        return
    # Its own directory (pytest's are private to the user, and the server runs as postgres).
    workdir = Path(tempfile.mkdtemp(prefix="listener-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(workdir, "postgres")
    data, port = workdir / "data", _free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT, "check": True}
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres",
                    "-E", "UTF8", "--locale=C.UTF-8"], **quiet)  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {workdir} -c max_connections=200"
    if not durable:
        options += " -c fsync=off"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l",
                    str(workdir / "log"), "-w", "start"], **quiet)  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], **quiet)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new empty database on the server, dropped afterwards; its URL."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin_url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
