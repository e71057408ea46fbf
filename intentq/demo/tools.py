"""The demo's tools: a booking table with no unique constraint, so a double booking would show.

Every call of a tool is logged in ``runs`` (attempt, outcome); every side effect is a row in
its own table. The demo's checks count both.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from intentq.context import ToolContext
from intentq.errors import TransientError
from intentq.registry import Registry

# The slow tool's lease is short on purpose: it outlives it only because the heartbeat
# extends it; without the heartbeat a duplicate would take the key over and run it again.
SLOW_LEASE = 1.0
SLOW_SECONDS = 2.5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bookings (
    id INTEGER PRIMARY KEY, intent_key TEXT, slot TEXT, customer TEXT, booked_at REAL
);
CREATE TABLE IF NOT EXISTS invoices (id INTEGER PRIMARY KEY, intent_key TEXT, customer TEXT);
CREATE TABLE IF NOT EXISTS emails (id INTEGER PRIMARY KEY, intent_key TEXT, customer TEXT);
CREATE TABLE IF NOT EXISTS notifications (id INTEGER PRIMARY KEY, intent_key TEXT, text TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, tool TEXT, intent_key TEXT, attempt INTEGER, outcome TEXT,
    detail TEXT
);
"""
# No UNIQUE anywhere above: the demo shows that intentq, not the table, stops doubles.


class World:
    """The demo's own database: side-effect tables and a log of tool runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.lease_probe: Callable[[str, str], float | None] = lambda tool, key: None
        with self.connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in a transaction, committed on a clean exit, always closed."""
        with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
            yield db

    def write(self, sql: str, *params: Any) -> int:
        with self._lock, self.connect() as db:
            return int(db.execute(sql, params).lastrowid or 0)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.connect() as db:
            return list(db.execute(sql, params).fetchall())

    def run(self, ctx: ToolContext, outcome: str, detail: str = "") -> None:
        self.write(
            "INSERT INTO runs (tool, intent_key, attempt, outcome, detail) VALUES (?, ?, ?, ?, ?)",
            ctx.tool, ctx.key, ctx.attempt, outcome, detail,
        )  # fmt: skip

    def runs(self, tool: str, key: str) -> list[tuple[int, str, str]]:
        """``(attempt, outcome, detail)`` of every call of ``tool`` under ``key``."""
        rows = self.query(
            "SELECT attempt, outcome, detail FROM runs WHERE tool = ? AND intent_key = ? "
            "ORDER BY id",
            tool, key,
        )  # fmt: skip
        return [(int(a), str(o), str(d)) for a, o, d in rows]


class BookSlot(BaseModel):
    """Version 1 of the booking schema: ``slot`` and ``customer``, nothing else."""

    model_config = ConfigDict(extra="forbid")
    slot: str
    customer: str


class BookSlotV2(BaseModel):
    """The fix: old agents still send ``time`` for ``slot``; accept both."""

    model_config = ConfigDict(extra="forbid")
    slot: str = Field(validation_alias=AliasChoices("slot", "time"))
    customer: str


class Customer(BaseModel):
    customer: str


class Note(BaseModel):
    text: str


def build_registry(world: World, *, fixed: bool = False) -> Registry:
    """The tools as first deployed, or (``fixed``) after the fix the replay needs."""
    registry = Registry()

    @registry.tool("book_slot", args=BookSlotV2 if fixed else BookSlot)
    def book_slot(args: BookSlot | BookSlotV2, ctx: ToolContext) -> dict[str, Any]:
        booking_id = world.write(
            "INSERT INTO bookings (intent_key, slot, customer, booked_at) VALUES (?, ?, ?, ?)",
            ctx.key, args.slot, args.customer, time.time(),
        )  # fmt: skip
        world.run(ctx, "ok", f"booked {args.slot} for {args.customer}")
        return {"booking_id": booking_id, "slot": args.slot, "customer": args.customer}

    @registry.tool("generate_invoice", args=Customer, lease=SLOW_LEASE)
    def generate_invoice(args: Customer, ctx: ToolContext) -> dict[str, Any]:
        before = world.lease_probe(ctx.tool, ctx.key)
        time.sleep(SLOW_SECONDS)  # ran past its lease; the heartbeat kept the claim alive
        after = world.lease_probe(ctx.tool, ctx.key)
        invoice_id = world.write(
            "INSERT INTO invoices (intent_key, customer) VALUES (?, ?)", ctx.key, args.customer
        )
        moved = f"lease pushed {after - before:.1f}s further" if before and after else ""
        world.run(ctx, "ok", f"took {SLOW_SECONDS}s with a {SLOW_LEASE}s lease; {moved}")
        return {"invoice_id": invoice_id}

    @registry.tool("send_confirmation", args=Customer, max_attempts=3)
    def send_confirmation(args: Customer, ctx: ToolContext) -> dict[str, Any]:
        if ctx.attempt == 1:
            world.run(ctx, "TransientError", "mail server busy (first attempt)")
            raise TransientError("mail server busy, try again")
        email_id = world.write(
            "INSERT INTO emails (intent_key, customer) VALUES (?, ?)", ctx.key, args.customer
        )
        world.run(ctx, "ok", f"sent on attempt {ctx.attempt}")
        return {"email_id": email_id}

    if fixed:
        # Deployed with the fix: intents for it were dead-lettered as unknown_tool before.
        @registry.tool("notify_staff", args=Note)
        def notify_staff(args: Note, ctx: ToolContext) -> dict[str, Any]:
            note_id = world.write(
                "INSERT INTO notifications (intent_key, text) VALUES (?, ?)", ctx.key, args.text
            )
            world.run(ctx, "ok", "staff notified")
            return {"notification_id": note_id}

    return registry
