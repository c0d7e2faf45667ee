"""Key files named by environment variables (a Google service account's JSON key, an App Store
Connect .p8 key): read bounded, masked from every log and message, and a clear message when
one is missing or unreadable."""

from __future__ import annotations

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
