"""What the executor tells a transport to do with a delivery."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from intentq.dlq.base import DeadLetter


@dataclass(frozen=True)
class Delivery:
    """Facts a transport knows about one delivery of a message."""

    transport: str  # "sqs", "celery", "memory"
    queue: str
    message_id: str
    receive_count: int = 1  # SQS ApproximateReceiveCount, Celery retries + 1


@dataclass(frozen=True)
class Ack:
    """Done: acknowledge (delete) the message. ``cached``: a duplicate, the tool did not run."""

    result: Any
    cached: bool = False


@dataclass(frozen=True)
class RetryLater:
    """Give the message back to be delivered again in ``delay`` seconds.

    ``spend_attempt`` is false when the tool never ran (a live duplicate, a store outage);
    ``cause`` says which: ``failed`` (the tool raised), ``busy``, ``store_outage`` or
    ``lease_lost`` (another worker took the key over while the tool ran).
    """

    delay: float
    spend_attempt: bool
    why: str = ""
    cause: Literal["failed", "busy", "store_outage", "lease_lost"] = "failed"


@dataclass(frozen=True)
class SendToDLQ:
    """Write ``letter`` to the dead-letter store, then acknowledge the message."""

    letter: DeadLetter

    @property
    def reason(self) -> str:
        return str(self.letter.reason)


@dataclass(frozen=True)
class AlreadyDead:
    """A duplicate of an intent already dead-lettered: acknowledge, write nothing new."""

    error: dict[str, Any]


Outcome = Ack | RetryLater | SendToDLQ | AlreadyDead
