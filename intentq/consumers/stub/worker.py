"""``StubWorker``: consumes one ``StubBroker`` queue with the executor every worker uses.

Read top to bottom: ``run`` takes a free slot (one ``BoundedSemaphore``), receives one
message and hands it to the pool; ``_handle`` asks the executor and carries out its answer
with the broker's verbs: ack, retry later, or write the dead letter and then ack. The
heartbeat keeps the tool's lease and its message's visibility alive together. ``stop``
stops receiving, lets running tools finish within the grace and gives back what has not
started; ``kill`` walks away as a killed process would.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from intentq.consumers.stub.broker import DEFAULT_QUEUE, Received, StubBroker
from intentq.dedup.base import DedupStore
from intentq.dlq.base import DeadLetterStore
from intentq.executor import Executor
from intentq.heartbeat import Heartbeat
from intentq.observe.base import Observer
from intentq.outcome import Ack, AlreadyDead, Delivery, Outcome, RetryLater, SendToDLQ
from intentq.policy import Policy
from intentq.registry import Registry

log = logging.getLogger("intentq.stub")

TRANSPORT = "stub"
# How long one receive waits for a message: also how soon the loop notices ``stop()``.
POLL = 0.05
# Tools running at once unless told otherwise.
DEFAULT_CONCURRENCY = 4
# Running tools get this long to finish after ``stop()``, unless told otherwise.
DEFAULT_GRACE = 10.0
# A message whose dead letter could not be written comes back after this long.
GIVE_BACK_DELAY = 1.0
_names = itertools.count(1)


class StubWorker:
    """Every decision is the executor's; this class only carries it out on the broker.

    ``visibility`` defaults to the policy's lease. ``outcomes`` keeps each delivery with
    the executor's answer, for tests to look at.
    """

    def __init__(
        self,
        broker: StubBroker,
        registry: Registry,
        store: DedupStore,
        dlq: DeadLetterStore,
        *,
        queue: str = DEFAULT_QUEUE,
        concurrency: int = DEFAULT_CONCURRENCY,
        policy: Policy | None = None,
        visibility: float | None = None,
        heartbeat: Heartbeat | None = None,
        observer: Observer | None = None,
        name: str | None = None,
    ) -> None:
        self.broker, self.dlq, self.queue = broker, dlq, queue
        self.name = name or f"stub-worker-{next(_names)}"
        self.heartbeat = heartbeat or Heartbeat()
        self.executor = Executor(registry, store, policy, self.heartbeat, observer)
        self.visibility = self.executor.policy.lease if visibility is None else visibility
        self.outcomes: list[tuple[Received, Outcome]] = []
        self.unfinished = 0  # tools still running when the grace ran out
        self._slots = threading.BoundedSemaphore(concurrency)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix=self.name)
        self._idle = threading.Condition()
        self._running = 0
        self._stopping = threading.Event()
        self._gone = threading.Event()  # killed, or the grace ran out: nothing more is done
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> StubWorker:
        """Run the receive loop in a thread of its own."""
        self._thread = threading.Thread(target=self.run, name=f"{self.name}-loop", daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        """Receive and hand to the pool until ``stop()`` or ``kill()``."""
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=POLL):
                continue
            messages = self.broker.receive(self.queue, 1, self.visibility, wait=POLL)
            if not messages:
                self._slots.release()
                continue
            with self._idle:
                self._running += 1
            self._pool.submit(self._handle, messages[0])

    def stop(self, grace: float = DEFAULT_GRACE) -> bool:
        """Stop receiving and wait up to ``grace`` seconds for running tools; ``True`` if
        they all finished. What was received but not started is given back at once; a tool
        still running after the grace is left behind, its message comes back after the
        visibility timeout."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        finished = self._wait_idle(grace)
        if not finished:
            self.unfinished = self._running
            log.warning("%s: %d tool(s) still running after the grace", self.name, self._running)
            self._gone.set()
        self._pool.shutdown(wait=False)
        self.heartbeat.stop()
        return finished

    def kill(self) -> None:
        """Stop as a killed process would: no heartbeat, no verdicts, nothing given back.

        A running tool goes on in its thread (threads cannot be killed), but its lease and
        visibility run out and another worker takes the message over. If it returns after
        all, its result reaches the store only while it still holds the lease (the fencing
        token refuses it after a takeover), and the message is left as it was."""
        self._gone.set()
        self._stopping.set()
        self.heartbeat.stop()
        if self._thread is not None:
            self._thread.join()
        self._pool.shutdown(wait=False)

    def join(self, timeout: float = 10.0) -> None:
        """Wait until the queue is empty and nothing runs; ``TimeoutError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        self.broker.join(self.queue, timeout)
        if not self._wait_idle(deadline - time.monotonic()):
            raise TimeoutError(f"{self.name}: {self._running} tool(s) still running")

    def drain(self, timeout: float = 10.0) -> None:
        """Process everything on the queue, then stop: ``start``, ``join``, ``stop``."""
        if self._thread is None:
            self.start()
        try:
            self.join(timeout)
        finally:
            self.stop(0)

    @property
    def alive(self) -> bool:
        """Whether the receive loop runs: started, neither stopped nor killed."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def running(self) -> int:
        """Messages handed to the pool and not yet settled."""
        return self._running

    def __enter__(self) -> StubWorker:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one message ---------------------------------------------------------------------

    def _handle(self, message: Received) -> None:
        try:
            if self._gone.is_set():  # a killed worker's last receive: it just stays hidden
                return
            if self._stopping.is_set():  # received, not started: another worker's now
                self.broker.retry_later(message, 0)
                return
            outcome = self._decide(message)
            if not self._gone.is_set():
                self.outcomes.append((message, outcome))
                self._carry_out(message, outcome)
        except Exception:
            log.exception("%s: handling %s failed; giving it back", self.name, message.message_id)
            if not self._gone.is_set():
                self.broker.retry_later(message, GIVE_BACK_DELAY)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()
            self._slots.release()

    def _decide(self, message: Received) -> Outcome:
        delivery = Delivery(TRANSPORT, self.queue, message.message_id, message.receive_count)
        executor = self.executor
        job = executor.prepare(message.body, delivery)
        with executor.observer.processing(delivery, job, {}):
            if isinstance(job, SendToDLQ):
                return job
            lease = executor.policy.lease_for(job.spec)
            hidden = max(lease, self.visibility)
            if lease > self.visibility:  # hidden until the first heartbeat, not less
                self.broker.extend(message, hidden)
            claim = executor.claim([job])[0]
            beat = partial(self._keep_hidden, message, hidden)
            return executor.resolve(job, claim, heartbeat=beat)

    def _carry_out(self, message: Received, outcome: Outcome) -> None:
        if isinstance(outcome, Ack | AlreadyDead):
            if not self.broker.ack(message):
                log.info("%s: %s was delivered again elsewhere", self.name, message.message_id)
        elif isinstance(outcome, RetryLater):
            self.broker.retry_later(message, outcome.delay)
        else:  # the letter first: a message acked before its letter is written is lost
            try:
                self.dlq.put(outcome.letter)
            except Exception:
                log.exception("%s: could not write a dead letter; giving it back", self.name)
                self.broker.retry_later(message, GIVE_BACK_DELAY)
                return
            self.broker.ack(message)

    def _keep_hidden(self, message: Received, seconds: float) -> None:
        # Next to the store's extend: the store's lease, not visibility, keeps the tool from
        # running twice; a lost delivery only comes back as a duplicate.
        if not self._gone.is_set() and not self.broker.extend(message, seconds):
            log.info("%s: %s was delivered again elsewhere", self.name, message.message_id)

    def _wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True
