"""Workers: processes that share one database and never do the same work twice.

Every `listener run` and `listener collect --once` is a worker with an id
(`host~pid-namespace:pid:random`) and roles: `collect` (fetch due sources), `score` (run the
model on unscored mentions) and `deliver` (inbox, alert rules, notifications). Work is
claimed in the database with a lease, an owner and an expiry (storage's WorkRepository):

- a due source is held by one worker from claim to the transaction that stores its fetch, which
  also ends the lease; a worker whose lease lapsed and was taken over stores nothing (LeaseLost);
- a mention is scored by one worker at a time; the scores and the end of the claim are written
  in one transaction;
- the alert pass runs on one worker at a time (a singleton task lease), and each delivery is
  claimed by a conditional write before it is sent, so no alert goes out twice.

A worker renews its leases every third of the lease time (its heartbeat). A worker that dies
stops renewing: after one lease time (60 s by default) any other worker takes its work over.
One that died on this host is noticed at once (its pid is gone), so a restart after `kill -9`
does not wait for the lease to lapse.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType

from listener.storage import Storage
from listener.timeutil import utcnow

log = logging.getLogger("listener")

ROLES = ("collect", "score", "deliver")
DEFAULT_LEASE = timedelta(seconds=60)
ALERT_PASS = "deliver"  # the singleton task: inbox, alert rules and deliveries


@dataclass(frozen=True)
class Worker:
    id: str
    roles: frozenset[str] = field(default_factory=lambda: frozenset(ROLES))
    lease: timedelta = DEFAULT_LEASE

    @classmethod
    def here(cls, roles: Iterable[str] = ROLES, lease: timedelta = DEFAULT_LEASE) -> Worker:
        """A new worker in this process: host and pid tell a restart who died."""
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}; roles are {', '.join(ROLES)}")
        wid = f"{_place()}:{os.getpid()}:{secrets.token_hex(3)}"
        return cls(wid, frozenset(roles), lease)

    def does(self, role: str) -> bool:
        return role in self.roles

    def until(self, now: datetime) -> datetime:
        return now + self.lease

    def register(self, store: Storage, now: datetime | None = None) -> None:
        host, pid = _host_and_pid(self.id) or ("", 0)
        store.register_worker(self.id, host, pid, sorted(self.roles), now or utcnow())


def _place() -> str:
    """Where this process's pids mean something: the host name, and on Linux the pid
    namespace too (containers given the same host name do not share pids)."""
    try:
        ns = os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        ns = ""
    host = socket.gethostname().replace(":", "_")
    return f"{host}~{ns}" if ns else host


def _host_and_pid(worker: str) -> tuple[str, int] | None:
    host, _, rest = worker.rpartition(":")
    host, _, pid = host.rpartition(":")
    return (host, int(pid)) if host and pid.isdigit() and rest else None


def gone_here(worker: str) -> bool:
    """True only for a worker of this host (and pid namespace) whose process no longer
    exists. A reused pid reads as alive, which only means waiting for its lease to lapse:
    never two holders."""
    parts = _host_and_pid(worker)
    if parts is None or parts[0] != _place():
        return False
    try:
        os.kill(parts[1], 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it exists, as another user
        return False
    return False


def reap(store: Storage, now: datetime | None = None) -> list[str]:
    """Free at once what workers that died on this host held."""
    dead = [w for w in store.lease_holders() if gone_here(w)]
    if dead:
        n = store.expire_holders(dead, now or utcnow())
        log.warning(
            "%d workers on this host stopped without giving their work back (%s); "
            "%d claims freed, any send they had started is marked 'unknown'",
            len(dead),
            ", ".join(dead),
            n,
        )
    return dead


class Heartbeat:
    """Renews a worker's leases every third of the lease time, on a thread with a store of its
    own, while the worker is registered: `with Heartbeat(open_store_fn, worker): ...`."""

    def __init__(self, open_store: Callable[[], Storage], worker: Worker) -> None:
        self._open = open_store
        self.worker = worker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="listener-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        store = self._open()
        try:
            reap(store)
            self.worker.register(store)
        finally:
            store.close()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        try:
            store = self._open()
            try:
                store.unregister_worker(self.worker.id)  # what it still holds: free at once
            finally:
                store.close()
        except Exception as exc:  # the database is away: its leases lapse instead
            log.warning("could not give back this worker's work: %s", exc)

    def _run(self) -> None:
        every = self.worker.lease.total_seconds() / 3
        while not self._stop.wait(every):
            try:
                store = self._open()
                try:
                    now = utcnow()
                    store.renew_leases(self.worker.id, now, self.worker.until(now))
                    reap(store, now)
                finally:
                    store.close()
            except Exception as exc:  # the database is away: leases may lapse, work is redone
                log.warning("could not renew this worker's leases: %s", exc)
