"""Dead letters: messages that will not be retried on their own, kept for operators."""

from intentq.dlq.base import DeadLetter, DeadLetterStore, LetterFilter, Page, Reason
from intentq.dlq.factory import open_dlq

__all__ = ["DeadLetter", "DeadLetterStore", "LetterFilter", "Page", "Reason", "open_dlq"]
