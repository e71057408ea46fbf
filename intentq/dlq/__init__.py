"""Dead letters: messages that will not be retried on their own, kept for operators."""

from intentq.connections import open_dlq
from intentq.dlq.base import DeadLetter, DeadLetterStore, LetterFilter, Page, Reason
from intentq.dlq.purge import parse_age, purge
from intentq.dlq.replay import ReplayResult, ReplaySummary, replay

__all__ = [
    # the record and the store
    "DeadLetter",
    "DeadLetterStore",
    "LetterFilter",
    "Page",
    "Reason",
    "open_dlq",
    # operations
    "ReplayResult",
    "ReplaySummary",
    "parse_age",
    "purge",
    "replay",
]
