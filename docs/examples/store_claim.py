"""The idempotency store by hand: claim a key, run once, record the result."""

from __future__ import annotations

from typing import Any

from intentq.dedup import Acquired, Busy, Cached, Dead, DedupStore, Mismatch, open_store


def open_and_prepare(url: str) -> DedupStore:
    store = open_store(url)  # postgresql+psycopg://…, redis://…, sqlite:///…, memory://
    store.create_schema()  # the SQL table (idempotent); Redis: loads its scripts
    return store


def book_once(store: DedupStore, key: str, fingerprint: str) -> Any:
    claim = store.claim("book_slot", key, fingerprint, lease=300, ttl=86400)
    if isinstance(claim, Acquired):  # ours: run the tool, then record what it returned
        result = {"booked": "15:00"}
        store.complete("book_slot", key, claim.token, result, ttl=86400)
        return result
    if isinstance(claim, Cached):  # done before: claim.result (0, {}, None… kept as they were)
        return claim.result
    if isinstance(claim, Busy):  # another owner's lease runs: come back later
        raise TimeoutError(f"running elsewhere, retry in {claim.retry_after:.2f} s")
    if isinstance(claim, Dead):  # dead-lettered, until a replay resets it
        raise RuntimeError(f"dead-lettered: {claim.error}")
    assert isinstance(claim, Mismatch)  # same key, other arguments: a client bug
    raise ValueError(f"key reused with other arguments (first: {claim.existing})")
