"""Settling deliveries: deletes and visibility changes, batched by 10 on one thread.

Messages finish one by one on the pool's threads; sending each verdict as it comes would
cost one SQS call per message. The settler gathers what arrives within a few milliseconds
and sends it as ``DeleteMessageBatch`` / ``ChangeMessageVisibilityBatch`` calls, while the
worker's main thread is already receiving the next batch.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from intentq.consumers.sqs_queue import BATCH_LIMIT, Failure, Received, SqsQueue
from intentq.errors import TransportError

log = logging.getLogger("intentq.sqs")

# How long a verdict may wait for others to share its batch call.
DEFAULT_LINGER = 0.005
# Backoff between attempts of a batch call that failed as a whole.
_CALL_RETRIES = (0.2, 1.0, 3.0)


@dataclass
class SettleStats:
    """What the settler did: counts for logs, tests and benchmarks."""

    deleted: int = 0
    released: int = 0
    gone: int = 0
    failed: int = 0


_Item = tuple[str, Received, int] | threading.Event | None


class Settler:
    """Queues verdicts from any thread; a background thread sends them in batches."""

    def __init__(self, sqs: SqsQueue, linger: float = DEFAULT_LINGER) -> None:
        self._sqs = sqs
        self._linger = linger
        self._items: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.stats = SettleStats()

    def start(self) -> None:
        if self._thread is not None:  # the common case, without the lock
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="intentq-sqs-settle", daemon=True
                )
                self._thread.start()

    def delete(self, message: Received) -> None:
        """Acknowledge: the message is done with."""
        self.start()
        self._items.put(("delete", message, 0))

    def release(self, message: Received, seconds: int) -> None:
        """Give the message back to be delivered again in ``seconds``."""
        self.start()
        self._items.put(("release", message, seconds))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far has been sent; ``False`` on timeout."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._items.put(done)
        return done.wait(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Send what is queued, then stop the thread."""
        flushed = self.flush(timeout)
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._items.put(None)
            thread.join(timeout)
        return flushed

    def _run(self) -> None:
        while True:
            item = self._items.get()
            deletes: list[Received] = []
            releases: list[tuple[Received, int]] = []
            waiters: list[threading.Event] = []
            stop = False
            deadline = time.monotonic() + self._linger
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    # Everything queued before the flush request is in hand: send it now.
                    waiters.append(item)
                    break
                elif item[0] == "delete":
                    deletes.append(item[1])
                else:
                    releases.append((item[1], item[2]))
                if stop or len(deletes) >= BATCH_LIMIT or len(releases) >= BATCH_LIMIT:
                    break
                try:
                    item = self._items.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            self._send(deletes, releases)
            for waiter in waiters:
                waiter.set()
            if stop:
                return

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
        pending, attempt, may_retry_entries = messages, 0, True
        while pending:
            try:
                failures = call(pending)
            except TransportError as exc:
                if attempt >= len(_CALL_RETRIES):
                    # The deliveries reappear when their visibility runs out; the store
                    # answers their duplicates, so nothing runs twice and nothing is lost.
                    log.error("SQS %s of %d message(s) failed: %s", what, len(pending), exc)
                    self.stats.failed += len(pending)
                    return unsettled + pending
                log.warning("SQS %s failed, retrying: %s", what, exc)
                time.sleep(_CALL_RETRIES[attempt])
                attempt += 1
                continue
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
