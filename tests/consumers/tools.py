"""The tools every consumer's contract runs, importable by worker processes.

Each side effect is a row in the PostgreSQL table of ``tests.celery.tools.note`` (named by
its environment variables), without a unique constraint: a tool that ran twice for one key
leaves two rows.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from intentq import Registry, ToolContext, TransientError
from tests.celery.tools import note

# A held tool gives up after this long, so a test that failed never leaves it behind.
HOLD_LIMIT = 60.0


class Count(BaseModel):
    count: int


class Hold(BaseModel):
    gate: str
    first_only: bool = False  # only the first attempt waits: a takeover runs straight through


def build_registry() -> Registry:
    """``record``, ``hold``, ``typed``, ``refuse`` and ``always_flaky``."""
    registry = Registry()

    @registry.tool("record")
    def record(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """The side effect, then a fresh token: equal tokens mean one run's result."""
        note("effect", ctx)
        return {"value": args.get("value"), "token": uuid.uuid4().hex, "attempt": ctx.attempt}

    @registry.tool("hold", args=Hold)
    def hold(args: Hold, ctx: ToolContext) -> dict[str, Any]:
        """Starts, waits for the ``gate`` file, then has its side effect."""
        note("call", ctx)
        if ctx.attempt == 1 or not args.first_only:
            gate, deadline = Path(args.gate), time.monotonic() + HOLD_LIMIT
            while not gate.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("the gate never opened")
                time.sleep(0.02)
        note("effect", ctx)
        return {"attempt": ctx.attempt}

    @registry.tool("typed", args=Count)
    def typed(args: Count, ctx: ToolContext) -> int:
        note("effect", ctx)
        return args.count

    @registry.tool("refuse")
    def refuse(args: dict[str, Any], ctx: ToolContext) -> None:
        note("call", ctx)
        raise ValueError("this slot is closed")

    @registry.tool("always_flaky", max_attempts=2)
    def always_flaky(args: dict[str, Any], ctx: ToolContext) -> None:
        note("call", ctx)
        raise TransientError(f"attempt {ctx.attempt} fails")

    return registry


registry = build_registry()
