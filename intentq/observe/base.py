"""The observer seam: what the executor and the transports report, and the no-op default.

The executor calls an ``Observer`` once per decision: a tool starts, a tool ends, a delivery
is concluded (with its dedup decision and outcome), a store call fails, a lease is extended.
The transports wrap each delivery in ``processing()``, so a tracer can open a span the tool
runs in. Metrics, tracing and structured logs are observers; ``Observers`` fans out to several.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from intentq.dedup.base import Acquired, Busy, Cached, Dead, Mismatch
from intentq.outcome import Ack, Delivery, Outcome, RetryLater, SendToDLQ

if TYPE_CHECKING:
    from intentq.dedup.base import Claim
    from intentq.executor import Job

# What ``intentq_intents_total{outcome}`` counts, one per delivery.
OUTCOMES = (
    "completed",  # the tool ran and its result was recorded
    "duplicate",  # the key had completed (or was dead-lettered) before: the tool did not run
    "retried",  # the tool failed transiently: the message comes back, an attempt spent
    "dead_lettered",  # a letter was written (poison, schema, permanent, exhausted...)
    "deferred_busy",  # another worker holds the key: the message comes back later
    "deferred_store_outage",  # the store could not be reached: nothing was decided
    "lease_lost",  # the tool ran, but another worker had taken the key over: message given back
)
# What ``intentq_dedup_decisions_total{decision}`` counts: the store's answer to a claim.
DECISIONS = ("acquired", "takeover", "cached", "busy", "mismatch", "dead")

_NULL_CONTEXT: AbstractContextManager[None] = nullcontext()


def outcome_label(outcome: Outcome) -> str:
    """One of ``OUTCOMES``."""
    if isinstance(outcome, Ack):
        return "duplicate" if outcome.cached else "completed"
    if isinstance(outcome, RetryLater):
        if outcome.spend_attempt:
            return "retried"
        if outcome.cause in ("store_outage", "lease_lost"):
            return "deferred_store_outage" if outcome.cause == "store_outage" else "lease_lost"
        return "deferred_busy"
    if isinstance(outcome, SendToDLQ):
        return "dead_lettered"
    return "duplicate"  # AlreadyDead: one letter is enough


def decision_label(claim: Claim | RetryLater | None) -> str | None:
    """One of ``DECISIONS``; ``None`` when the store was never asked or did not answer."""
    if isinstance(claim, Acquired):
        return "takeover" if claim.takeover else "acquired"
    if isinstance(claim, Cached):
        return "cached"
    if isinstance(claim, Busy):
        return "busy"
    if isinstance(claim, Mismatch):
        return "mismatch"
    if isinstance(claim, Dead):
        return "dead"
    return None


@dataclass(frozen=True, slots=True)
class Report:
    """How one delivery ended: what the store said, what became of it, how long it took."""

    delivery: Delivery
    outcome: Outcome
    job: Job | None = None  # None: the message never parsed into a job (poison)
    claim: Claim | RetryLater | None = None
    seconds: float = 0.0  # from the claim's answer to the outcome, the tool included

    @property
    def tool(self) -> str | None:
        if self.job is not None:
            return self.job.tool
        if isinstance(self.outcome, SendToDLQ):
            return self.outcome.letter.tool
        return None

    @property
    def attempt(self) -> int | None:
        return self.claim.attempt if isinstance(self.claim, Acquired) else None

    @property
    def outcome_label(self) -> str:
        return outcome_label(self.outcome)

    @property
    def decision(self) -> str | None:
        return decision_label(self.claim)

    @property
    def dead_reason(self) -> str | None:
        return self.outcome.reason if isinstance(self.outcome, SendToDLQ) else None


class Observer(Protocol):
    """What intentq reports as it works; every method must be cheap and must not raise."""

    def processing(
        self, delivery: Delivery, prepared: Job | SendToDLQ, carrier: Mapping[str, str]
    ) -> AbstractContextManager[object]:
        """Around one delivery's handling (the tool runs inside); ``carrier`` holds the
        transport's trace headers (``traceparent``)."""
        ...

    def tool_started(self, job: Job, attempt: int) -> None:
        """The tool is about to run."""
        ...

    def tool_finished(self, job: Job, seconds: float) -> None:
        """The tool returned or raised, and its result or failure was recorded."""
        ...

    def concluded(self, report: Report) -> None:
        """A delivery's outcome is decided (the transport carries it out next)."""
        ...

    def store_failed(self, queue: str, operation: str) -> None:
        """A store call failed with ``StoreUnavailable``: claim, complete, release, fail, extend."""
        ...

    def lease_extended(self, job: Job) -> None:
        """A heartbeat extended the lease of a running tool."""
        ...


class NullObserver:
    """Reports nothing: the executor's default."""

    def processing(
        self, delivery: Delivery, prepared: Job | SendToDLQ, carrier: Mapping[str, str]
    ) -> AbstractContextManager[object]:
        return _NULL_CONTEXT

    def tool_started(self, job: Job, attempt: int) -> None:
        pass

    def tool_finished(self, job: Job, seconds: float) -> None:
        pass

    def concluded(self, report: Report) -> None:
        pass

    def store_failed(self, queue: str, operation: str) -> None:
        pass

    def lease_extended(self, job: Job) -> None:
        pass


class Observers:
    """Several observers as one, called in order."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.observers = tuple(observers)

    def processing(
        self, delivery: Delivery, prepared: Job | SendToDLQ, carrier: Mapping[str, str]
    ) -> AbstractContextManager[object]:
        stack = ExitStack()
        for observer in self.observers:
            stack.enter_context(observer.processing(delivery, prepared, carrier))
        return stack

    def tool_started(self, job: Job, attempt: int) -> None:
        for observer in self.observers:
            observer.tool_started(job, attempt)

    def tool_finished(self, job: Job, seconds: float) -> None:
        for observer in self.observers:
            observer.tool_finished(job, seconds)

    def concluded(self, report: Report) -> None:
        for observer in self.observers:
            observer.concluded(report)

    def store_failed(self, queue: str, operation: str) -> None:
        for observer in self.observers:
            observer.store_failed(queue, operation)

    def lease_extended(self, job: Job) -> None:
        for observer in self.observers:
            observer.lease_extended(job)


def combine(observers: Sequence[Observer]) -> Observer:
    """No observer -> ``NullObserver``; one -> itself; more -> ``Observers``."""
    if not observers:
        return NullObserver()
    if len(observers) == 1:
        return observers[0]
    return Observers(observers)
