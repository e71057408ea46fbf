"""The backstop: a unique column on ``ctx.key`` in the tool's own table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from intentq.dedup.backstop import insert_once
from myapp.db import bookings


def book(store: Any, key: str, token: str) -> bool:
    """Write the booking under the key's claim ``token``; False if it was there already."""
    with store.transaction("book_slot", key, token) as txn:
        first = insert_once(txn.session, insert(bookings).values(idem_key=key, slot="15:00"))
        # True: the row is written now. False: the unique key was there, it was done before.
        txn.complete({"slot": "15:00", "first": first})
    return first
