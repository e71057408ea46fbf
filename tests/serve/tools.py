"""Tools the MCP server tests serve, run by a real worker process.

Each run of a side-effecting tool inserts a row into ``mcp_effects`` (no unique constraint)
in the database named by ``MCP_EFFECTS_DSN``: a second run would show as a second row.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from intentq import Registry, ToolContext

EFFECTS_DSN = "MCP_EFFECTS_DSN"
TABLE_DDL = "CREATE TABLE IF NOT EXISTS mcp_effects (tool TEXT, key TEXT, slot TEXT)"

registry = Registry()


class Slot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slot: str = Field(description="The slot to book, HH:MM.")


class Nap(BaseModel):
    slot: str
    seconds: float = 0.0


def record_effect(tool: str, key: str, slot: str) -> None:
    import psycopg

    with psycopg.connect(os.environ[EFFECTS_DSN], autocommit=True) as conn:
        conn.execute(TABLE_DDL)
        conn.execute("INSERT INTO mcp_effects VALUES (%s, %s, %s)", (tool, key, slot))


@registry.tool("book_slot", args=Slot, destructive=False)
def book_slot(args: Slot, ctx: ToolContext) -> dict[str, Any]:
    """Book a slot in the calendar.

    Only adds a booking: nothing is overwritten.
    """
    record_effect(ctx.tool, ctx.key, args.slot)
    return {"booked": args.slot}


@registry.tool("slow_book", args=Nap, destructive=True)
def slow_book(args: Nap, ctx: ToolContext) -> dict[str, Any]:
    """Book a slot, slowly, replacing any booking there."""
    time.sleep(args.seconds)
    record_effect(ctx.tool, ctx.key, args.slot)
    return {"booked": args.slot}


@registry.tool("refuse_slot", args=Slot)
def refuse_slot(args: Slot, ctx: ToolContext) -> dict[str, Any]:
    raise ValueError(f"slot {args.slot} is closed")


@registry.tool("noop")
def noop(args: dict[str, Any], ctx: ToolContext) -> None:
    """Do nothing (a round trip's floor)."""
