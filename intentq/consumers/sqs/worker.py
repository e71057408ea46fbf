"""The SQS worker: long-poll, hand batches to a bounded pool, settle, stop gracefully."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from intentq.config.settings import Settings
from intentq.connections import open_dlq_for, open_store_for, sqs_client_for
from intentq.consumers.sqs.batch import GIVE_BACK_DELAY, BatchRunner
from intentq.consumers.sqs.pool import Pool
from intentq.consumers.sqs.receiver import Received, SqsQueue
from intentq.consumers.sqs.settle import Settler, SettleStats
from intentq.dedup.base import DedupStore
from intentq.dlq.base import DeadLetterStore
from intentq.executor import Executor
from intentq.heartbeat import Heartbeat
from intentq.observe import metrics_for, observer_for, serve_metrics
from intentq.policy import Policy
from intentq.registry import Registry
from intentq.retrying import doubling
from intentq.sqs.queues import resolve_queue_url, visibility

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("intentq.sqs")

# With a few slots free, wait this long for a full batch's worth before receiving.
RECEIVE_LINGER = 0.02
# Receive failures back off exponentially up to this many seconds.
RECEIVE_PAUSE_FIRST = 1.0
MAX_RECEIVE_BACKOFF = 30.0
# After the grace, queued deletes and visibility changes still get this long to be sent.
SETTLE_TIMEOUT = 10.0
_SLICE = 0.1


class SqsWorker:
    """Consumes one SQS queue; every decision is the executor's, this class carries it out.

    ``store``, ``dlq`` and ``client`` default to what the settings name; the worker closes
    only what it opened itself.
    """

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        store: DedupStore | None = None,
        dlq: DeadLetterStore | None = None,
        client: SQSClient | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.concurrency = settings.concurrency_for("sqs")
        self._closers: list[Callable[[], None]] = []
        try:
            if store is None:
                store = open_store_for(settings)
                self._closers.append(store.close)
            if dlq is None:
                dlq = open_dlq_for(settings)
                self._closers.append(dlq.close)
            if client is None:
                # Pool threads extend visibility while the settler and the receive loop talk.
                client = sqs_client_for(settings, max_connections=self.concurrency + 4)
                self._closers.append(client.close)
        except BaseException:
            self._close_owned()
            raise
        self.store, self.dlq, self.client = store, dlq, client
        self.heartbeat = Heartbeat()
        metrics = metrics_for(settings)
        self.executor = Executor(
            registry, store, Policy.from_settings(settings), self.heartbeat,
            observer_for(settings, metrics),
        )  # fmt: skip
        self.visibility = visibility(settings.lease)
        self.pool = Pool(self.concurrency)
        self.unfinished = 0  # tools still running when the grace ran out
        self._stopping = threading.Event()
        self._stop_deadline: float | None = None
        self._runner: BatchRunner | None = None
        self._settler: Settler | None = None
        self._setup_lock = threading.Lock()
        try:
            server = serve_metrics(settings, metrics, dlq)  # on settings.metrics_port, if set
        except BaseException:
            self._close_owned()
            raise
        if server is not None:
            self._closers.append(server.close)

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def queue(self) -> SqsQueue:
        """The consumed queue (its URL is looked up on first use)."""
        return self._setup().sqs

    def run(self) -> None:
        """Receive and process until ``stop()``; then finish running tools within the grace."""
        runner = self._setup()
        log.info(
            "consuming %s: concurrency %d, visibility %ds, long poll %ds",
            runner.sqs.name,
            self.concurrency,
            self.visibility,
            self.settings.sqs_wait_seconds,
        )
        pauses: Iterator[float] | None = None  # while receives fail
        try:
            while not self._stopping.is_set():
                want = self.settings.sqs_batch_size
                free = self.pool.wait_free(want, RECEIVE_LINGER, self._stopping)
                if not free:
                    continue
                try:
                    messages = runner.sqs.receive(
                        min(want, free), self.settings.sqs_wait_seconds, self.visibility
                    )
                except Exception as exc:  # TransportError, or anything botocore raises
                    pauses = pauses or doubling(RECEIVE_PAUSE_FIRST, MAX_RECEIVE_BACKOFF)
                    pause = next(pauses)
                    log.warning("receive failed (%s); retrying in %.1fs", exc, pause)
                    self._sleep(pause)
                    continue
                pauses = None
                if self._stopping.is_set():
                    runner.give_back(messages)
                    break
                self._dispatch(runner, messages)
        finally:
            self._drain()

    def stop(self, grace: float | None = None) -> None:
        """Stop receiving; running tools get ``grace`` seconds (default: the settings')."""
        grace = self.settings.shutdown_grace if grace is None else grace
        deadline = time.monotonic() + grace
        if self._stop_deadline is None or deadline < self._stop_deadline:
            self._stop_deadline = deadline
        self._stopping.set()
        self.pool.wake()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def settle_stats(self) -> SettleStats:
        """Deletes, give-backs and lost deliveries so far."""
        return self._settler.stats if self._settler is not None else SettleStats()

    def run_once(self, wait_seconds: int | None = None) -> int:
        """Receive one batch, process it to the end, settle it; returns how many came."""
        runner = self._setup()
        wait = self.settings.sqs_wait_seconds if wait_seconds is None else wait_seconds
        want = min(self.settings.sqs_batch_size, max(1, self.pool.free))
        messages = runner.sqs.receive(want, wait, self.visibility)
        self.process_batch(messages)
        return len(messages)

    def process_batch(self, messages: Sequence[Received | Mapping[str, Any]]) -> None:
        """Process received messages (``Received`` or boto3 dicts) and wait until settled."""
        runner = self._setup()
        batch = [m if isinstance(m, Received) else Received.from_sqs(m) for m in messages]
        if not batch:
            return
        self._dispatch(runner, batch)
        self.pool.join()
        runner.settler.flush()

    def close(self) -> None:
        """Send pending verdicts, end the threads, close what the worker opened."""
        if self._settler is not None:
            self._settler.close(SETTLE_TIMEOUT)
        self.pool.close()
        self.heartbeat.stop()
        self._close_owned()

    def __enter__(self) -> SqsWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------

    def _setup(self) -> BatchRunner:
        with self._setup_lock:
            if self._runner is None:
                url = resolve_queue_url(self.client, self.settings.sqs_queue)
                sqs = SqsQueue(self.client, url)
                self._settler = Settler(sqs)
                self._runner = BatchRunner(
                    self.executor, sqs, self._settler, self.dlq, self.visibility, self._stopping
                )
            return self._runner

    def _dispatch(self, runner: BatchRunner, messages: Sequence[Received]) -> None:
        """Hand a received batch to the pool: one slot per message, planned off this thread.

        Parsing and the batch claim run on a pool thread, so this thread goes straight
        back to receiving; the planning task then runs the batch's first task itself.
        """
        if not messages:
            return
        runner.settler.expect(len(messages))
        self.pool.reserve(len(messages))
        plan = partial(self._plan_and_run, runner, messages)
        self.pool.submit([plan], reserved=1)

    def _plan_and_run(self, runner: BatchRunner, messages: Sequence[Received]) -> None:
        spare = len(messages) - 1  # reserved slots beyond the one this task runs in
        if self._stopping.is_set():  # nothing of this batch has started: give it all back
            self.pool.release(spare)
            runner.give_back(messages)
            return
        try:
            tasks = runner.plan(messages)
        except Exception:
            self.pool.release(spare)
            log.exception("could not prepare a batch of %d; giving it back", len(messages))
            for message in messages:
                runner.settler.release(message, GIVE_BACK_DELAY)
            return
        # The rest start as soon as this thread or another is free, or after a moment on an
        # idle thread: quick tools run here one after another without waking a thread each.
        self.pool.defer(tasks[1:], reserved=spare)
        if tasks:
            tasks[0]()

    def _drain(self) -> None:
        if self._stop_deadline is None:  # run() ended by an exception, not by stop()
            self._stop_deadline = time.monotonic() + self.settings.shutdown_grace
        while not self.pool.join(_SLICE):
            if time.monotonic() >= self._stop_deadline:
                self.unfinished = self.pool.busy
                log.warning(
                    "%d tool(s) still running after the shutdown grace; their messages "
                    "come back when the visibility timeout runs out",
                    self.unfinished,
                )
                break
        if self._settler is not None and not self._settler.flush(SETTLE_TIMEOUT):
            log.warning("some deletes or visibility changes were not sent before exit")
        log.info("stopped consuming %s", self.settings.sqs_queue)

    def _sleep(self, seconds: float) -> None:
        # Sliced sleep, not Event.wait: a signal handler calling stop() must never find
        # the main thread holding the event's lock.
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and time.monotonic() < deadline:
            time.sleep(min(_SLICE, max(0.0, deadline - time.monotonic())))

    def _close_owned(self) -> None:
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            try:
                close()
            except Exception:
                log.warning("closing %r failed", close, exc_info=True)

