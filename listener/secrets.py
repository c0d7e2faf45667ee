"""Values that came from environment variables never appear in logs, the database or output.

Everything read from the environment for the config (`${NAME}`), a collector's credentials or
the web token is registered here. From then on:

- every log record is masked as it is made, whichever library logs it (urllib3 at -vv logs
  `POST /services/T0/B0/XXXX`, the path of a Slack webhook, which is its secret);
- `mask()` hides secrets in text that is stored or shown (errors, URLs);
- URLs that must be fetched again are stored with `${NAME}` in place of the value
  (`mask_env()`), and `reveal()` puts the current value back only for registered names.

Values shorter than MIN_SECRET_CHARS are not masked: they are not secrets, and masking them
would hide ordinary words and numbers throughout the logs.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import traceback
from typing import Any
from urllib.parse import urlsplit

MIN_SECRET_CHARS = 8
_PIECE_MIN_CHARS = 8

_lock = threading.Lock()
_replacement: dict[str, str] = {}  # secret text -> what is shown instead
_env_names: dict[str, str] = {}  # whole value -> NAME, for mask_env/reveal
_pattern: re.Pattern[str] | None = None
_env_pattern: re.Pattern[str] | None = None
_installed = False
_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _secret_like(piece: str) -> bool:
    # Tokens are long, and usually mix digits or cases; path words such as "services" are not.
    return len(piece) >= _PIECE_MIN_CHARS and (
        any(c.isdigit() for c in piece)
        or len(piece) >= 16
        or (any(c.isupper() for c in piece) and any(c.islower() for c in piece))
    )


def _pieces(value: str) -> set[str]:
    """The parts of a URL-like secret that a library may log on their own."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return set()
    if not parts.scheme or "://" not in value:
        return set()
    if parts.scheme in ("http", "https"):
        candidates = [
            parts.path,
            parts.query,
            parts.fragment,
            parts.username or "",
            parts.password or "",
            *re.split(r"[/?&=#;]+", f"{parts.path}?{parts.query}"),
        ]
    else:  # Apprise URLs (slack://, tgram://, discord://): the "host" is often the token
        candidates = re.split(r"[/:@?&=#;]+", value.split("://", 1)[1])
    return {p for p in candidates if _secret_like(p) and p != value}


def register(name: str, value: str | None, *, from_env: bool = True) -> None:
    """Treat value (and its token-like parts) as secret from now on."""
    global _pattern, _env_pattern
    if not value or len(value) < MIN_SECRET_CHARS:
        return
    with _lock:
        if _replacement.get(value) and (not from_env or value in _env_names):
            return
        _replacement[value] = f"${{{name}}}" if from_env else "***"
        if from_env:
            _env_names[value] = name
        for piece in _pieces(value):
            _replacement.setdefault(piece, "***")
        _pattern = _alternation(_replacement)
        _env_pattern = _alternation(_env_names)
    _install_log_masking()


def register_env(name: str) -> str | None:
    """os.environ[name] (None if unset), registered as a secret."""
    value = os.environ.get(name)
    register(name, value)
    return value


def _alternation(keys: dict[str, str]) -> re.Pattern[str] | None:
    if not keys:
        return None
    return re.compile("|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True)))


def mask(text: str | None) -> str | None:
    """text with every registered secret, and every token-like part of one, hidden."""
    if not text or _pattern is None:
        return text
    return _pattern.sub(lambda m: _replacement[m.group(0)], text)


def mask_env(text: str | None) -> str | None:
    """text with whole secrets replaced by ${NAME} (literal ${ escaped), for reveal()."""
    if not text:
        return text
    text = text.replace("${", "$${")
    if _env_pattern is None:
        return text
    return _env_pattern.sub(lambda m: f"${{{_env_names[m.group(0)]}}}", text)


def reveal(text: str | None) -> str | None:
    """Undo mask_env with the current environment: only registered names are expanded, so
    a URL that arrived with a literal ${SOMETHING} in it never pulls a variable out."""
    if not text or "${" not in text:
        return text
    known = set(_env_names.values())

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name is None:
            return "${"
        if name in known and name in os.environ:
            return os.environ[name]
        return m.group(0)

    return _REF.sub(one, text)


def _install_log_masking() -> None:
    """Mask every log record at creation, so no handler or formatter ever sees a secret."""
    global _installed
    if _installed:
        return
    _installed = True
    make = logging.getLogRecordFactory()

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let logging report it as usual
            return record
        record.msg, record.args = mask(message), None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = mask(
                "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            )
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return record

    logging.setLogRecordFactory(masked_record)
