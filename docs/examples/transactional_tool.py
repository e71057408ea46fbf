"""A transactional tool: its rows commit with the completion record, or not at all."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from intentq import Registry, ToolContext
from myapp.db import bookings

registry = Registry()


@registry.tool("book_slot", transactional=True)
def book_slot(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    ctx.session.execute(insert(bookings).values(idem_key=ctx.key, slot=args["slot"]))
    return {"slot": args["slot"]}
