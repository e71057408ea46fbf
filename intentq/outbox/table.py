"""The outbox table: one row per intent an application committed, until a relay sent it.

A row holds the finished envelope (``body``, canonical JSON, with the writer's trace context
in ``meta``), where it goes (``transport``, ``queue``, the FIFO ``group_id``) and its state.
Times are seconds since the epoch on the database's clock (``now_sql``), so a lease, a lag
or a retention period is plain arithmetic on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

# The single row of ``{table}_relay``: which relay holds the table (SQLite).
LEASE_ROW = "relay"


class RowState(enum.StrEnum):
    """Where a row is: waiting to be sent, sent (kept for audit), or refused for good."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


def outbox_table(name: str, metadata: sa.MetaData | None = None) -> sa.Table:
    """The table as this code reads and writes it (revision 1)."""
    seconds: sa.Double[float] = sa.Double()
    return sa.Table(
        name,
        metadata if metadata is not None else sa.MetaData(),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("intent_id", sa.String(36), nullable=False, unique=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("tool", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("traceparent", sa.Text),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("queue", sa.Text, nullable=False),
        sa.Column("group_id", sa.Text),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("message_id", sa.Text),
        sa.Column("created_at", seconds, nullable=False),
        sa.Column("available_at", seconds, nullable=False),
        sa.Column("sent_at", seconds),
    )


def lease_table(name: str, metadata: sa.MetaData | None = None) -> sa.Table:
    """``{name}_relay``: the relay lease (owner and expiry) of the table ``name``."""
    return sa.Table(
        f"{name}_relay",
        metadata if metadata is not None else sa.MetaData(),
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(64)),
        sa.Column("lease_until", sa.Double(), nullable=False),
    )


def now_sql(dialect: str) -> sa.ColumnElement[float]:
    """The database's clock in epoch seconds (PostgreSQL: at the statement, not the
    transaction's start)."""
    if dialect == "sqlite":
        return sa.literal_column("((julianday('now') - 2440587.5) * 86400.0)", sa.Double())
    return sa.literal_column(
        "(extract(epoch from clock_timestamp())::double precision)", sa.Double()
    )


@dataclass(frozen=True)
class OutboxRow:
    """One row as the relay and the operators' commands read it."""

    id: int
    intent_id: str
    key: str
    tool: str
    body: str
    traceparent: str | None
    transport: str
    queue: str
    group_id: str | None
    state: str
    attempts: int
    error: str | None
    message_id: str | None
    created_at: float
    available_at: float
    sent_at: float | None

    @classmethod
    def of(cls, row: Any) -> OutboxRow:
        return cls(**dict(row._mapping))

    def summary(self) -> dict[str, Any]:
        """Everything but the body, for listings."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out.pop("body")
        return out
