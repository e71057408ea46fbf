"""Tools the command-line tests run in real worker processes.

Each call of ``book_slot`` inserts a row into ``cli_effects`` (no unique constraint) in the
database named by ``CLI_EFFECTS_DSN``: a second execution would show as a second row.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict

from intentq import Registry, ToolContext

EFFECTS_DSN = "CLI_EFFECTS_DSN"
TABLE_DDL = "CREATE TABLE IF NOT EXISTS cli_effects (tool TEXT, key TEXT, slot TEXT)"

registry = Registry()


class Slot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slot: str


def record_effect(tool: str, key: str, slot: str) -> None:
    import psycopg

    with psycopg.connect(os.environ[EFFECTS_DSN], autocommit=True) as conn:
        conn.execute(TABLE_DDL)
        conn.execute("INSERT INTO cli_effects VALUES (%s, %s, %s)", (tool, key, slot))


@registry.tool("book_slot", args=Slot)
def book_slot(args: Slot, ctx: ToolContext) -> dict[str, Any]:
    record_effect(ctx.tool, ctx.key, args.slot)
    return {"booked": args.slot}


@registry.tool("refuse_slot", args=Slot)
def refuse_slot(args: Slot, ctx: ToolContext) -> dict[str, Any]:
    raise ValueError(f"slot {args.slot} is closed")
