"""``letter_stats``: how many dead letters, by tool, by reason and by age."""

from __future__ import annotations

from datetime import datetime

from intentq.dlq.base import DeadLetterStore, LetterFilter, LetterStats

__all__ = ["LetterStats", "letter_stats"]


def letter_stats(
    dlq: DeadLetterStore, filter: LetterFilter | None = None, now: datetime | None = None
) -> LetterStats:
    """The store's ``stats``: one aggregate query on SQL, one pass over the letters elsewhere."""
    return dlq.stats(filter, now)
