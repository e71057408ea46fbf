"""A worker loop that runs on intentq 0.1 and on today's intentq alike, for the upgrade tests.

    python tests/upgrade/worker.py JOB.json      (PYTHONPATH picks which intentq)

``mode: work`` runs each body of ``bodies`` through the executor as a transport would:
retry later -> again, dead letter -> the DLQ, done -> next. ``mode: write`` claims and
completes new keys straight on the store, as fast as it can, until ``stop`` exists: the load
an upgrade runs under; it reports every call that failed and the slowest one. Effects are
lines appended to ``effects`` (one ``O_APPEND`` write each), so a second run shows.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from intentq import Registry, ToolContext
from intentq.executor import Executor
from intentq.outcome import Delivery, RetryLater, SendToDLQ

FP = "e" * 64
GIVE_UP_AFTER = 60.0  # seconds one body may keep coming back before the run fails


class Slot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slot: str


def registry(job: dict[str, Any]) -> Registry:
    tools = Registry()
    effects, closed = Path(job["effects"]), Path(job["closed"])

    def effect(ctx: ToolContext) -> None:
        line = f"{ctx.tool} {ctx.key} {job['role']}\n".encode()
        fd = os.open(effects, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    @tools.tool("book", args=Slot)
    def book(args: Slot, ctx: ToolContext) -> dict[str, Any]:
        effect(ctx)
        return {"booked": args.slot, "by": job["role"]}

    @tools.tool("flaky", args=Slot)
    def flaky(args: Slot, ctx: ToolContext) -> dict[str, Any]:
        if closed.exists():
            raise ValueError(f"slot {args.slot} is closed")  # permanent: a dead letter
        effect(ctx)
        return {"booked": args.slot, "by": job["role"]}

    return tools


def open_stores(job: dict[str, Any]) -> tuple[Any, Any]:
    from intentq.dlq.sql import SqlDeadLetterStore

    if job["store"].startswith("redis"):
        from intentq.dedup.redis import RedisDedupStore

        store: Any = RedisDedupStore.from_url(job["store"], prefix=job.get("prefix", "intentq"))
    else:
        from intentq.dedup.sql import SqlDedupStore

        store = SqlDedupStore.from_url(job["store"])
    return store, SqlDeadLetterStore.from_url(job["dlq"])


def work(job: dict[str, Any]) -> dict[str, Any]:
    store, dlq = open_stores(job)
    if job.get("create"):  # the tables as this intentq's create_schema makes them
        store.create_schema()
        dlq.create_schema()
    executor = Executor(registry(job), store)
    outcomes: dict[str, int] = {}
    errors: list[str] = []
    for n, body in enumerate(job["bodies"]):
        data = body.encode("latin-1")
        deadline = time.monotonic() + GIVE_UP_AFTER
        while True:
            try:
                outcome = executor.process(data, Delivery("memory", "upgrade", f"m{n}"))
            except Exception as exc:  # the transport gives the message back
                errors.append(f"{type(exc).__name__}: {exc}")
                outcome = RetryLater(0.05, spend_attempt=False)
            if isinstance(outcome, RetryLater):
                if time.monotonic() > deadline:
                    raise AssertionError(f"{body[:80]!r} kept coming back: {outcome}")
                time.sleep(min(outcome.delay, 0.05))
                continue
            if isinstance(outcome, SendToDLQ):
                dlq.put(outcome.letter)
            name = type(outcome).__name__
            outcomes[name] = outcomes.get(name, 0) + 1
            break
    store.close()
    dlq.close()
    return {"outcomes": outcomes, "errors": errors}


def write(job: dict[str, Any]) -> dict[str, Any]:
    store, dlq = open_stores(job)
    dlq.close()
    stop, progress = Path(job["stop"]), Path(job["progress"])
    written: list[str] = []
    errors: list[str] = []
    slowest = 0.0
    while not stop.exists():
        key = f"load-{len(written)}"
        started = time.monotonic()
        try:
            claim = store.claim("book", key, FP)
            store.complete("book", key, claim.token, {"n": len(written)})
        except Exception as exc:
            errors.append(f"{key}: {type(exc).__name__}: {exc}")
            time.sleep(0.01)
            continue
        slowest = max(slowest, time.monotonic() - started)
        written.append(key)
        progress.write_text(str(len(written)))
    store.close()
    return {"written": written, "errors": errors, "slowest": slowest}


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    import intentq

    report = {"mode": job["mode"], "intentq": intentq.__file__}
    report.update({"work": work, "write": write}[job["mode"]](job))
    Path(job["report"]).write_text(json.dumps(report))


if __name__ == "__main__":
    main()
