"""Dead letters in an SQS queue: ``SqsDeadLetterStore``, the letter's encoding in message
attributes (``codec``), scans of the queue (``scan``) and letters held while a scan runs
(``hold``)."""

from __future__ import annotations

from intentq.dlq.sqs.store import SqsDeadLetterStore

__all__ = ["SqsDeadLetterStore"]
