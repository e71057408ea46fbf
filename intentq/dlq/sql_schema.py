"""The dead-letter table: one row per letter, every ``DeadLetter`` field a column."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

DEFAULT_TABLE = "intentq_dead_letters"


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on PostgreSQL (timestamptz) and SQLite (naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # A naive time is taken as UTC: the executor only ever writes aware UTC times.
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # SQLite compares times as text: store every one in UTC without an offset so that
        # text order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def dead_letter_table(name: str = DEFAULT_TABLE, metadata: MetaData | None = None) -> Table:
    """The table (and its indexes) named ``name``; index names derive from it so they are unique.

    The table as the newest revision in ``intentq/migrations/dlq`` leaves it: the migrations
    create it, this definition reads and writes it.
    """
    table = Table(
        name,
        metadata if metadata is not None else MetaData(),
        # UUIDv7 text; with dead_at it orders letters "oldest first" (ties broken by id).
        Column("id", String(200), primary_key=True),
        Column("body", LargeBinary, nullable=False),
        Column("reason", String(32), nullable=False),
        # Free text: an unknown tool's name or a plain message's key comes from the message.
        Column("tool", Text),
        Column("key", Text),
        Column("intent_id", Text),
        Column("error_type", Text),
        Column("error_message", Text),
        Column("traceback", Text),
        Column("attempts", Integer, nullable=False, default=0),
        Column("source_transport", Text),
        Column("source_queue", Text),
        Column("first_seen", UtcDateTime),
        Column("dead_at", UtcDateTime, nullable=False),
        Column("replay_count", Integer, nullable=False, default=0),
        Column("last_replayed_at", UtcDateTime),
    )
    # Each filter an operator uses, then (dead_at, id): a filtered page is one index range.
    # The trailing tool and reason never change the order (id is unique): they let stats
    # group by tool, reason and age from the index alone.
    c = table.c
    Index(f"ix_{name}_tool_dead_at", c.tool, c.dead_at, c.id, c.reason)
    Index(f"ix_{name}_reason_dead_at", c.reason, c.dead_at, c.id, c.tool)
    Index(f"ix_{name}_dead_at_id", c.dead_at, c.id, c.tool, c.reason)
    return table
