"""Durations (``30s``, ``5m``, ``2h``, ``7d``) and instants (a duration ago, or ISO 8601)."""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime

from intentq.dlq.purge import parse_age

# One parser for every duration: a number with a unit (s, m, h, d, w).
parse_duration = parse_age


def parse_instant(text: str, now: datetime | None = None) -> datetime:
    """A duration ago (``2h`` = two hours before ``now``) or an ISO 8601 time (UTC if naive)."""
    now = now or datetime.now(UTC)
    with suppress(ValueError):
        return now - parse_duration(text)
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (2h, 7d) nor an ISO time (2026-11-29T06:00:00Z)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
