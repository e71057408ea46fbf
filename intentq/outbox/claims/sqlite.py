"""SQLite: one relay at a time, by a lease on the table (the ``{table}_relay`` row).

SQLite has one writer and no row locks, so relays do not share the work: the relay holding
the lease sends, the others wait and take over once it has gone unrenewed for ``lease``
seconds. The holder renews it at every batch, and marks a batch only while it still holds
it (its fencing); a relay that died after sending and before marking has its rows sent
again by the next holder, which the idempotency key makes harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import sqlalchemy as sa

from intentq.outbox.claims.base import Batch, Marks, in_group_order, pending_rows, write_marks
from intentq.outbox.table import LEASE_ROW, OutboxRow, now_sql

if TYPE_CHECKING:
    from intentq.outbox.database import OutboxDatabase

log = logging.getLogger("intentq.outbox")


class TableLease:
    """Batches for the relay that holds the table's lease; none for the others."""

    def __init__(self, db: OutboxDatabase, owner: str, lease: float) -> None:
        self.db = db
        self.owner = owner
        self.lease = lease
        self.holding = False

    def _renew(self, conn: sa.Connection, *, take: bool) -> bool:
        """Extend the lease if this relay holds it, or (``take``) if it ran out."""
        c, now = self.db.lease.c, now_sql(self.db.dialect)
        mine = c.owner == self.owner
        result = conn.execute(
            sa.update(self.db.lease)
            .where(c.name == LEASE_ROW, sa.or_(mine, c.lease_until < now) if take else mine)
            .values(owner=self.owner, lease_until=now + self.lease)
        )
        return result.rowcount == 1

    @contextmanager
    def batch(self, limit: int) -> Iterator[Batch]:
        db = self.db
        with db.begin() as conn:
            held = self._renew(conn, take=True)
            rows: list[OutboxRow] = []
            if held:
                rows = [
                    OutboxRow.of(r) for r in conn.execute(pending_rows(db.table, db.dialect, limit))
                ]
                rows = in_group_order(conn, db.table, rows)
        if held != self.holding:
            self.holding = held
            if held:
                log.info("this relay (%s) holds the outbox table %r", self.owner, db.table.name)
            else:
                log.info("another relay holds the outbox table %r: standing by", db.table.name)
        yield Batch(rows, self._mark)

    def _mark(self, marks: Marks) -> None:
        db = self.db
        with db.begin() as conn:
            if not self._renew(conn, take=False):
                # Another relay took over while this one sent: it will send these rows again.
                log.warning(
                    "the relay lease on %r ran out while sending; %d row(s) left to the next "
                    "holder (sent again, deduplicated by their keys)", db.table.name, len(marks),
                )  # fmt: skip
                self.holding = False
                return
            write_marks(conn, db.table, db.dialect, marks)

    def release(self) -> None:
        c = self.db.lease.c
        with self.db.begin() as conn:
            conn.execute(
                sa.update(self.db.lease)
                .where(c.name == LEASE_ROW, c.owner == self.owner)
                .values(owner=None, lease_until=0.0)
            )
        self.holding = False
