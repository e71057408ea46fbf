"""The idempotency store: one record per ``(tool, key)``, claimed atomically with a lease."""

from intentq.dedup.base import (
    Acquired,
    Busy,
    Cached,
    Claim,
    ClaimRequest,
    Dead,
    DedupStore,
    Mismatch,
    Record,
    State,
)
from intentq.dedup.factory import open_store

__all__ = [
    "Acquired",
    "Busy",
    "Cached",
    "Claim",
    "ClaimRequest",
    "Dead",
    "DedupStore",
    "Mismatch",
    "Record",
    "State",
    "open_store",
]
