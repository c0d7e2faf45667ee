"""Key files named by environment variables (a Google service account's JSON key, an App Store
Connect .p8 key): read bounded, masked from every log and message, and a clear message when
one is missing or unreadable."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path

from listener import secrets
from sources.base import FetchError

MAX_KEY_FILE_BYTES = 64 * 1024


class KeyProblem(FetchError):
    """The key is not set, not readable or not a key of the right kind: a setting to fix, not
    something a retry cures."""


def key_from_env(endpoint: str, env: str, how_to_get: str, *, inline_prefix: str = "") -> str:
    """The key the environment variable `env` names: the path of a key file or, where
    `inline_prefix` is given and the value starts with it, the key itself (as CI secret
    stores hand keys over)."""
    where = secrets.register_env(env)
    if not where:
        raise KeyProblem(f"{endpoint}: set {env} to {how_to_get}")
    if inline_prefix and where.lstrip().startswith(inline_prefix):
        return where.strip()
    path = Path(where).expanduser()
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_KEY_FILE_BYTES + 1)
        if len(raw) > MAX_KEY_FILE_BYTES:
            raise ValueError("larger than any key file")
        text = raw.decode("utf-8")
    except (OSError, ValueError) as exc:
        raise KeyProblem(
            f"{endpoint}: cannot read the key file named by {env} ({type(exc).__name__})"
        ) from None
    secrets.register(f"{env} key", text.strip(), from_env=False)
    return text


class TokenCache:
    """Access tokens in memory per key (an account, a key id), each kept until `margin_s`
    before it expires. One is made at a time, so two threads never sign in twice."""

    def __init__(self, margin_s: float) -> None:
        self.margin_s = margin_s
        self._lock = threading.Lock()
        self._held: dict[Hashable, tuple[str, float]] = {}

    def get(self, key: Hashable, make: Callable[[], tuple[str, float]]) -> str:
        """The held token, or `make()`'s (token, lifetime in seconds), kept."""
        with self._lock:
            held = self._held.get(key)
            if held and held[1] > time.monotonic() + self.margin_s:
                return held[0]
            token, lifetime_s = make()
            self._held[key] = (token, time.monotonic() + lifetime_s)
            return token

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._held.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._held.clear()
