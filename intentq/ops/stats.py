"""``letter_stats``: how many dead letters, by tool and by reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from intentq.dlq.base import DeadLetterStore, LetterFilter


@dataclass
class LetterStats:
    """Counts over the letters a filter selects."""

    total: int = 0
    by_tool: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    by_tool_reason: Counter[tuple[str, str]] = field(default_factory=Counter)
    oldest: datetime | None = None
    newest: datetime | None = None


def letter_stats(dlq: DeadLetterStore, filter: LetterFilter | None = None) -> LetterStats:
    """One pass over the matching letters (page by page); letters without a tool count as ``-``."""
    stats = LetterStats()
    for letter in dlq.iter(filter):
        tool, reason = letter.tool or "-", str(letter.reason)
        stats.total += 1
        stats.by_tool[tool] += 1
        stats.by_reason[reason] += 1
        stats.by_tool_reason[(tool, reason)] += 1
        if letter.dead_at is not None:
            if stats.oldest is None or letter.dead_at < stats.oldest:
                stats.oldest = letter.dead_at
            if stats.newest is None or letter.dead_at > stats.newest:
                stats.newest = letter.dead_at
    return stats
