"""Transactional completion by hand: what the executor does for a transactional tool."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from intentq.dedup import Acquired
from myapp.db import bookings


def book_in_one_transaction(store: Any, key: str, fingerprint: str) -> None:
    """``store``: a SQL store (``SqlDedupStore``), the tool's tables in its database."""
    claim = store.claim("book_slot", key, fingerprint, lease=300, ttl=86400)
    assert isinstance(claim, Acquired)
    with store.transaction("book_slot", key, claim.token, ttl=86400) as txn:
        txn.session.execute(insert(bookings).values(idem_key=key, slot="15:00"))
        txn.complete({"slot": "15:00"})  # the fenced completion UPDATE, same transaction
