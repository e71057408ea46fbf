"""Dead letters: the record, the reasons, filters and the ``DeadLetterStore`` contract."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


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
    # Never replayed, or last replayed before this: a resumed replay skips what it marked.
    not_replayed_since: datetime | None = None

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
        replayed, fence = letter.last_replayed_at, self.not_replayed_since
        if fence is not None and replayed is not None and replayed >= fence:
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

# The age windows stats counts letters in, as --since takes them: each letter in the first
# window its age fits, the rest (and a letter without a time) in OLDER.
AGE_WINDOWS: tuple[tuple[str, timedelta], ...] = (
    ("1h", timedelta(hours=1)),
    ("1d", timedelta(days=1)),
    ("7d", timedelta(days=7)),
    ("30d", timedelta(days=30)),
)
OLDER = "older"
AGE_LABELS = (*(label for label, _ in AGE_WINDOWS), OLDER)


def age_window(dead_at: datetime | None, now: datetime) -> str:
    """The label of the first of ``AGE_WINDOWS`` a letter dead at ``dead_at`` falls in."""
    if dead_at is not None:
        for label, span in AGE_WINDOWS:
            if dead_at >= now - span:
                return label
    return OLDER


@dataclass
class LetterStats:
    """Counts over the letters a filter selects; letters without a tool count as ``-``."""

    total: int = 0
    by_tool: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    by_tool_reason: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_age: Counter[str] = field(default_factory=Counter)  # AGE_LABELS
    oldest: datetime | None = None
    newest: datetime | None = None

    def add(
        self,
        tool: str | None,
        reason: str,
        age: str,
        count: int,
        oldest: datetime | None,
        newest: datetime | None,
    ) -> None:
        """Count ``count`` letters of one tool, reason and age window, dead in [oldest, newest]."""
        tool = tool or "-"
        self.total += count
        self.by_tool[tool] += count
        self.by_reason[reason] += count
        self.by_tool_reason[(tool, reason)] += count
        self.by_age[age] += count
        if oldest is not None and (self.oldest is None or oldest < self.oldest):
            self.oldest = oldest
        if newest is not None and (self.newest is None or newest > self.newest):
            self.newest = newest


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
        # Deleting behind the cursor is safe: a page starts after the last letter already seen.
        return sum(1 for letter in self.iter(filter) if self.delete(letter.id))

    def delete_in_batches(
        self, filter: LetterFilter | None = None, size: int = 1000
    ) -> Iterator[int]:
        """Remove every matching letter, yielding how many went after each step.

        Each step is done before it is yielded, so stopping anywhere leaves the rest matching
        and running again removes only them. Here one ``delete_many`` (one scan on SQS); the
        SQL store deletes ``size`` letters per transaction, oldest first.
        """
        yield self.delete_many(filter)

    def stats(self, filter: LetterFilter | None = None, now: datetime | None = None) -> LetterStats:
        """Counts by tool, reason and age window (``AGE_WINDOWS`` before ``now``).

        Here one pass over the matching letters, page by page; the SQL store asks one
        aggregate query and reads no letter.
        """
        now = now or datetime.now(UTC)
        stats = LetterStats()
        for letter in self.iter(filter):
            dead_at = letter.dead_at
            reason = str(letter.reason)
            stats.add(letter.tool, reason, age_window(dead_at, now), 1, dead_at, dead_at)
        return stats

    def create_schema(self) -> None:  # noqa: B027 - optional hook
        """Create the table or queue the backend needs; idempotent."""

    def check_schema(self) -> None:  # noqa: B027 - optional hook: schemaless backends pass
        """Raise ``SchemaMismatch`` if the stored schema is one this code cannot use."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
