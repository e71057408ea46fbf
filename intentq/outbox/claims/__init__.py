"""How a relay takes rows to send: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (many relays at
once), a lease on the whole table on SQLite (one relay at a time)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from intentq.outbox.claims.base import Batch, Claimer, Marks, in_group_order

if TYPE_CHECKING:
    from intentq.outbox.database import OutboxDatabase

__all__ = ["Batch", "Claimer", "Marks", "claimer_for", "in_group_order"]


def claimer_for(db: OutboxDatabase, owner: str, lease: float) -> Claimer:
    """The claimer for ``db``'s dialect; ``owner`` names this relay, ``lease`` (seconds) is how
    long SQLite's lease outlives a relay that stopped renewing it."""
    if db.dialect == "postgresql":
        from intentq.outbox.claims.postgres import SkipLocked

        return SkipLocked(db)
    from intentq.outbox.claims.sqlite import TableLease

    return TableLease(db, owner, lease)
