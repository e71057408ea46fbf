"""Tools the observed workers run, importable by worker subprocesses (``tests.observe.tools``).

Each call leaves a file ``<pid>-<ppid>-<tool>-<uuid>`` in the directory ``OBSERVE_CALLS``
names (when set), so a test can tell which worker process ran it.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from opentelemetry import trace
from pydantic import BaseModel

from intentq import Registry, ToolContext, TransientError

CALLS_ENV = "OBSERVE_CALLS"
GATE_ENV = "OBSERVE_GATE"

registry = Registry()


def mark(ctx: ToolContext) -> None:
    calls = os.environ.get(CALLS_ENV)
    if calls:
        name = f"{os.getpid()}-{os.getppid()}-{ctx.tool}-{uuid.uuid4().hex[:8]}"
        (Path(calls) / name).touch()


@registry.tool("ok")
def ok(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    mark(ctx)
    time.sleep(float(args.get("sleep", 0)))
    return {"n": args.get("n"), "attempt": ctx.attempt}


@registry.tool("flaky", max_attempts=3)
def flaky(args: dict[str, Any], ctx: ToolContext) -> int:
    """Fails transiently on its first attempt."""
    mark(ctx)
    if ctx.attempt == 1:
        raise TransientError("the first attempt fails")
    return ctx.attempt


@registry.tool("broken")
def broken(args: dict[str, Any], ctx: ToolContext) -> None:
    """Fails permanently: dead-lettered as ``permanent`` on its first attempt."""
    mark(ctx)
    raise ValueError("this tool never works")


class Count(BaseModel):
    count: int


@registry.tool("typed", args=Count)
def typed(args: Count, ctx: ToolContext) -> int:
    return args.count


@registry.tool("traced")
def traced(args: dict[str, Any], ctx: ToolContext) -> str:
    """Opens a span of its own: it must nest under the worker's ``process`` span."""
    with trace.get_tracer("tests.observe").start_as_current_span("tool work"):
        return ctx.key


@registry.tool("hold")
def hold(args: dict[str, Any], ctx: ToolContext) -> int:
    """First attempt: leaves ``hold-<pid>`` and waits for the gate file; later ones return."""
    if ctx.attempt == 1:
        gate = Path(os.environ[GATE_ENV])
        (gate.parent / f"hold-{os.getpid()}").touch()
        deadline = time.monotonic() + 60
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return ctx.attempt
