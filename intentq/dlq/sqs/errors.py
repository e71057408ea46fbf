"""SQS failures as DLQ errors: unreachable or throttled -> ``DLQUnavailable``, else the rest."""

from __future__ import annotations

from contextlib import AbstractContextManager

from intentq.errors import DLQError, DLQUnavailable
from intentq.sqs import errors as sqs_errors


def translated(queue: str, action: str) -> AbstractContextManager[None]:
    """Run an SQS call; its failure comes out as a DLQ error with the cause chained."""
    return sqs_errors.translated(
        f"SQS {action} on {queue!r} failed",
        error=DLQError,
        unavailable=DLQUnavailable,
        unreachable=f"SQS unreachable for {action} on {queue!r}",
        missing=(
            f"the DLQ queue {queue!r} does not exist: run `intentq init` (or create_schema()) first"
        ),
    )
