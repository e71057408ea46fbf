"""Letter filters evaluated in Python (memory and SQS backends)."""

from __future__ import annotations

from intentq.dlq.base import DeadLetter, LetterFilter


def matches(letter: DeadLetter, f: LetterFilter | None) -> bool:
    """Whether ``letter`` passes every condition ``f`` sets."""
    if f is None:
        return True
    if f.ids and letter.id not in f.ids:
        return False
    if f.tool is not None and letter.tool != f.tool:
        return False
    if f.reason is not None and letter.reason != f.reason:
        return False
    if f.error_type is not None and letter.error_type != f.error_type:
        return False
    dead_at = letter.dead_at
    if f.since is not None and (dead_at is None or dead_at < f.since):
        return False
    return not (f.until is not None and (dead_at is None or dead_at >= f.until))
