"""Transport-free decisions: envelope in, outcome out. Both consumers use this one module.

A transport hands over the raw body and what it knows of the delivery; the executor parses,
claims the key in the store, runs the tool with its lease kept alive, records the result and
answers with an ``Outcome`` the transport carries out with its own verbs.
"""

from __future__ import annotations

import functools
import logging
import random
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from intentq.context import ToolContext
from intentq.dedup.base import (
    Acquired,
    Busy,
    Cached,
    Claim,
    ClaimRequest,
    CompleteRequest,
    Dead,
    DedupStore,
    Mismatch,
    TransactionalStore,
)
from intentq.dlq.base import DeadLetter, Reason
from intentq.errors import (
    ConfigError,
    InvalidArgs,
    InvalidIntent,
    LeaseLost,
    Retry,
    StoreUnavailable,
    UnknownTool,
)
from intentq.heartbeat import Heartbeat
from intentq.intent import Intent, canonical_json, fingerprint, new_intent_id, normalize_key
from intentq.observe.base import NullObserver, Observer, Report
from intentq.outcome import Ack, AlreadyDead, Delivery, Outcome, RetryLater, SendToDLQ
from intentq.policy import Policy, is_retryable
from intentq.registry import Registry, ToolSpec
from intentq.retrying import doubling, retry_call

log = logging.getLogger("intentq.executor")

# A message whose key another worker took over comes back after this long (seconds).
LEASE_LOST_DELAY = 1.0
# While the store is down after a tool ran, the completion is retried from this pause,
# doubling to at least this often.
COMPLETE_RETRY_FIRST = 0.02
COMPLETE_RETRY_MAX = 0.5
# A duplicate that finds its key busy first looks again after about this long (seconds).
BUSY_RECHECK_FIRST = 0.5
HeartbeatFn = Callable[[], None]


@dataclass(frozen=True)
class Job:
    """A delivery that parsed and validated: ready to claim."""

    spec: ToolSpec
    key: str
    intent_id: str
    args: Any  # validated: a model instance, or a dict
    fingerprint: str
    body: bytes
    delivery: Delivery
    meta: Mapping[str, Any] = field(default_factory=dict)
    created_at: str = ""  # the envelope's: when the intent was made (ISO 8601, UTC)

    @property
    def tool(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Ran:
    """A tool that ran and returned, its result not yet recorded (``resolve_deferred``)."""

    job: Job
    claim: Acquired
    result: Any
    began: float  # perf_counter() when the claim's answer came, for the report


def _now() -> datetime:
    return datetime.now(UTC)


class Executor:
    """Runs each ``(tool, key)`` at most once and says what to do with every delivery."""

    def __init__(
        self,
        registry: Registry,
        store: DedupStore,
        policy: Policy | None = None,
        heartbeat: Heartbeat | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.policy = policy or Policy()
        self.heartbeat = heartbeat or Heartbeat()
        # Told of every decision: metrics, traces and structured logs (intentq.observe).
        self.observer: Observer = observer or NullObserver()

    # -- parse ---------------------------------------------------------------------------

    def prepare(self, body: bytes, delivery: Delivery) -> Job | SendToDLQ:
        """Parse and validate an envelope; poison becomes ``SendToDLQ`` at once."""
        try:
            intent = Intent.parse(body, max_bytes=self.policy.max_message_bytes)
        except InvalidIntent as exc:
            return self._letter(
                body, delivery, Reason.POISON, exc, error_type=f"InvalidIntent.{exc.reason}"
            )
        try:
            spec = self.registry.get(intent.tool)
        except UnknownTool as exc:
            return self._letter(body, delivery, Reason.UNKNOWN_TOOL, exc, intent=intent)
        return self.prepare_job(
            spec, intent.args, intent.key, intent.intent_id, body, delivery, intent.meta,
            intent.created_at,
        )  # fmt: skip

    def prepare_job(
        self,
        spec: ToolSpec,
        args: Mapping[str, Any],
        key: str,
        intent_id: str,
        body: bytes,
        delivery: Delivery,
        meta: Mapping[str, Any] | None = None,
        created_at: str = "",
    ) -> Job | SendToDLQ:
        """Validate a job that did not come as an envelope (a plain Celery task, say)."""
        try:
            key = normalize_key(key)
            digest = fingerprint(spec.name, args)
        except (InvalidIntent, TypeError, ValueError) as exc:
            return self._letter(
                body, delivery, Reason.POISON, exc, tool=spec.name, intent_id=intent_id
            )
        try:
            validated = spec.validate(args)
        except InvalidArgs as exc:
            return self._letter(
                body, delivery, Reason.SCHEMA, exc, tool=spec.name, key=key, intent_id=intent_id,
                digest=digest,
            )  # fmt: skip
        return Job(
            spec, key, intent_id, validated, digest, body, delivery, dict(meta or {}), created_at
        )

    # -- claim ---------------------------------------------------------------------------

    def claim(self, jobs: Sequence[Job]) -> list[Claim | RetryLater]:
        """Claim a batch in one store call; an outage answers ``RetryLater`` for each."""
        requests = [
            ClaimRequest(
                job.tool,
                job.key,
                job.fingerprint,
                self.policy.lease_for(job.spec),
                self.policy.ttl_for(job.spec),
            )
            for job in jobs
        ]
        try:
            if len(requests) == 1:  # one message (Celery): a plain call, no pipeline to build
                r = requests[0]
                return [self.store.claim(r.tool, r.key, r.fingerprint, r.lease, r.ttl)]
            return list(self.store.claim_many(requests))
        except StoreUnavailable as exc:
            log.warning("store unavailable, deferring %d message(s): %s", len(jobs), exc)
            self.observer.store_failed(jobs[0].delivery.queue, "claim")
            return [self._outage(str(exc)) for _ in jobs]

    def process(
        self, body: bytes, delivery: Delivery, heartbeat: HeartbeatFn | None = None
    ) -> Outcome:
        """Everything for one message: prepare, claim, run, record."""
        job = self.prepare(body, delivery)
        if isinstance(job, SendToDLQ):
            return job
        return self.resolve(job, self.claim([job])[0], heartbeat)

    # -- decide --------------------------------------------------------------------------

    def resolve(
        self, job: Job, claim: Claim | RetryLater, heartbeat: HeartbeatFn | None = None
    ) -> Outcome:
        """Turn a claim into an outcome, running the tool when the claim was acquired."""
        began = time.perf_counter()
        outcome = self._decide(job, claim, heartbeat, defer=False)
        assert not isinstance(outcome, Ran)
        seconds = time.perf_counter() - began
        self.observer.concluded(Report(job.delivery, outcome, job, claim, seconds))
        return outcome

    def resolve_deferred(
        self, job: Job, claim: Claim | RetryLater, heartbeat: HeartbeatFn | None = None
    ) -> Outcome | Ran:
        """``resolve``, except that a tool that ran and returned is handed back as ``Ran``,
        unrecorded and unreported: the caller records it with ``record_many`` (or
        ``record``) before acknowledging its message, then reports it with ``conclude``. A
        transactional tool still completes in its own transaction, and every other outcome
        is final and reported, as ``resolve`` makes it.
        """
        began = time.perf_counter()
        outcome = self._decide(job, claim, heartbeat, defer=True)
        if isinstance(outcome, Ran):
            return replace(outcome, began=began)
        seconds = time.perf_counter() - began
        self.observer.concluded(Report(job.delivery, outcome, job, claim, seconds))
        return outcome

    def record_many(self, ran: Sequence[Ran]) -> list[Outcome] | None:
        """Record the results of tools that ran in one store call (``complete_many``).

        An entry whose lease was lost is given back (``fenced``), as ``resolve`` answers.
        ``None`` if the call failed (the store unreachable, or any store error): record
        each with ``record`` then, which retries. Report each outcome with ``conclude``.
        """
        requests = [
            CompleteRequest(
                r.job.tool, r.job.key, r.claim.token, r.result, self.policy.ttl_for(r.job.spec)
            )
            for r in ran
        ]
        try:
            answers = self.store.complete_many(requests)
        except Exception as exc:
            if isinstance(exc, StoreUnavailable):
                self.observer.store_failed(ran[0].job.delivery.queue, "complete")
            log.warning("could not record %d result(s) at once; one by one: %s", len(ran), exc)
            return None
        return [
            Ack(r.result) if lost is None else fenced(r.job)
            for r, lost in zip(ran, answers, strict=True)
        ]

    def record(self, ran: Ran, heartbeat: HeartbeatFn | None = None) -> Outcome:
        """Record one result as ``resolve`` does: retried while the store is down, for a
        whole lease, with the lease (and ``heartbeat``) kept alive meanwhile. Report the
        outcome with ``conclude``."""
        job, claim = ran.job, ran.claim
        try:
            lease = self.policy.lease_for(job.spec)
            with self.heartbeat.beating(lease / 3, self._beater(job, claim, heartbeat)):
                outcome = self._complete(job, claim, ran.result)
        except Exception as exc:  # a store error that is no outage: as if the tool raised it
            outcome = self._failed(job, claim, exc, self.policy.max_attempts_for(job.spec))
        return outcome

    def conclude(self, ran: Ran, outcome: Outcome) -> None:
        """Report how a delivery whose result was recorded later ended (``Observer``)."""
        seconds = time.perf_counter() - ran.began
        self.observer.concluded(Report(ran.job.delivery, outcome, ran.job, ran.claim, seconds))

    def _decide(
        self, job: Job, claim: Claim | RetryLater, heartbeat: HeartbeatFn | None, defer: bool
    ) -> Outcome | Ran:
        if isinstance(claim, RetryLater):
            return claim
        if isinstance(claim, Cached):
            return Ack(claim.result, cached=True)
        if isinstance(claim, Dead):
            return self._dead(job, claim)
        if isinstance(claim, Mismatch):
            detail = (
                f"key {job.key!r} was first used with fingerprint {claim.existing[:12]}..., "
                f"now with {claim.fingerprint[:12]}..."
            )
            return self._job_letter(
                job, Reason.KEY_REUSE_MISMATCH, "KeyReuseMismatch", detail, attempts=0
            )
        if isinstance(claim, Busy):
            if job.delivery.receive_count > self.policy.max_receives:
                return self._job_letter(
                    job,
                    Reason.EXHAUSTED,
                    "TooManyReceives",
                    f"received {job.delivery.receive_count} times while another worker held it",
                    attempts=0,
                )
            return RetryLater(
                self._busy_delay(claim, job.delivery), spend_attempt=False, why="busy", cause="busy"
            )
        return self._run(job, claim, heartbeat, defer)

    def _busy_delay(self, claim: Busy, delivery: Delivery) -> float:
        # A duplicate of a fast tool should get its cached answer soon, not after the whole
        # lease; the wait doubles with each delivery so a long tool costs few receives.
        recheck = BUSY_RECHECK_FIRST * 2.0 ** min(max(delivery.receive_count - 1, 0), 16)
        return min(claim.retry_after, recheck * (0.5 + random.random() / 2))

    def _run(
        self, job: Job, claim: Acquired, heartbeat: HeartbeatFn | None, defer: bool
    ) -> Outcome | Ran:
        spec, max_attempts = job.spec, self.policy.max_attempts_for(job.spec)
        if claim.attempt > max_attempts or job.delivery.receive_count > self.policy.max_receives:
            # Earlier owners claimed and never finished: this message kills its worker.
            detail = (
                f"claimed {claim.attempt} times (max_attempts {max_attempts}) without finishing"
            )
            if claim.attempt <= max_attempts:
                detail = (
                    f"received {job.delivery.receive_count} times (max {self.policy.max_receives})"
                )
            return self._fail(job, claim, Reason.CRASH_LOOP, "CrashLoop", detail, None)
        lease = self.policy.lease_for(spec)
        ctx = ToolContext(
            tool=spec.name,
            key=job.key,
            intent_id=job.intent_id,
            attempt=claim.attempt,
            meta=job.meta,
            logger=_tool_logger(spec.name),
        )

        self.observer.tool_started(job, claim.attempt)
        began = time.perf_counter()
        try:
            with self.heartbeat.beating(lease / 3, self._beater(job, claim, heartbeat)):
                if spec.transactional:
                    return Ack(self._run_transactional(job, claim, ctx))
                result = spec.handler(job.args, ctx)
                canonical_json(result)
                if defer:
                    return Ran(job, claim, result, began)
                # Recorded while the heartbeat still beats: a store that comes back renews the
                # lease before any other worker could take the key over.
                return self._complete(job, claim, result)
        except LeaseLost:
            log.warning(
                "%s:%s lost its lease while running; another worker owns it", job.tool, job.key
            )
            return fenced(job)
        except Exception as exc:
            return self._failed(job, claim, exc, max_attempts)
        finally:
            self.observer.tool_finished(job, time.perf_counter() - began)

    def _beater(self, job: Job, claim: Acquired, heartbeat: HeartbeatFn | None) -> HeartbeatFn:
        """The beat that keeps ``claim``'s lease alive, and calls ``heartbeat`` after it."""
        lease = self.policy.lease_for(job.spec)

        def beat() -> None:
            try:
                self.store.extend(job.tool, job.key, claim.token, lease)
            except StoreUnavailable:
                self.observer.store_failed(job.delivery.queue, "extend")
                raise
            self.observer.lease_extended(job)
            if heartbeat is not None:
                heartbeat()

        return beat

    def _run_transactional(self, job: Job, claim: Acquired, ctx: ToolContext) -> Any:
        if not isinstance(self.store, TransactionalStore):
            raise ConfigError(f"tool {job.tool!r} is transactional but the store is not SQL")
        with self.store.transaction(
            job.tool, job.key, claim.token, self.policy.ttl_for(job.spec)
        ) as txn:
            result = job.spec.handler(job.args, _with_session(ctx, txn.session))
            canonical_json(result)
            txn.complete(result)
        return result

    def _complete(self, job: Job, claim: Acquired, result: Any) -> Outcome:
        # The side effect happened: keep trying to record it for a whole lease, because a
        # message retried without a completion record would be taken over and run again.
        ttl = self.policy.ttl_for(job.spec)
        try:
            retry_call(
                lambda: self.store.complete(job.tool, job.key, claim.token, result, ttl),
                retry_on=StoreUnavailable,
                pauses=doubling(
                    COMPLETE_RETRY_FIRST, COMPLETE_RETRY_MAX, within=self.policy.lease_for(job.spec)
                ),
                on_failure=lambda exc, pause: self.observer.store_failed(
                    job.delivery.queue, "complete"
                ),
            )
        except LeaseLost:
            return fenced(job)
        except StoreUnavailable as exc:
            log.error("%s:%s ran but could not be recorded: %s", job.tool, job.key, exc)
            return self._outage(str(exc))
        return Ack(result)

    def _failed(self, job: Job, claim: Acquired, exc: Exception, max_attempts: int) -> Outcome:
        if isinstance(exc, Retry | ConfigError):
            retryable = isinstance(exc, Retry)
        else:
            retryable = is_retryable(job.spec, exc)
        name, message = type(exc).__name__, str(exc)
        tb = "".join(traceback.format_exception(exc))
        if not retryable:
            return self._fail(job, claim, Reason.PERMANENT, name, message, tb)
        if claim.attempt >= max_attempts:
            return self._fail(job, claim, Reason.EXHAUSTED, name, message, tb)
        try:
            self.store.release(job.tool, job.key, claim.token)
        except LeaseLost:
            return fenced(job)
        except StoreUnavailable as e:
            self.observer.store_failed(job.delivery.queue, "release")
            log.warning(
                "could not release %s:%s (%s); its lease will run out", job.tool, job.key, e
            )
        delay = exc.delay if isinstance(exc, Retry) else self.policy.backoff(claim.attempt)
        return RetryLater(delay, spend_attempt=True, why=f"{name}: {message}"[:200])

    def _fail(
        self,
        job: Job,
        claim: Acquired,
        reason: Reason,
        error_type: str,
        message: str,
        tb: str | None,
    ) -> Outcome:
        # The letter's id and the intent id go into the record, so a redelivery of this very
        # message (its letter may not have been written) can write the same letter again.
        letter_id = new_intent_id()
        error = {
            "reason": str(reason), "type": error_type, "message": message[:2000],
            "attempts": claim.attempt, "intent_id": job.intent_id, "letter_id": letter_id,
        }  # fmt: skip
        try:
            self.store.fail(job.tool, job.key, claim.token, error, self.policy.ttl_for(job.spec))
        except LeaseLost:
            return fenced(job)
        except StoreUnavailable as exc:
            self.observer.store_failed(job.delivery.queue, "fail")
            # The letter still goes to the DLQ; the record's lease runs out and a duplicate
            # may try again, which is what a replay would do anyway.
            log.warning("could not mark %s:%s failed: %s", job.tool, job.key, exc)
        return self._job_letter(
            job, reason, error_type, message, attempts=claim.attempt, tb=tb, letter_id=letter_id
        )

    def _dead(self, job: Job, claim: Dead) -> Outcome:
        error = claim.error
        if error.get("intent_id") != job.intent_id or not error.get("letter_id"):
            return AlreadyDead(error)  # another message for a dead key: one letter is enough
        # The message that failed, delivered again: the transport may have failed to write
        # its letter before, so write it again under the same id (stores upsert by id).
        return self._job_letter(
            job, Reason(error.get("reason", Reason.PERMANENT)), str(error.get("type")),
            str(error.get("message", "")), attempts=int(error.get("attempts", 0)),
            letter_id=str(error["letter_id"]),
        )  # fmt: skip

    # -- letters -------------------------------------------------------------------------

    def _outage(self, why: str) -> RetryLater:
        return RetryLater(
            self.policy.outage_delay(1),
            spend_attempt=False,
            why=why,
            cause="store_outage",
        )

    def _job_letter(
        self,
        job: Job,
        reason: Reason,
        error_type: str,
        message: str,
        attempts: int,
        tb: str | None = None,
        letter_id: str = "",
    ) -> SendToDLQ:
        return _send_to_dlq(
            job.body, job.delivery, reason, error_type, message, tool=job.tool, key=job.key,
            intent_id=job.intent_id, attempts=attempts, tb=tb, letter_id=letter_id,
        )  # fmt: skip

    def _letter(
        self,
        body: bytes,
        delivery: Delivery,
        reason: Reason,
        exc: Exception,
        *,
        intent: Intent | None = None,
        tool: str | None = None,
        key: str | None = None,
        intent_id: str | None = None,
        error_type: str | None = None,
        digest: str | None = None,
    ) -> SendToDLQ:
        # The message never became a job: its dead letter is the delivery's whole story.
        if intent is not None:
            tool, key, intent_id = intent.tool, intent.key, intent.intent_id
            digest = intent.fingerprint
        error_type, message = error_type or type(exc).__name__, str(exc)[:2000]
        letter_id = ""
        if tool and key and digest:
            letter_id = self._refused(tool, key, digest, intent_id, reason, error_type, message)
        letter = _send_to_dlq(
            body, delivery, reason, error_type, message, tool=tool, key=key,
            intent_id=intent_id, letter_id=letter_id,
        )  # fmt: skip
        self.observer.concluded(Report(delivery, letter))
        return letter

    def _refused(
        self,
        tool: str,
        key: str,
        digest: str,
        intent_id: str | None,
        reason: Reason,
        error_type: str,
        message: str,
    ) -> str:
        """Mark a refused intent failed in the store; the id its letter is to have.

        A waiter on ``(tool, key)`` then learns of the letter in one store read, as it does
        of a tool's failure, instead of searching the DLQ. A key someone else holds is left
        alone; this very message delivered again gets the letter id it got the first time.
        """
        letter_id = new_intent_id()
        try:
            claim = self.store.claim(tool, key, digest, self.policy.lease, self.policy.ttl)
            if isinstance(claim, Acquired):
                error = {
                    "reason": str(reason), "type": error_type, "message": message,
                    "attempts": 0, "intent_id": intent_id, "letter_id": letter_id,
                }  # fmt: skip
                self.store.fail(tool, key, claim.token, error, self.policy.ttl)
            elif (
                isinstance(claim, Dead)
                and claim.error.get("letter_id")
                and (claim.error.get("intent_id") == intent_id)
            ):
                letter_id = str(claim.error["letter_id"])
        except (StoreUnavailable, LeaseLost) as exc:
            # The letter still goes to the DLQ; only a waiter misses it (and times out).
            log.warning("could not record the refusal of %s:%s: %s", tool, key, exc)
        return letter_id


def _send_to_dlq(
    body: bytes,
    delivery: Delivery,
    reason: Reason,
    error_type: str,
    message: str,
    *,
    tool: str | None,
    key: str | None,
    intent_id: str | None,
    attempts: int = 0,
    tb: str | None = None,
    letter_id: str = "",
) -> SendToDLQ:
    """The one place the executor builds a dead letter: dead now, first seen now."""
    now = _now()
    return SendToDLQ(
        DeadLetter(
            id=letter_id,
            body=body,
            reason=reason,
            tool=tool,
            key=key,
            intent_id=intent_id,
            error_type=error_type,
            error_message=message,
            traceback=tb,
            attempts=attempts,
            source_transport=delivery.transport,
            source_queue=delivery.queue,
            first_seen=now,
            dead_at=now,
        )
    )


@functools.cache
def _tool_logger(tool: str) -> logging.Logger:
    # getLogger takes the logging module's lock on every call: once per tool is enough.
    return logging.getLogger(f"intentq.tool.{tool}")


def _with_session(ctx: ToolContext, session: Any) -> ToolContext:
    return replace(ctx, session=session)


def fenced(job: Job) -> RetryLater:
    """Another worker took the key over while this one ran: give the message back, never
    ack it. This delivery may be the message's latest, and the new owner may still hold an
    older one of its own: acked here, the message could be gone while the new owner has yet
    to finish (the protocol model's counterexample, docs/reliability/model.md). Delivered
    again, it finds the key completed (the new owner's result) or busy, and waits."""
    log.warning("%s:%s: another worker owns the key now; the message goes back", job.tool, job.key)
    return RetryLater(
        LEASE_LOST_DELAY, spend_attempt=False, why="lease lost to another worker",
        cause="lease_lost",
    )  # fmt: skip
