"""``await_result``: poll the store until an intent completed or was dead-lettered."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from intentq.dedup.base import DedupStore, Record, State
from intentq.dlq.base import DeadLetter, DeadLetterStore, LetterFilter

DEFAULT_POLL = 0.2
# Looking through the DLQ costs more than a store read: do it less often.
DLQ_POLL_EVERY = 5


class Status(enum.StrEnum):
    """How waiting for an intent ended."""

    COMPLETED = "completed"
    DEAD = "dead"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class Awaited:
    """What became of an intent: its result, or why it was dead-lettered."""

    status: Status
    tool: str
    key: str
    result: Any = None
    error: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    waited: float = 0.0


def _dead_letter(
    dlq: DeadLetterStore, tool: str, key: str, intent_id: str | None, since: datetime
) -> DeadLetter | None:
    for letter in dlq.list(LetterFilter(tool=tool, since=since), limit=1000).letters:
        if letter.key == key or (intent_id is not None and letter.intent_id == intent_id):
            return letter
    return None


def await_result(
    store: DedupStore,
    tool: str,
    key: str,
    timeout: float,
    *,
    dlq: DeadLetterStore | None = None,
    intent_id: str | None = None,
    sent_at: datetime | None = None,
    poll: float = DEFAULT_POLL,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Awaited:
    """Wait up to ``timeout`` seconds for ``(tool, key)`` to complete or fail.

    A message refused before any claim (unknown tool, bad arguments) leaves no record in the
    store; with ``dlq`` and ``sent_at``, the DLQ is looked through for its letter as well.
    """
    start = clock()
    rounds = 0
    while True:
        record: Record | None = store.get(tool, key)
        waited = clock() - start
        if record is not None and record.state is State.COMPLETED:
            return Awaited(Status.COMPLETED, tool, key, record.result, {}, record.attempts, waited)
        if record is not None and record.state is State.FAILED:
            return Awaited(Status.DEAD, tool, key, None, dict(record.error or {}),
                           record.attempts, waited)  # fmt: skip
        if dlq is not None and sent_at is not None and rounds % DLQ_POLL_EVERY == 0:
            letter = _dead_letter(dlq, tool, key, intent_id, sent_at - timedelta(seconds=5))
            if letter is not None:
                error = {
                    "reason": str(letter.reason),
                    "type": letter.error_type,
                    "message": letter.error_message,
                    "letter_id": letter.id,
                }
                return Awaited(Status.DEAD, tool, key, None, error, letter.attempts, waited)
        if waited >= timeout:
            return Awaited(Status.TIMEOUT, tool, key, waited=waited)
        rounds += 1
        sleep(max(0.0, min(poll, timeout - waited)))
