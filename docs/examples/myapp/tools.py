"""myapp/tools.py: the tools a worker runs (INTENTQ_APP=myapp.tools:registry)."""

from __future__ import annotations

from pydantic import BaseModel

from intentq import Registry, ToolContext

registry = Registry()  # explicit: there is no global default


class BookSlot(BaseModel):
    slot: str


@registry.tool("book_slot", args=BookSlot, max_attempts=5, retry_on=(TimeoutError,))
def book_slot(args: BookSlot, ctx: ToolContext) -> dict[str, str]:
    # ctx.key is the idempotency key: pass it on as the Idempotency-Key of APIs you call.
    return {"booked": args.slot, "idempotency_key": ctx.key}


class SendEmail(BaseModel):
    to: str


@registry.tool("send_email", args=SendEmail)
def send_email(args: SendEmail, ctx: ToolContext) -> dict[str, str]:
    return {"sent_to": args.to}
