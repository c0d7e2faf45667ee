"""Time helpers. Every stored time is UTC ISO 8601 text, so it sorts and reads the same anywhere."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, overload

from pydantic import BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def iso(dt: datetime) -> str: ...
@overload
def iso(dt: None) -> None: ...
@overload
def iso(dt: datetime | None) -> str | None: ...
def iso(dt: datetime | None) -> str | None:
    """Render an aware datetime as UTC ISO 8601 with seconds precision."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="seconds")


@overload
def parse_iso(value: str) -> datetime: ...
@overload
def parse_iso(value: None) -> None: ...
@overload
def parse_iso(value: str | None) -> datetime | None: ...
def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def time_or_none(value: object) -> datetime | None:
    """A time from outside (ISO 8601 text, Unix seconds or a struct_time-like tuple), as an
    aware datetime that exists in UTC, or None when it is missing or impossible."""
    try:
        if isinstance(value, datetime):
            dt = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            dt = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str) and value.strip():
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        elif isinstance(value, tuple) and len(value) >= 6:
            dt = datetime(*value[:6], tzinfo=UTC)  # type: ignore[misc]
        else:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        dt.astimezone(UTC)  # year 1 or 9999 with an offset overflows here
        return dt
    except (ValueError, OverflowError, OSError, TypeError):
        return None


def parse_duration(value: str | int | float) -> timedelta:
    """'90', '15m', '1.5h', '2d' -> timedelta. A bare number is seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration; use e.g. 30s, 15m, 1h or 1d")
        seconds = float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return timedelta(seconds=seconds)


def _as_duration(value: object) -> timedelta:
    return value if isinstance(value, timedelta) else parse_duration(value)  # type: ignore[arg-type]


# A config field written as 30s, 15m, 1h, 2d or seconds.
Duration = Annotated[timedelta, BeforeValidator(_as_duration)]
