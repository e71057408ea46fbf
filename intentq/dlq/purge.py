"""Purge dead letters by id, by age or all of them; returns how many went.

A purge by age or of all letters deletes in batches (on SQL, one transaction each) and
reports progress after each: memory holds one batch, and a purge stopped anywhere is
finished by running it again, which finds only the letters left.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from intentq.dlq.base import DeadLetterStore, LetterFilter

_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*\Z", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Letters deleted per batch by a purge by age or of all letters.
PURGE_BATCH = 1000


def parse_age(text: str) -> timedelta:
    """``"90s"``, ``"30m"``, ``"12h"``, ``"7d"``, ``"2w"`` -> a ``timedelta``; ``ValueError`` else.

    The unit is required: a bare ``7`` could mean seconds or days, and purging by the wrong
    one deletes letters meant to stay. ``intentq.ops.parse_duration`` is this same function.
    """
    match = _AGE.match(text)
    if match is None:
        raise ValueError(f"not an age: {text!r} (a number with a unit: e.g. 90s, 30m, 12h, 7d, 2w)")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2].lower()])


def purge(
    dlq: DeadLetterStore,
    *,
    ids: Sequence[str] = (),
    older_than: timedelta | None = None,
    all_letters: bool = False,
    filter: LetterFilter | None = None,
    now: datetime | None = None,
    batch_size: int = PURGE_BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Delete the letters named by exactly one of ``ids``, ``older_than`` or ``all_letters``.

    ``older_than`` removes letters dead before ``now - older_than``; ``filter`` narrows
    ``older_than`` and ``all_letters`` further (a tool, a reason). Returns the number deleted;
    ``on_progress`` gets the number deleted so far after each batch.
    """
    chosen = sum([bool(ids), older_than is not None, all_letters])
    if chosen != 1:
        raise ValueError("purge takes exactly one of: ids, older_than, all_letters")
    base = filter or LetterFilter()
    if ids:
        return dlq.delete_many(LetterFilter(ids=tuple(ids)))
    if older_than is not None:
        if older_than < timedelta(0):
            raise ValueError("older_than must not be negative")
        cutoff = (now or datetime.now(UTC)) - older_than
        until = min(cutoff, base.until) if base.until is not None else cutoff
        base = replace(base, until=until)
    deleted = 0
    for step in dlq.delete_in_batches(base, batch_size):
        deleted += step
        if on_progress is not None:
            on_progress(deleted)
    return deleted
