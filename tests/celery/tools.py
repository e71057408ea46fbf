"""Tools the worker subprocesses run; every side effect is a row in a PostgreSQL table.

The table (named by ``CELERYTEST_FX_TABLE`` on ``CELERYTEST_FX_DSN``) has no unique
constraint, so a side effect that ran twice shows up as two rows.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from pydantic import BaseModel

from intentq import Registry, ToolContext, TransientError

FX_DSN = "CELERYTEST_FX_DSN"
FX_TABLE = "CELERYTEST_FX_TABLE"

registry = Registry()


def note(kind: str, ctx: ToolContext) -> None:
    """One row: ``kind`` is ``call`` (the tool started) or ``effect`` (the side effect)."""
    table = os.environ[FX_TABLE]
    with psycopg.connect(os.environ[FX_DSN], autocommit=True) as conn:
        conn.execute(
            f'INSERT INTO "{table}" (kind, tool, key, intent_id, attempt, pid) '
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (kind, ctx.tool, ctx.key, ctx.intent_id, ctx.attempt, os.getpid()),
        )


@registry.tool("record")
def record(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """The side effect, then a result with a fresh token: equal tokens mean a cached result."""
    note("effect", ctx)
    return {"value": args.get("value"), "token": uuid.uuid4().hex, "attempt": ctx.attempt}


@registry.tool("flaky", max_attempts=5)
def flaky(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Fails transiently until attempt ``succeed_on``."""
    note("call", ctx)
    if ctx.attempt < int(args["succeed_on"]):
        raise TransientError(f"attempt {ctx.attempt} fails")
    note("effect", ctx)
    return {"attempt": ctx.attempt}


@registry.tool("slow")
def slow(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Starts, then waits for the ``gate`` file before its side effect."""
    note("call", ctx)
    gate, deadline = Path(args["gate"]), time.monotonic() + 60
    while not gate.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the gate never opened")
        time.sleep(0.05)
    note("effect", ctx)
    return {"attempt": ctx.attempt}


@registry.tool("crash", max_attempts=2)
def crash(args: dict[str, Any], ctx: ToolContext) -> None:
    """Kills the process running it, every time."""
    note("call", ctx)
    os.kill(os.getpid(), signal.SIGKILL)


class Count(BaseModel):
    count: int


@registry.tool("typed", args=Count)
def typed(args: Count, ctx: ToolContext) -> int:
    note("effect", ctx)
    return args.count


def define_plain_tasks(app: Any) -> None:
    """An ordinary Celery task deduplicated by ``IdempotentTask`` (key kwarg or task id)."""
    from intentq.consumers.celery import IdempotentTask

    @app.task(name="tests.charge", base=IdempotentTask, shared=False)
    def charge(order: str, amount: int, idempotency_key: str | None = None) -> dict[str, Any]:
        table = os.environ[FX_TABLE]
        with psycopg.connect(os.environ[FX_DSN], autocommit=True) as conn:
            conn.execute(
                f'INSERT INTO "{table}" (kind, tool, key, intent_id, attempt, pid) '
                "VALUES ('effect', 'tests.charge', %s, %s, 0, %s)",
                (idempotency_key or order, order, os.getpid()),
            )
        return {"order": order, "amount": amount, "token": uuid.uuid4().hex}
