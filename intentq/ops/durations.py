"""Durations (``30s``, ``5m``, ``2h``, ``7d``) and instants (a duration ago, or ISO 8601)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*\Z", re.IGNORECASE)
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> timedelta:
    """``90``, ``30s``, ``5m``, ``2h``, ``7d``, ``1w`` -> a ``timedelta``; ``ValueError`` else."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration: use a number with s, m, h, d or w (7d)")
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2].lower()])


def parse_instant(text: str, now: datetime | None = None) -> datetime:
    """A duration ago (``2h`` = two hours before ``now``) or an ISO 8601 time (UTC if naive)."""
    now = now or datetime.now(UTC)
    if _DURATION.match(text):
        return now - parse_duration(text)
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (2h, 7d) nor an ISO time (2026-11-29T06:00:00Z)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
