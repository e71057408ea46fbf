"""The idempotency store: one record per ``(tool, key)``, claimed atomically with a lease."""

from intentq.connections import open_store
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
