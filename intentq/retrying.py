"""The one shape of "try again after a pause" in intentq.

``retry_call(call, retry_on=..., pauses=...)`` runs ``call`` until it returns; after each
failure of a retryable type it waits the next pause, and once the pauses run out the last
failure is raised. The first try costs one function call: no state is built until a call
fails. ``doubling`` makes the usual schedule (exponential, capped, within a deadline).
Broker retries (a message redelivered later) are the executor's ``RetryLater``, not this.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def retry_call(
    call: Callable[[], T],
    *,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    pauses: Iterable[float],
    on_failure: Callable[[BaseException, float | None], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``call()``, retried after each pause of ``pauses`` while it raises ``retry_on``.

    ``on_failure(exc, pause)`` hears of every failure, with ``None`` for the last one (about
    to be raised).
    """
    schedule: Iterator[float] | None = None
    while True:
        try:
            return call()
        except retry_on as exc:
            if schedule is None:
                schedule = iter(pauses)
            pause = next(schedule, None)
            if on_failure is not None:
                on_failure(exc, pause)
            if pause is None:
                raise
            sleep(pause)


def doubling(first: float, ceiling: float, *, within: float | None = None) -> Iterator[float]:
    """Pauses from ``first``, doubling up to ``ceiling``; with ``within``, they end once that
    many seconds have passed since the schedule started, the last one cut to fit."""
    deadline = None if within is None else time.monotonic() + within
    pause = first
    while True:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            pause = min(pause, left)
        yield pause
        pause = min(pause * 2, ceiling)
