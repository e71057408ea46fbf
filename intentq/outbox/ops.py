"""What operators do with the outbox table: count, list, send failed rows again, delete.

The relay deletes sent rows past the retention period with ``purge_sent``; ``intentq outbox``
calls the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from intentq.outbox.table import LEASE_ROW, OutboxRow, RowState, now_sql

if TYPE_CHECKING:
    from intentq.outbox.database import OutboxDatabase

# Rows one DELETE removes: a purge never holds a long lock on a busy table.
PURGE_BATCH = 1000


@dataclass(frozen=True)
class OutboxStats:
    """The table at a glance; ages in seconds on the database's clock."""

    pending: int
    sent: int
    failed: int
    oldest_pending_age: float | None  # the relay's lag: how long the oldest row has waited
    last_sent_age: float | None
    relay_owner: str | None  # SQLite: the relay holding the lease (None: none or expired)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stats(db: OutboxDatabase) -> OutboxStats:
    """Counts by state, the oldest pending row's age and the last send's."""
    c, now = db.table.c, now_sql(db.dialect)
    with db.begin() as conn:
        counts = {
            str(state): int(n)
            for state, n in conn.execute(sa.select(c.state, sa.func.count()).group_by(c.state))
        }
        oldest = conn.execute(
            sa.select(now - sa.func.min(c.created_at)).where(c.state == RowState.PENDING.value)
        ).scalar()
        last = conn.execute(
            sa.select(now - sa.func.max(c.sent_at)).where(c.state == RowState.SENT.value)
        ).scalar()
        lease = db.lease.c
        owner = conn.execute(
            sa.select(lease.owner).where(lease.name == LEASE_ROW, lease.lease_until >= now)
        ).scalar()
    return OutboxStats(
        pending=counts.get(RowState.PENDING, 0),
        sent=counts.get(RowState.SENT, 0),
        failed=counts.get(RowState.FAILED, 0),
        oldest_pending_age=None if oldest is None else max(0.0, float(oldest)),
        last_sent_age=None if last is None else max(0.0, float(last)),
        relay_owner=owner if db.dialect == "sqlite" else None,
    )


def list_rows(
    db: OutboxDatabase,
    *,
    state: RowState | None = None,
    tool: str | None = None,
    limit: int = 50,
    after: int | None = None,
) -> list[OutboxRow]:
    """Rows oldest first, after row id ``after`` (paging)."""
    c = db.table.c
    query = sa.select(db.table).order_by(c.id).limit(limit)
    if state is not None:
        query = query.where(c.state == state.value)
    if tool is not None:
        query = query.where(c.tool == tool)
    if after is not None:
        query = query.where(c.id > after)
    with db.begin() as conn:
        return [OutboxRow.of(row) for row in conn.execute(query)]


def retry_failed(db: OutboxDatabase, ids: Sequence[int] | None = None) -> int:
    """Failed rows (all, or those of ``ids``) back to pending, to be sent at once."""
    c = db.table.c
    query = (
        sa.update(db.table)
        .where(c.state == RowState.FAILED.value)
        .values(state=RowState.PENDING.value, attempts=0, available_at=now_sql(db.dialect))
    )
    if ids is not None:
        query = query.where(c.id.in_(list(ids)))
    with db.begin() as conn:
        return int(conn.execute(query).rowcount)


def purge_sent(db: OutboxDatabase, older_than: float, batch: int = PURGE_BATCH) -> int:
    """Delete rows sent more than ``older_than`` seconds ago, ``batch`` rows per
    transaction; returns how many went."""
    c = db.table.c
    cutoff = now_sql(db.dialect) - older_than
    removed = 0
    while True:
        oldest = (
            sa.select(c.id)
            .where(c.state == RowState.SENT.value, c.sent_at < cutoff)
            .order_by(c.sent_at)
            .limit(batch)
        )
        with db.begin() as conn:
            done = int(conn.execute(sa.delete(db.table).where(c.id.in_(oldest))).rowcount)
        removed += done
        if done < batch:
            return removed


def purge_failed(db: OutboxDatabase, ids: Sequence[int] | None = None) -> int:
    """Delete failed rows (all, or those of ``ids``): they will never be sent."""
    c = db.table.c
    query = sa.delete(db.table).where(c.state == RowState.FAILED.value)
    if ids is not None:
        query = query.where(c.id.in_(list(ids)))
    with db.begin() as conn:
        return int(conn.execute(query).rowcount)
