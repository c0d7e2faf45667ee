"""Sign-in for writes: a person gives their name and the token (LISTENER_WEB_TOKEN) once, and
gets a signed session cookie that names them for 12 hours; every change they make is audited
under that name. Forms carry the session's CSRF value, so a page elsewhere cannot make a signed-in
browser change anything even where SameSite cookies are not enforced.

The signing key is derived from the token: changing LISTENER_WEB_TOKEN ends every session, and
the cookie never holds the token itself.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "listener_session"
MAX_AGE_S = 12 * 3600  # a working day; then sign in again
NAME = re.compile(r"[^\x00-\x1f\x7f<>\"'&]{1,60}")  # shown in pages and the audit log


@dataclass(frozen=True)
class Session:
    name: str
    csrf: str

    @property
    def actor(self) -> str:
        return f"web:{self.name}"


class Sessions:
    """Issues and reads session cookies against the token in `env` (read at each call, so a
    changed or removed token takes effect at once)."""

    def __init__(self, env: str) -> None:
        self.env = env

    def enabled(self) -> bool:
        return bool(os.environ.get(self.env))

    def token_ok(self, given: str | None) -> bool:
        wanted = os.environ.get(self.env)
        return bool(wanted and given and secrets.compare_digest(given.encode(), wanted.encode()))

    def _signer(self) -> URLSafeTimedSerializer | None:
        token = os.environ.get(self.env)
        if not token:
            return None
        key = hmac.new(token.encode(), b"listener web session", hashlib.sha256).digest()
        return URLSafeTimedSerializer(key, salt="listener-session")

    def issue(self, name: str) -> str:
        signer = self._signer()
        if signer is None:
            raise RuntimeError(f"no sessions without {self.env}")
        return signer.dumps({"name": name, "csrf": secrets.token_urlsafe(24)})

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie holds; None if absent, forged, expired or from another token."""
        signer = self._signer()
        if signer is None or not cookie or len(cookie) > 1000:
            return None
        try:
            data = signer.loads(cookie, max_age=MAX_AGE_S)
        except BadSignature:  # SignatureExpired is one too
            return None
        if not isinstance(data, dict):
            return None
        name, csrf = data.get("name"), data.get("csrf")
        if not isinstance(name, str) or not isinstance(csrf, str) or not NAME.fullmatch(name):
            return None
        return Session(name, csrf)

    @staticmethod
    def csrf_ok(session: Session, given: str | None) -> bool:
        return bool(given) and secrets.compare_digest(session.csrf.encode(), (given or "").encode())


def clean_name(value: str) -> str | None:
    """A sign-in name as shown and audited; None if empty, too long or carrying markup or
    control characters."""
    name = " ".join(value.split())
    return name if NAME.fullmatch(name) else None


def local_path(value: str | None, default: str = "/") -> str:
    """Where to send the browser after a form: only ever a path of this site."""
    if (
        value
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and value.isprintable()
        and len(value) <= 2000
    ):
        return value
    return default


class Throttle:
    """Failed sign-ins per client: after `limit` in `window_s` seconds, further tries are
    refused until the oldest ages out, so the token cannot be guessed at speed."""

    def __init__(self, limit: int = 10, window_s: float = 600.0, clients: int = 10_000) -> None:
        self.limit, self.window_s, self.clients = limit, window_s, clients
        self._fails: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        fails = self._fails.get(client, deque())
        while fails and fails[0] <= now - self.window_s:
            fails.popleft()
        return fails

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds to wait before the next try; 0 when one is allowed now."""
        now = time.monotonic() if now is None else now
        fails = self._recent(client, now)
        if len(fails) < self.limit:
            return 0
        return max(1, int(fails[0] + self.window_s - now) + 1)

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if client not in self._fails and len(self._fails) >= self.clients:
            self._fails.pop(next(iter(self._fails)))  # bounded: the oldest client goes
        fails = self._recent(client, now)
        fails.append(now)
        self._fails[client] = fails
