"""PostgreSQL: each relay locks its batch ``FOR UPDATE SKIP LOCKED`` in a transaction that
lasts until the batch is marked, so relays running at once never take the same row.

A relay that dies before its commit (a SIGKILL between sending and marking) loses its
locks when its connection closes: the rows are pending again, and the next relay sends
them once more, which the idempotency key makes harmless.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from intentq.outbox.claims.base import Batch, Marks, in_group_order, pending_rows, write_marks
from intentq.outbox.table import OutboxRow

if TYPE_CHECKING:
    from intentq.outbox.database import OutboxDatabase


class SkipLocked:
    """Batches locked row by row; any number of relays on one table."""

    def __init__(self, db: OutboxDatabase) -> None:
        self.db = db

    @contextmanager
    def batch(self, limit: int) -> Iterator[Batch]:
        db = self.db
        with db.begin() as conn:
            # A mark lost to a database crash only means the rows are sent again (and the
            # keys dedup them): the relay's commits need not wait for the WAL flush.
            conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            query = pending_rows(db.table, db.dialect, limit).with_for_update(skip_locked=True)
            rows = [OutboxRow.of(r) for r in conn.execute(query)]
            rows = in_group_order(conn, db.table, rows)

            def mark(marks: Marks) -> None:
                write_marks(conn, db.table, db.dialect, marks)

            yield Batch(rows, mark)

    def release(self) -> None:
        """Nothing held between batches."""
