"""Settling deliveries: completions, deletes and visibility changes, batched by 10 on one thread.

Messages finish one by one on the pool's threads; sending each verdict as it comes would
cost one SQS call per message. The settler gathers verdicts while more are expected - until ten
are in hand, the batch's last one came, or none came for a few milliseconds - and sends them
as ``DeleteMessageBatch`` / ``ChangeMessageVisibilityBatch`` calls, while the worker's main
thread is already receiving the next batch.

A tool's result is a verdict too: gathered the same way on a thread of its own, the results
in hand are recorded in one store call by the ``Recorder`` (``complete_many``), and only the
messages whose completion is then durable are handed on to be deleted. Nothing is deleted
before its completion was written.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from intentq.consumers.sqs.receiver import Failure, Received, SqsQueue
from intentq.errors import TransportError
from intentq.retrying import retry_call
from intentq.sqs.client import sdk_attempts
from intentq.sqs.queues import MAX_BATCH

log = logging.getLogger("intentq.sqs")

# A verdict waits for others to share its batch call while more are coming: until none has
# come for this long, and never longer than MAX_LINGER in all. A batch of quick tools on a
# busy machine can take several of Python's 5 ms thread switches between two verdicts.
DEFAULT_LINGER = 0.01
MAX_LINGER = 0.05
# A batch call that failed as a whole is tried again after these pauses, as many of them as
# fit in SETTLE_ATTEMPTS SDK attempts in all: botocore already retries each call itself.
CALL_PAUSES = (0.2, 1.0, 3.0)
SETTLE_ATTEMPTS = 12


@dataclass
class SettleStats:
    """What the settler did: counts for logs, tests and benchmarks."""

    deleted: int = 0
    released: int = 0
    gone: int = 0
    failed: int = 0
    recorded: int = 0  # completions written by the settler's own store calls
    record_calls: int = 0


class Recorder(Protocol):
    """Writes gathered completions before their messages are deleted (``BatchRunner``)."""

    def record(self, entries: Sequence[tuple[Received, Any]]) -> list[bool]:
        """Record each entry's completion; ``True`` where its message may be deleted now
        (the recorder took care of the others itself)."""
        ...

    def join(self, timeout: float | None) -> bool:
        """Wait until completions recorded elsewhere (one by one) have their verdicts in;
        ``False`` on timeout."""
        ...


class Settler:
    """Takes verdicts from any thread; background threads send them in batches.

    Verdicts wait in lists under one lock. The sending thread is woken only when it has
    something new to do - the first verdict after an idle spell (to start the linger clock),
    a full batch, the last verdict it was told to expect, a flush or the stop - not by every
    verdict: a batch of quick messages costs two wake-ups and one call.

    Results to record are gathered the same way by a second thread, which records them and
    hands their messages to the sending thread as deletes: a batch's store call then runs
    while the previous batch's delete call is on its way, so neither waits for the other.
    """

    def __init__(
        self, sqs: SqsQueue, linger: float = DEFAULT_LINGER, max_linger: float = MAX_LINGER
    ) -> None:
        self._sqs = sqs
        self._call_pauses = CALL_PAUSES[: SETTLE_ATTEMPTS // sdk_attempts(sqs.client) - 1]
        self._linger = linger
        self._max_linger = max_linger
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # the sending thread waits on this
        self._recording = threading.Condition(self._lock)  # the recording thread on this
        self._deletes: list[Received] = []
        self._records: list[tuple[Received, Any]] = []  # deleted once recorded
        self._releases: list[tuple[Received, int]] = []
        self._recorder: Recorder | None = None
        self._flushes: list[threading.Event] = []
        self._record_flushes: list[threading.Event] = []
        self._expected = 0  # verdicts still to come for messages being processed
        self._last = 0.0  # when the latest verdict came
        self._idle = False  # the thread waits with nothing in hand: a first verdict wakes it
        self._record_idle = False  # the same, for the recording thread
        self._stop = False
        self._thread: threading.Thread | None = None
        self._recorder_thread: threading.Thread | None = None
        self.stats = SettleStats()

    def start(self) -> None:
        if self._thread is not None:  # the common case, without the lock
            return
        with self._cond:
            if self._thread is None:
                self._stop = False
                self._thread = threading.Thread(
                    target=self._run, name="intentq-sqs-settle", daemon=True
                )
                self._thread.start()

    def _start_recording(self) -> None:
        if self._recorder_thread is not None:
            return
        with self._cond:
            if self._recorder_thread is None:
                self._recorder_thread = threading.Thread(
                    target=self._run_records, name="intentq-sqs-record", daemon=True
                )
                self._recorder_thread.start()

    def expect(self, count: int) -> None:
        """``count`` messages are being processed: their verdicts are worth waiting for."""
        with self._cond:
            self._expected += count

    def use_recorder(self, recorder: Recorder) -> None:
        """``record`` verdicts go to ``recorder`` before their messages are deleted."""
        self._recorder = recorder

    def delete(self, message: Received) -> None:
        """Acknowledge: the message is done with."""
        self.start()
        with self._cond:
            self._deletes.append(message)
            self._came(len(self._deletes))

    def record(self, message: Received, completion: Any) -> None:
        """Record ``completion`` with others gathered meanwhile, then delete the message."""
        assert self._recorder is not None, "record() needs use_recorder() first"
        self.start()
        self._start_recording()
        with self._cond:
            self._records.append((message, completion))
            self._last = time.monotonic()
            if self._expected:
                self._expected -= 1
            if not self._expected:  # the sending thread may be lingering for this one
                self._cond.notify()
            if self._record_idle or len(self._records) == MAX_BATCH or not self._expected:
                self._record_idle = False
                self._recording.notify()

    def release(self, message: Received, seconds: int) -> None:
        """Give the message back to be delivered again in ``seconds``."""
        self.start()
        with self._cond:
            self._releases.append((message, seconds))
            self._came(len(self._releases))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far has been sent, completions recorded one by
        one after a failed batch call included; ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        if self._recorder_thread is not None:
            done = threading.Event()
            with self._cond:
                self._record_flushes.append(done)
                self._recording.notify()
            if not done.wait(left()):
                return False
        if self._recorder is not None and not self._recorder.join(left()):
            return False
        return self._flush_once(left())

    def _flush_once(self, timeout: float | None) -> bool:
        if self._thread is None:
            return True
        done = threading.Event()
        with self._cond:
            self._flushes.append(done)
            self._cond.notify()
        return done.wait(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Send what is queued, then stop the threads."""
        flushed = self.flush(timeout)
        with self._cond:
            threads = [self._recorder_thread, self._thread]
            self._thread = self._recorder_thread = None
            self._stop = True
            self._cond.notify()
            self._recording.notify()
        for thread in threads:
            if thread is not None:
                thread.join(timeout)
        return flushed

    def _came(self, queued: int) -> None:
        # Called with the lock held, for each verdict.
        self._last = time.monotonic()
        if self._expected:
            self._expected -= 1
        if self._idle or queued == MAX_BATCH or not self._expected:
            self._idle = False
            self._cond.notify()

    def _run(self) -> None:
        while True:
            deletes, releases, waiters, stop = self._take()
            self._send(deletes, releases)
            for waiter in waiters:
                waiter.set()
            if stop:
                return

    def _run_records(self) -> None:
        while True:
            records, waiters, stop = self._take_records()
            if records:
                deletes = self._recorded(records)
                if deletes:
                    with self._cond:
                        self._deletes.extend(deletes)
                        self._idle = False
                        self._cond.notify()
            for waiter in waiters:
                waiter.set()
            if stop:
                return

    def _recorded(self, records: list[tuple[Received, Any]]) -> list[Received]:
        """Record the gathered completions; the messages that may be deleted now."""
        assert self._recorder is not None
        try:
            ok = self._recorder.record(records)
        except Exception:
            # A bug, not an outage (the recorder falls back by itself): the deliveries
            # come back and the store answers their duplicates.
            log.exception("recording %d completion(s) failed", len(records))
            self.stats.failed += len(records)
            return []
        self.stats.record_calls += 1
        self.stats.recorded += sum(ok)
        return [message for (message, _), done in zip(records, ok, strict=True) if done]

    def _take_records(self) -> tuple[list[tuple[Received, Any]], list[threading.Event], bool]:
        """Wait for results worth a store call; take them (all of them on a flush or stop)."""
        with self._cond:
            first: float | None = None
            while True:
                everything = bool(self._record_flushes) or self._stop
                if everything or len(self._records) >= MAX_BATCH:
                    break
                if not self._records:
                    self._record_idle = True
                    self._recording.wait()
                    continue
                if not self._expected:  # nothing more is coming soon
                    break
                now = time.monotonic()
                if first is None:
                    first = now
                due = min(self._last + self._linger, first + self._max_linger)
                if now >= due:
                    break
                self._record_idle = False
                self._recording.wait(due - now)
            self._record_idle = False
            if everything:
                records, self._records = self._records, []
                waiters, self._record_flushes = self._record_flushes, []
                return records, waiters, self._stop
            records = self._records[:MAX_BATCH]
            del self._records[:MAX_BATCH]
            return records, [], False

    def _take(
        self,
    ) -> tuple[list[Received], list[tuple[Received, int]], list[threading.Event], bool]:
        """Wait for a batch worth sending; take it (all of it, on a flush or the stop)."""
        with self._cond:
            first: float | None = None
            while True:
                everything = bool(self._flushes) or self._stop
                if (
                    everything
                    or len(self._deletes) >= MAX_BATCH
                    or len(self._releases) >= MAX_BATCH
                ):
                    break
                if not self._deletes and not self._releases:
                    self._idle = True
                    self._cond.wait()
                    continue
                if not self._expected:  # nothing more is coming soon
                    break
                now = time.monotonic()
                if first is None:
                    first = now
                due = min(self._last + self._linger, first + self._max_linger)
                if now >= due:
                    break
                self._idle = False
                self._cond.wait(due - now)
            self._idle = False
            if everything:
                deletes, self._deletes = self._deletes, []
                releases, self._releases = self._releases, []
                waiters, self._flushes = self._flushes, []
                return deletes, releases, waiters, self._stop
            deletes = self._deletes[:MAX_BATCH]
            del self._deletes[:MAX_BATCH]
            releases = self._releases[:MAX_BATCH]
            del self._releases[:MAX_BATCH]
            return deletes, releases, [], False

    def _send(self, deletes: list[Received], releases: list[tuple[Received, int]]) -> None:
        if deletes:
            left = self._call("delete", lambda ms: self._sqs.delete(ms), deletes)
            self.stats.deleted += len(deletes) - len(left)
        if releases:
            seconds = {id(m): s for m, s in releases}
            messages = [m for m, _ in releases]
            left = self._call(
                "visibility change",
                lambda ms: self._sqs.change_visibility([(m, seconds[id(m)]) for m in ms]),
                messages,
            )
            self.stats.released += len(releases) - len(left)

    def _call(
        self,
        what: str,
        call: Callable[[Sequence[Received]], list[Failure]],
        messages: list[Received],
    ) -> list[Received]:
        """Send, retrying whole-call failures and, once, entries refused for other reasons.

        Returns the messages that were not settled.
        """
        unsettled: list[Received] = []

        def failed(exc: BaseException, pause: float | None) -> None:
            if pause is not None:
                log.warning("SQS %s failed, retrying in %.1fs: %s", what, pause, exc)

        pending, may_retry_entries = messages, True
        while pending:
            try:
                failures = retry_call(
                    functools.partial(call, pending),
                    retry_on=TransportError,
                    pauses=self._call_pauses,
                    on_failure=failed,
                )
            except TransportError as exc:
                # The deliveries reappear when their visibility runs out; the store answers
                # their duplicates, so nothing runs twice and nothing is lost.
                log.error("SQS %s of %d message(s) failed: %s", what, len(pending), exc)
                self.stats.failed += len(pending)
                return unsettled + pending
            for failure in failures:
                if failure.gone:
                    log.info(
                        "SQS %s of %s: %s; this delivery is no longer ours",
                        what,
                        failure.message.message_id,
                        failure.code,
                    )
                    self.stats.gone += 1
                    unsettled.append(failure.message)
            pending = [f.message for f in failures if not f.gone]
            if pending and not may_retry_entries:
                for failure in failures:
                    if not failure.gone:
                        log.warning(
                            "SQS %s of %s refused: %s %s",
                            what,
                            failure.message.message_id,
                            failure.code,
                            failure.text,
                        )
                self.stats.failed += len(pending)
                return unsettled + pending
            may_retry_entries = False
        return unsettled
