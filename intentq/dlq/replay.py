"""Replay dead letters: re-enqueue each original body (same key), then mark or remove it.

The conventions of SQS's message move tasks, rq's requeue and Sidekiq's dead set: nothing is
destroyed unless asked, a dry run shows the plan, letters are chosen by id or filter, sends
are rate-limited, and every letter gets a result.

Each letter's key is looked up in the dedup store first: ``completed`` -> skipped (the side
effect happened; the letter is resolved and removed unless ``keep``); ``failed`` -> reset,
then re-enqueued; absent or ``in_progress`` -> re-enqueued. Sending comes before marking: a
crash in between leaves the letter for the next replay, and the duplicate it then sends is
absorbed by the dedup store like any other.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import islice

from intentq.config.settings import Settings
from intentq.dedup.base import DedupStore, State
from intentq.dlq.base import DeadLetter, DeadLetterStore, LetterFilter
from intentq.errors import InvalidIntent
from intentq.intent import Intent

Send = Callable[[DeadLetter, str | None], None]


class Action(enum.StrEnum):
    """What replay did with a letter, or would do in a dry run."""

    REPLAYED = "replayed"
    RESET_REPLAYED = "reset+replayed"
    SKIPPED = "skipped"
    REFUSED = "refused"
    FAILED = "failed"
    WOULD_REPLAY = "would replay"
    WOULD_RESET_REPLAY = "would reset+replay"
    WOULD_SKIP = "would skip"
    WOULD_REFUSE = "would refuse"


_PLANNED = {
    Action.REPLAYED: Action.WOULD_REPLAY,
    Action.RESET_REPLAYED: Action.WOULD_RESET_REPLAY,
    Action.SKIPPED: Action.WOULD_SKIP,
    Action.REFUSED: Action.WOULD_REFUSE,
}


@dataclass(frozen=True)
class ReplayResult:
    """One letter's outcome; ``detail`` says why, in words for an operator."""

    letter_id: str
    tool: str | None
    key: str | None
    action: Action
    detail: str = ""


_PROBLEMS = (Action.REFUSED, Action.WOULD_REFUSE, Action.FAILED)


@dataclass
class ReplaySummary:
    """Counts per outcome (a dry run counts what it would do) and every result in order
    (with ``problems_only``, only the refused and failed ones: memory stays bounded)."""

    replayed: int = 0  # including reset+replayed
    skipped: int = 0
    refused: int = 0
    failed: int = 0
    results: list[ReplayResult] = field(default_factory=list)
    dry_run: bool = False
    problems_only: bool = False

    def add(self, result: ReplayResult) -> None:
        if not self.problems_only or result.action in _PROBLEMS:
            self.results.append(result)
        replayed = (
            Action.REPLAYED,
            Action.RESET_REPLAYED,
            Action.WOULD_REPLAY,
            Action.WOULD_RESET_REPLAY,
        )
        if result.action in replayed:
            self.replayed += 1
        elif result.action in (Action.SKIPPED, Action.WOULD_SKIP):
            self.skipped += 1
        elif result.action in (Action.REFUSED, Action.WOULD_REFUSE):
            self.refused += 1
        else:
            self.failed += 1


@dataclass(frozen=True)
class _Plan:
    action: Action  # REPLAYED, RESET_REPLAYED, SKIPPED or REFUSED
    tool: str | None
    key: str | None
    detail: str


def _plan(letter: DeadLetter, store: DedupStore | None) -> _Plan:
    """What to do with ``letter``; reads the dedup store, changes nothing."""
    try:
        intent = Intent.parse(letter.body)
        tool, key, note = intent.tool, intent.key, ""
    except InvalidIntent as exc:
        if not (letter.tool and letter.key):
            why = f"body is not an intentq envelope ({exc}) and the letter names no tool and key"
            return _Plan(Action.REFUSED, letter.tool, letter.key, why)
        # A plain message (a Celery task, a raw SQS body): deduplicated on the letter's key.
        tool, key, note = letter.tool, letter.key, "plain message; "
    if store is None:
        return _Plan(Action.REPLAYED, tool, key, note + "no dedup store to consult")
    record = store.get(tool, key)
    if record is None:
        return _Plan(Action.REPLAYED, tool, key, note + "key not in the dedup store")
    if record.state is State.COMPLETED:
        return _Plan(Action.SKIPPED, tool, key, note + "key already completed")
    if record.state is State.FAILED:
        return _Plan(Action.RESET_REPLAYED, tool, key, note + "failed key reset")
    return _Plan(Action.REPLAYED, tool, key, note + "key in progress: its lease decides")


class _Pacer:
    """At most ``rate`` sends per second, on the injected clock: a send starts a whole
    interval after the previous one returned, so however long a send takes (the first one
    opens the connection), the queue never gets two messages closer than the interval."""

    def __init__(
        self, rate: float | None, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self._interval = 1.0 / rate if rate else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        """Until the next send may start."""
        if self._next is None:
            return
        now = self._clock()
        while now < self._next:
            self._sleep(self._next - now)
            now = self._clock()

    def sent(self) -> None:
        """A send returned (or failed): the next may start one interval from now."""
        if self._interval:
            self._next = self._clock() + self._interval


def _settle(dlq: DeadLetterStore, letter: DeadLetter, keep: bool) -> None:
    if keep:
        dlq.mark_replayed(letter.id)
    else:
        dlq.delete(letter.id)


def _run(
    dlq: DeadLetterStore,
    store: DedupStore | None,
    letter: DeadLetter,
    plan: _Plan,
    send: Send,
    to: str | None,
    keep: bool,
    pacer: _Pacer,
) -> ReplayResult:
    def result(action: Action, detail: str) -> ReplayResult:
        return ReplayResult(letter.id, plan.tool, plan.key, action, detail)

    if plan.action is Action.REFUSED:
        return result(Action.REFUSED, plan.detail + "; letter kept")
    if plan.action is Action.SKIPPED:
        if keep:
            return result(Action.SKIPPED, plan.detail + "; letter kept")
        try:
            dlq.delete(letter.id)
        except Exception as exc:
            return result(Action.FAILED, f"{plan.detail}; could not remove the letter: {exc}")
        return result(Action.SKIPPED, plan.detail + "; letter removed")
    assert plan.tool is not None and plan.key is not None
    try:
        if plan.action is Action.RESET_REPLAYED and store is not None:
            store.reset(plan.tool, plan.key)
        pacer.wait()
        try:
            send(letter, to)  # the original bytes: same key, so every copy is deduplicated
        finally:
            pacer.sent()
    except Exception as exc:
        return result(Action.FAILED, f"not sent: {type(exc).__name__}: {exc}; letter kept")
    try:
        _settle(dlq, letter, keep)
    except Exception as exc:
        verb = "marked" if keep else "removed"
        return result(
            Action.FAILED,
            f"sent, but the letter could not be {verb} ({type(exc).__name__}: {exc}); "
            "replaying it again is safe: the duplicate is deduplicated",
        )
    return result(plan.action, plan.detail + ("; letter marked" if keep else "; letter removed"))


def _one(
    dlq: DeadLetterStore,
    store: DedupStore | None,
    letter: DeadLetter,
    send: Send,
    to: str | None,
    dry_run: bool,
    keep: bool,
    pacer: _Pacer,
) -> ReplayResult:
    try:
        plan = _plan(letter, store)
    except Exception as exc:  # the dedup store is down: this letter waits for later
        detail = f"could not consult the dedup store: {exc}; letter kept"
        return ReplayResult(letter.id, letter.tool, letter.key, Action.FAILED, detail)
    if dry_run:
        return ReplayResult(letter.id, plan.tool, plan.key, _PLANNED[plan.action], plan.detail)
    return _run(dlq, store, letter, plan, send, to, keep, pacer)


def replay(
    dlq: DeadLetterStore,
    store: DedupStore | None,
    letters: Iterable[DeadLetter],
    send: Send,
    *,
    to: str | None = None,
    dry_run: bool = False,
    rate: float | None = None,
    limit: int | None = None,
    keep: bool = False,
    on_result: Callable[[ReplayResult], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    problems_only: bool = False,
) -> ReplaySummary:
    """Replay ``letters`` through ``send(letter, to)``; see the module docstring.

    ``limit`` caps the letters looked at (whatever their outcome), ``rate`` the sends per
    second. ``keep`` marks replayed letters instead of removing them. A failure on one letter
    is recorded as ``failed`` and the replay goes on. ``letters`` is consumed: an iterator
    with a ``close`` (a store's ``iter``) is closed at the end. ``problems_only`` keeps only
    refused and failed results in the summary (``on_result`` still sees every one), so a
    replay of a million letters from a store's ``iter`` holds one page at a time.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    pacer = _Pacer(rate, clock, sleep)
    summary = ReplaySummary(dry_run=dry_run, problems_only=problems_only)
    letters = iter(letters)
    try:
        for letter in islice(letters, limit):
            result = _one(dlq, store, letter, send, to, dry_run, keep, pacer)
            summary.add(result)
            if on_result is not None:
                on_result(result)
    finally:
        # An SQS DLQ's iteration holds its letters hidden: end it now, not when collected.
        close = getattr(letters, "close", None)
        if close is not None:
            close()
    return summary


def as_of(f: LetterFilter, when: datetime) -> LetterFilter:
    """``f`` held to the letters there were at ``when``: dead before it, not replayed since.

    A replay of it stopped anywhere (SIGKILL, Ctrl-C) is finished by replaying it again with
    the same ``when``: letters it removed are gone and letters it marked (``keep``) are
    skipped, so none is sent twice, but for the one a crash caught between send and mark
    (the dedup store absorbs that copy); letters dead since, such as a replayed message that
    failed again, are left for a later replay instead of being sent round again.
    """
    until = min(f.until, when) if f.until is not None else when
    return replace(f, until=until, not_replayed_since=when)


@contextmanager
def producer_send(settings: Settings) -> Iterator[Send]:
    """``send(letter, to)`` through a producer of the settings' transport: the original
    bytes, to ``to``, else back to the letter's own queue when it came from this transport."""
    from intentq.producer import Producer

    with Producer(settings) as producer:

        def send(letter: DeadLetter, to: str | None) -> None:
            queue = to
            if queue is None and letter.source_transport == settings.transport:
                queue = letter.source_queue
            producer.send_raw(letter.body, queue)

        yield send
