"""A small registry to try the workers with (docker-compose.yml names it in ``INTENTQ_APP``).

Replace it with your own: ``INTENTQ_APP=yourpackage.tools:registry``.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

from intentq.context import ToolContext
from intentq.registry import Registry

log = logging.getLogger("intentq.example")

registry = Registry()


class BookSlot(BaseModel):
    slot: str
    customer: str


class Echo(BaseModel):
    text: str


@registry.tool("book_slot", args=BookSlot)
def book_slot(args: BookSlot, ctx: ToolContext) -> dict[str, Any]:
    """Pretend to book: log it; ``ctx.key`` is what a real booking API takes as Idempotency-Key."""
    log.info("booking %s for %s (Idempotency-Key %s)", args.slot, args.customer, ctx.key)
    return {"booked": args.slot, "customer": args.customer, "idempotency_key": ctx.key}


@registry.tool("echo", args=Echo)
def echo(args: Echo, ctx: ToolContext) -> dict[str, Any]:
    """Hand the text back: the smallest round trip through a worker."""
    return {"text": args.text, "attempt": ctx.attempt}
