"""What became of an intent: ``Awaited``, read from its store record (``settled``), and
``await_result``, which polls the store for it.

A waiter compares the intent's fingerprint with the record's: a record another call left
under the same key is ``KeyReuseMismatch``, never that call's result. A dead letter is in
the record too: the executor marks an intent it refused (unknown tool, bad arguments) failed
with the letter's id and reason, so one store read tells, without searching the DLQ.
``intentq.waiting`` waits the same way but wakes on the store's own notifications.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from intentq.dedup.base import DedupStore, Record, State
from intentq.errors import KeyReuseMismatch

# Seconds between two reads of a store that cannot notify (SQLite, memory).
DEFAULT_POLL = 0.2


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


def settled(
    record: Record | None, tool: str, key: str, fingerprint: str | None, waited: float
) -> Awaited | None:
    """The outcome a record tells, or ``None`` while there is none yet.

    Raises ``KeyReuseMismatch`` when ``fingerprint`` is given and the record holds another.
    """
    if record is None:
        return None
    if fingerprint is not None and record.fingerprint != fingerprint:
        raise KeyReuseMismatch(tool, key, fingerprint, record.fingerprint)
    if record.state is State.COMPLETED:
        return Awaited(Status.COMPLETED, tool, key, record.result, {}, record.attempts, waited)
    if record.state is State.FAILED:
        error = dict(record.error or {})
        return Awaited(Status.DEAD, tool, key, None, error, record.attempts, waited)
    return None


def timed_out(tool: str, key: str, waited: float) -> Awaited:
    """The ``Awaited`` of a wait that saw no outcome in time (the intent may still run)."""
    return Awaited(Status.TIMEOUT, tool, key, waited=waited)


def await_result(
    store: DedupStore,
    tool: str,
    key: str,
    timeout: float,
    *,
    fingerprint: str | None = None,
    poll: float = DEFAULT_POLL,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Awaited:
    """Read the store every ``poll`` seconds, up to ``timeout``, until ``(tool, key)``
    completed or failed; a timeout is an ``Awaited`` with ``Status.TIMEOUT``.

    With ``fingerprint`` (``intent.fingerprint``), a record of other arguments under the key
    raises ``KeyReuseMismatch``. ``Producer.result`` waits without polling where the store
    can notify (Redis, PostgreSQL).
    """
    start = clock()
    while True:
        waited = clock() - start
        done = settled(store.get(tool, key), tool, key, fingerprint, waited)
        if done is not None:
            return done
        if waited >= timeout:
            return timed_out(tool, key, waited)
        sleep(max(0.0, min(poll, timeout - waited)))
