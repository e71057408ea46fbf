"""An in-process dead-letter store for unit tests and the demo."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime

from intentq.dlq.base import ANY_LETTER, DeadLetter, DeadLetterStore, LetterFilter, Page
from intentq.errors import LetterNotFound
from intentq.intent import new_intent_id


def _utc(value: datetime | None) -> datetime | None:
    """Aware UTC, as the other backends give times back (a naive time is taken as UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class MemoryDeadLetterStore(DeadLetterStore):
    """Letters in a dict, ordered by their time-ordered ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._letters: dict[str, DeadLetter] = {}

    def put(self, letter: DeadLetter) -> str:
        with self._lock:
            letter_id = letter.id or new_intent_id()
            now = datetime.now(UTC)
            self._letters[letter_id] = replace(
                letter,
                id=letter_id,
                dead_at=_utc(letter.dead_at) or now,
                first_seen=_utc(letter.first_seen or letter.dead_at) or now,
                last_replayed_at=_utc(letter.last_replayed_at),
            )
            return letter_id

    def list(
        self, filter: LetterFilter | None = None, limit: int = 100, cursor: str | None = None
    ) -> Page:
        with self._lock:
            ids = sorted(i for i in self._letters if cursor is None or i > cursor)
            wanted = filter or ANY_LETTER
            found = [self._letters[i] for i in ids if wanted.matches(self._letters[i])]
        page = found[:limit]
        more = len(found) > limit
        return Page([replace(x) for x in page], page[-1].id if more and page else None)

    def get(self, letter_id: str) -> DeadLetter:
        with self._lock:
            try:
                return replace(self._letters[letter_id])
            except KeyError:
                raise LetterNotFound(letter_id) from None

    def count(self, filter: LetterFilter | None = None) -> int:
        with self._lock:
            return sum(1 for x in self._letters.values() if (filter or ANY_LETTER).matches(x))

    def delete(self, letter_id: str) -> bool:
        with self._lock:
            return self._letters.pop(letter_id, None) is not None

    def mark_replayed(self, letter_id: str) -> DeadLetter:
        with self._lock:
            if letter_id not in self._letters:
                raise LetterNotFound(letter_id)
            letter = self._letters[letter_id]
            letter = replace(
                letter, replay_count=letter.replay_count + 1, last_replayed_at=datetime.now(UTC)
            )
            self._letters[letter_id] = letter
            return replace(letter)
