"""The examples' tools. Run a worker for them with:

intentq worker --app examples.tools:registry
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from intentq import Registry, ToolContext

registry = Registry()


class BookSlot(BaseModel):
    slot: str = Field(description="The slot to book, HH:MM.")


@registry.tool("book_slot", args=BookSlot, destructive=False)
def book_slot(args: BookSlot, ctx: ToolContext) -> dict[str, str]:
    """Book a slot in the calendar."""
    # A real tool passes ctx.key on as the calendar API's Idempotency-Key.
    return {"booked": args.slot, "booking": ctx.key[:8]}
