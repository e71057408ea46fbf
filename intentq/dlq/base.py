"""Dead letters: the record, the reasons, filters and the ``DeadLetterStore`` contract."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime


class Reason(enum.StrEnum):
    """Why a message was dead-lettered."""

    POISON = "poison"  # undecodable, oversized, not an envelope
    SCHEMA = "schema"  # arguments failed the tool's schema
    UNKNOWN_TOOL = "unknown_tool"
    KEY_REUSE_MISMATCH = "key_reuse_mismatch"  # same key, other tool/args
    EXHAUSTED = "exhausted"  # retryable failures past max_attempts, or too many receives
    PERMANENT = "permanent"  # the tool raised a non-retryable error
    CRASH_LOOP = "crash_loop"  # claims past max_attempts: the message kills its worker


@dataclass
class DeadLetter:
    """A message that will not be retried on its own; replay re-enqueues ``body`` as is."""

    id: str
    body: bytes
    reason: Reason
    tool: str | None = None
    key: str | None = None
    intent_id: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    attempts: int = 0
    source_transport: str | None = None
    source_queue: str | None = None
    first_seen: datetime | None = None
    dead_at: datetime | None = None
    replay_count: int = 0
    last_replayed_at: datetime | None = None


@dataclass(frozen=True)
class LetterFilter:
    """Which letters a list, count, replay or purge acts on; ``None`` means any."""

    tool: str | None = None
    reason: Reason | None = None
    error_type: str | None = None
    since: datetime | None = None  # dead_at >= since
    until: datetime | None = None  # dead_at < until
    ids: tuple[str, ...] = field(default=())

    def matches(self, letter: DeadLetter) -> bool:
        """Whether ``letter`` passes every condition set (for backends that filter in Python)."""
        if self.ids and letter.id not in self.ids:
            return False
        if self.tool is not None and letter.tool != self.tool:
            return False
        if self.reason is not None and letter.reason != self.reason:
            return False
        if self.error_type is not None and letter.error_type != self.error_type:
            return False
        dead_at = letter.dead_at
        if self.since is not None and (dead_at is None or dead_at < self.since):
            return False
        return not (self.until is not None and (dead_at is None or dead_at >= self.until))


# The filter that passes every letter.
ANY_LETTER = LetterFilter()


@dataclass(frozen=True)
class Page:
    """One page of letters, oldest first; pass ``cursor`` back for the next page."""

    letters: list[DeadLetter]
    cursor: str | None


# Inside the store classes ``list`` names their method, not the type.
Letters = list[DeadLetter]


class DeadLetterStore(ABC):
    """Where dead letters are kept for operators to inspect, replay and purge."""

    @abstractmethod
    def put(self, letter: DeadLetter) -> str:
        """Store ``letter`` (``id`` may be empty: one is assigned); returns its id."""

    @abstractmethod
    def list(
        self, filter: LetterFilter | None = None, limit: int = 100, cursor: str | None = None
    ) -> Page:
        """Letters matching ``filter``, oldest first, at most ``limit``."""

    @abstractmethod
    def get(self, letter_id: str) -> DeadLetter:
        """The letter; ``LetterNotFound`` if there is none."""

    @abstractmethod
    def count(self, filter: LetterFilter | None = None) -> int:
        """How many letters match."""

    @abstractmethod
    def delete(self, letter_id: str) -> bool:
        """Remove a letter; ``True`` if it existed."""

    @abstractmethod
    def mark_replayed(self, letter_id: str) -> DeadLetter:
        """Bump ``replay_count`` and ``last_replayed_at``; returns the updated letter."""

    def iter(
        self, filter: LetterFilter | None = None, page_size: int = 100
    ) -> Iterator[DeadLetter]:
        """Every matching letter, page by page."""
        cursor: str | None = None
        while True:
            page = self.list(filter, limit=page_size, cursor=cursor)
            yield from page.letters
            if page.cursor is None:
                return
            cursor = page.cursor

    def ending_in(self, suffixes: Collection[str]) -> dict[str, Letters]:
        """For each of ``suffixes``, the letters whose id ends in it, oldest first.

        One pass over every letter here (on SQS: one scan); the SQL store asks the database.
        """
        found: dict[str, Letters] = {suffix: [] for suffix in suffixes}
        if found:
            for letter in self.iter():
                for suffix, letters in found.items():
                    if letter.id.endswith(suffix):
                        letters.append(letter)
        return found

    def delete_many(self, filter: LetterFilter | None = None) -> int:
        """Remove every matching letter (every letter for ``None``); returns how many."""
        # Deleting behind the cursor is safe: a page starts after the last id already seen.
        return sum(1 for letter in self.iter(filter) if self.delete(letter.id))

    def create_schema(self) -> None:  # noqa: B027 - optional hook
        """Create the table or queue the backend needs; idempotent."""

    def check_schema(self) -> None:  # noqa: B027 - optional hook: schemaless backends pass
        """Raise ``SchemaMismatch`` if the stored schema is one this code cannot use."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
