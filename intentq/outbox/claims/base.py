"""What every claimer shares: a batch of rows, what became of each, and writing that down."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from intentq.outbox.table import OutboxRow, RowState, now_sql


@dataclass
class Marks:
    """What became of a batch's rows, by row id. Rows in none of the three stay pending as
    they were (the broker was out of reach: ``held`` says why)."""

    sent: dict[int, str | None] = field(default_factory=dict)  # -> the broker's message id
    failed: dict[int, str] = field(default_factory=dict)  # -> why it can never be sent
    deferred: dict[int, tuple[str, float]] = field(default_factory=dict)  # -> (why, seconds)
    held: BaseException | None = None

    def __len__(self) -> int:
        return len(self.sent) + len(self.failed) + len(self.deferred)


@dataclass
class Batch:
    """Rows claimed by one relay until ``mark`` writes down what became of them."""

    rows: list[OutboxRow]
    mark: Callable[[Marks], None]


class Claimer(Protocol):
    """Takes batches of pending rows for one relay."""

    def batch(self, limit: int) -> AbstractContextManager[Batch]:
        """Up to ``limit`` rows no other relay holds, oldest first, each FIFO group's in
        order; held until the block ends."""
        ...

    def release(self) -> None:
        """Let go of the table (a relay stopping cleanly)."""
        ...


def pending_rows(table: sa.Table, dialect: str, limit: int) -> sa.Select[tuple[object, ...]]:
    """Pending rows whose time has come, oldest first."""
    c = table.c
    return (
        sa.select(table)
        .where(c.state == RowState.PENDING.value, c.available_at <= now_sql(dialect))
        .order_by(c.id)
        .limit(limit)
    )


def in_group_order(conn: sa.Connection, table: sa.Table, rows: list[OutboxRow]) -> list[OutboxRow]:
    """``rows`` less those of a FIFO group whose earlier pending row is not among them.

    Another relay may hold an earlier row of the group, or it may wait for a retry: sending
    a later one first would break the group's order. Rows without a group pass as they are.
    """
    grouped = {(r.queue, r.group_id) for r in rows if r.group_id is not None}
    if not grouped:
        return rows
    c = table.c
    top = max(r.id for r in rows if r.group_id is not None)
    earlier = conn.execute(
        sa.select(c.id, c.queue, c.group_id)
        .where(
            c.state == RowState.PENDING.value,
            c.group_id.in_(sorted({g for _, g in grouped})),
            c.id <= top,
        )
        .order_by(c.id)
    ).all()
    mine = {r.id for r in rows}
    blocked: set[tuple[str, str | None]] = set()
    ready: set[int] = set()
    for row_id, queue, group in earlier:
        where = (queue, group)
        if where not in grouped or where in blocked:
            continue
        if row_id in mine:
            ready.add(row_id)
        else:
            blocked.add(where)
    return [r for r in rows if r.group_id is None or r.id in ready]


def write_marks(conn: sa.Connection, table: sa.Table, dialect: str, marks: Marks) -> None:
    """Record what became of each row, in ``conn``'s transaction."""
    c, now = table.c, now_sql(dialect)
    by_id = c.id == sa.bindparam("row_id")
    attempt = c.attempts + 1
    if marks.sent and dialect == "postgresql":
        # One statement for the whole batch: the ids and message ids as two arrays.
        sent = sa.select(
            sa.func.unnest(sa.bindparam("ids", type_=ARRAY(sa.BigInteger))).label("id"),
            sa.func.unnest(sa.bindparam("mids", type_=ARRAY(sa.Text))).label("mid"),
        ).subquery()
        conn.execute(
            sa.update(table).where(c.id == sent.c.id).values(
                state=RowState.SENT.value, sent_at=now, attempts=attempt, error=None,
                message_id=sent.c.mid,
            ),
            {"ids": list(marks.sent), "mids": list(marks.sent.values())},
        )  # fmt: skip
    elif marks.sent:
        conn.execute(
            sa.update(table).where(by_id).values(
                state=RowState.SENT.value, sent_at=now, attempts=attempt, error=None,
                message_id=sa.bindparam("message_id"),
            ),
            [{"row_id": i, "message_id": m} for i, m in marks.sent.items()],
        )  # fmt: skip
    if marks.failed:
        conn.execute(
            sa.update(table)
            .where(by_id)
            .values(state=RowState.FAILED.value, attempts=attempt, error=sa.bindparam("why")),
            [{"row_id": i, "why": why} for i, why in marks.failed.items()],
        )
    if marks.deferred:
        conn.execute(
            sa.update(table).where(by_id).values(
                attempts=attempt, error=sa.bindparam("why"),
                available_at=now + sa.bindparam("delay", type_=sa.Double()),
            ),
            [{"row_id": i, "why": why, "delay": d} for i, (why, d) in marks.deferred.items()],
        )  # fmt: skip
