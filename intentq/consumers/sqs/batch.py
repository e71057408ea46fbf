"""One received batch turned into pool tasks: prepare, claim, run, then carry out the outcome.

Standard queues get one task per message, claimed together in one store call. A tool that
ran hands its result to the settler, which records the results of tools that finished close
together in one store call (``complete_many``) and deletes their messages after that; if
that call fails, each result is recorded on its own with the executor's retries, on a thread
of its own that keeps its lease alive. FIFO queues get one task per message group, which runs
the group's messages in order, each result recorded before the next message starts; a message
told to retry later holds its group, and the rest of the group is given back untouched so
SQS delivers it again in order. Transactional tools complete in their own transaction, one
by one, on either kind of queue.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any

from intentq.consumers.sqs.pool import Task
from intentq.consumers.sqs.receiver import Received, SqsQueue
from intentq.consumers.sqs.settle import Settler
from intentq.dedup.base import Claim
from intentq.dlq.base import DeadLetter, DeadLetterStore
from intentq.errors import TransportError
from intentq.executor import Executor, HeartbeatFn, Job, Ran
from intentq.outcome import Ack, AlreadyDead, Delivery, Outcome, RetryLater, SendToDLQ
from intentq.retrying import retry_call
from intentq.sqs.queues import visibility

log = logging.getLogger("intentq.sqs")

# A message whose dead letter could not be written (or whose handling crashed) comes back
# after this long: soon enough to retry, late enough not to spin.
GIVE_BACK_DELAY = 10
# Pauses between attempts to write a dead letter before giving the message back.
DLQ_PAUSES = (0.1, 0.5)

Prepared = Job | SendToDLQ
Entry = tuple[Received, Prepared]


@dataclass(frozen=True, slots=True)
class Pending:
    """A tool's result waiting to be recorded, its delivery's span still open.

    The span was entered in ``context``, a copy of the pool thread's context made for this
    delivery alone, so the thread that records the result can report the outcome inside it
    and end it there, while the pool thread has gone on to other messages.
    """

    ran: Ran
    span: AbstractContextManager[object]
    context: contextvars.Context


class BatchRunner:
    """Plans the tasks for a received batch and carries out what the executor decides."""

    def __init__(
        self,
        executor: Executor,
        sqs: SqsQueue,
        settler: Settler,
        dlq: DeadLetterStore,
        visibility: int,
        stopping: threading.Event,
    ) -> None:
        self.executor = executor
        self.sqs = sqs
        self.settler = settler
        self.dlq = dlq
        self.visibility = visibility
        self.stopping = stopping
        # Results being recorded one by one after a batch call failed, on threads of their own.
        self._alone = 0
        self._alone_done = threading.Condition()
        settler.use_recorder(self)

    def plan(self, messages: Sequence[Received]) -> list[Task]:
        """Prepare and claim ``messages``; one task per message, or per FIFO group."""
        entries = [(m, self.executor.prepare(m.body, self._delivery(m))) for m in messages]
        self._cover_long_leases(entries)
        if self.sqs.fifo:
            return self._plan_fifo(entries)
        claims = self._claim([(i, p) for i, (_, p) in enumerate(entries)])
        tasks: list[Task] = []
        for i, (message, prepared) in enumerate(entries):
            if isinstance(prepared, SendToDLQ):
                tasks.append(partial(self._dead_on_arrival, message, prepared))
            else:
                tasks.append(partial(self._run, message, prepared, claims[i], gather=True))
        return tasks

    def give_back(self, messages: Sequence[Received]) -> None:
        """Messages that will not start here: visible again at once, for another worker."""
        for message in messages:
            self.settler.release(message, 0)

    # -- planning ------------------------------------------------------------------------

    def _delivery(self, message: Received) -> Delivery:
        return Delivery(
            transport="sqs",
            queue=self.sqs.name,
            message_id=message.message_id,
            receive_count=message.receive_count,
        )

    def _claim(self, indexed: Sequence[tuple[int, Prepared]]) -> dict[int, Claim | RetryLater]:
        jobs = [(i, p) for i, p in indexed if isinstance(p, Job)]
        if not jobs:
            return {}
        claims = self.executor.claim([job for _, job in jobs])
        return {i: claim for (i, _), claim in zip(jobs, claims, strict=True)}

    def _cover_long_leases(self, entries: Sequence[Entry]) -> None:
        # A tool with a longer lease than the receive's visibility timeout would become
        # visible again before its first heartbeat: stretch it now.
        longer = []
        for message, prepared in entries:
            if isinstance(prepared, Job):
                lease = self._lease(prepared)
                if lease > self.visibility:
                    longer.append((message, lease))
        if longer:
            try:
                self.sqs.change_visibility(longer)
            except TransportError as exc:
                log.warning("could not stretch visibility for long leases: %s", exc)

    def _plan_fifo(self, entries: Sequence[Entry]) -> list[Task]:
        groups: dict[str, list[Entry]] = {}
        for message, prepared in entries:
            groups.setdefault(message.group_id or "", []).append((message, prepared))
        heads = list(groups.values())
        claims = self._claim([(n, group[0][1]) for n, group in enumerate(heads)])
        return [partial(self._run_group, group, claims.get(n)) for n, group in enumerate(heads)]

    # -- running -------------------------------------------------------------------------

    def _run_group(self, group: list[Entry], head_claim: Claim | RetryLater | None) -> None:
        waiting = [message for message, _ in group[1:]]

        def keep_waiting_hidden() -> None:
            # Later messages of the group wait for earlier ones; their visibility must not
            # run out meanwhile, or SQS would hand them to another worker out of order.
            self._extend_many(list(waiting), self.visibility)

        beat: AbstractContextManager[None] = nullcontext()
        if waiting:
            beat = self.executor.heartbeat.beating(self.visibility / 3, keep_waiting_hidden)
        with beat:
            for i, (message, prepared) in enumerate(group):
                if i:
                    if self.stopping.is_set():
                        self.give_back([m for m, _ in group[i:]])
                        return
                    waiting.pop(0)  # started: its own heartbeat keeps it hidden now
                if isinstance(prepared, SendToDLQ):
                    held = self._dead_on_arrival(message, prepared)
                else:
                    claim = head_claim if i == 0 and head_claim is not None else None
                    if claim is None:
                        claim = self.executor.claim([prepared])[0]
                    held = self._run(message, prepared, claim)
                if held:
                    self.give_back([m for m, _ in group[i + 1 :]])
                    return

    def _run(
        self, message: Received, job: Job, claim: Claim | RetryLater, gather: bool = False
    ) -> bool:
        """Resolve one job and carry out the outcome; ``True`` if the message was held.

        ``gather``: a result is left to the settler to record with others (``record``).
        """
        heartbeat = partial(self._extend_one, message, self._lease(job))
        try:
            if gather:
                context = contextvars.copy_context()
                outcome, span = context.run(self._start, message, job, claim, heartbeat)
                if isinstance(outcome, Ran):
                    self.settler.record(message, Pending(outcome, span, context))
                    return False
            else:
                # The tool runs inside the observer's span, so spans of its own nest under it.
                observer = self.executor.observer
                with observer.processing(job.delivery, job, message.attributes):
                    outcome = self.executor.resolve(job, claim, heartbeat=heartbeat)
        except Exception:
            log.exception("handling message %s failed; giving it back", message.message_id)
            self.settler.release(message, GIVE_BACK_DELAY)
            return True
        return self._carry_out(message, outcome)

    def _start(
        self, message: Received, job: Job, claim: Claim | RetryLater, heartbeat: HeartbeatFn
    ) -> tuple[Outcome | Ran, AbstractContextManager[object]]:
        """Resolve inside the delivery's span, which stays open if the result is pending."""
        span = self.executor.observer.processing(job.delivery, job, message.attributes)
        span.__enter__()
        try:
            outcome = self.executor.resolve_deferred(job, claim, heartbeat=heartbeat)
        except BaseException as exc:
            span.__exit__(type(exc), exc, exc.__traceback__)
            raise
        if not isinstance(outcome, Ran):
            span.__exit__(None, None, None)
        return outcome, span

    # -- recording (the settler's Recorder) ----------------------------------------------

    def record(self, entries: Sequence[tuple[Received, Any]]) -> list[bool]:
        """Record gathered results in one store call; ``True`` where the message may go.

        If the call fails, each result is recorded on its own (``Executor.record``: retried
        for a lease while the store is down, the lease and the message's visibility kept
        alive), and its message settled from there.
        """
        pending: list[Pending] = [p for _, p in entries]
        outcomes = self.executor.record_many([p.ran for p in pending])
        if outcomes is None:
            with self._alone_done:
                self._alone += len(entries)
            for message, p in entries:
                threading.Thread(
                    target=p.context.run,
                    args=(self._record_alone, message, p),
                    name="intentq-sqs-record",
                    daemon=True,
                ).start()
            return [False] * len(entries)
        done = []
        for (message, p), outcome in zip(entries, outcomes, strict=True):
            p.context.run(self._conclude, p, outcome)
            deletable = isinstance(outcome, Ack)
            if not deletable:
                self._carry_out(message, outcome)
            done.append(deletable)
        return done

    def join(self, timeout: float | None) -> bool:
        """Wait until results recorded one by one have been settled; ``False`` on timeout."""
        with self._alone_done:
            return self._alone_done.wait_for(lambda: not self._alone, timeout)

    def _record_alone(self, message: Received, p: Pending) -> None:
        try:
            heartbeat = partial(self._extend_one, message, self._lease(p.ran.job))
            outcome = self.executor.record(p.ran, heartbeat)
            self._conclude(p, outcome)
            self._carry_out(message, outcome)
        except Exception:
            log.exception("recording message %s failed; giving it back", message.message_id)
            self.settler.release(message, GIVE_BACK_DELAY)
        finally:
            with self._alone_done:
                self._alone -= 1
                if not self._alone:
                    self._alone_done.notify_all()

    def _conclude(self, p: Pending, outcome: Outcome) -> None:
        try:
            self.executor.conclude(p.ran, outcome)
        finally:
            p.span.__exit__(None, None, None)

    def _dead_on_arrival(self, message: Received, letter: SendToDLQ) -> bool:
        """A message that never became a job (poison): its letter, inside a span of its own."""
        observer = self.executor.observer
        with observer.processing(self._delivery(message), letter, message.attributes):
            return self._carry_out(message, letter)

    def _carry_out(self, message: Received, outcome: Outcome) -> bool:
        if isinstance(outcome, Ack | AlreadyDead):
            self.settler.delete(message)
            return False
        if isinstance(outcome, RetryLater):
            self.settler.release(message, visibility(outcome.delay))
            return True
        # The letter first: a message deleted before its letter is written would be lost.
        if self._put_letter(outcome.letter):
            self.settler.delete(message)
            return False
        self.settler.release(message, GIVE_BACK_DELAY)
        return True

    def _put_letter(self, letter: DeadLetter) -> bool:
        def failed(exc: BaseException, pause: float | None) -> None:
            if pause is None:
                log.error("could not write dead letter for %s: %s", letter.intent_id, exc)
            else:
                log.warning("dead-letter write failed, retrying: %s", exc)

        try:
            retry_call(
                lambda: self.dlq.put(letter),
                retry_on=Exception,
                pauses=DLQ_PAUSES,
                on_failure=failed,
            )
        except Exception:
            return False
        return True

    # -- visibility ----------------------------------------------------------------------

    def _lease(self, job: Job) -> int:
        return visibility(self.executor.policy.lease_for(job.spec))

    def _extend_one(self, message: Received, seconds: int) -> None:
        # Called by the heartbeat next to the store's extend. It never raises: a failing beat
        # is dropped, and the store's lease - not SQS visibility - is what keeps another
        # worker from running the tool. A delivery lost here only comes back as a duplicate.
        try:
            if not self.sqs.extend(message, seconds):
                log.info("message %s was delivered again elsewhere", message.message_id)
        except TransportError as exc:
            log.warning("could not extend visibility of %s: %s", message.message_id, exc)

    def _extend_many(self, messages: list[Received], seconds: int) -> None:
        if not messages:
            return
        try:
            self.sqs.change_visibility([(m, seconds) for m in messages])
        except TransportError as exc:
            log.warning("could not extend visibility of waiting messages: %s", exc)
