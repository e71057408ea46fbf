"""The tool's own table: a unique column holds the idempotency key (the backstop)."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table

metadata = MetaData()
bookings = Table(
    "bookings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("idem_key", String(255), nullable=False, unique=True),  # ctx.key, not intent_id
    Column("slot", String(32), nullable=False),
)
