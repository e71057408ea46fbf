"""A tool for the stopping tests: it notes each start and finish in the file STOP_MARKS
names, and naps on its first attempt only, so a redelivered copy finishes at once."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from intentq.context import ToolContext
from intentq.registry import Registry

MARKS = "STOP_MARKS"

registry = Registry()


class Nap(BaseModel):
    seconds: float


def _mark(what: str, ctx: ToolContext) -> None:
    with Path(os.environ[MARKS]).open("a", encoding="utf-8") as marks:
        marks.write(f"{what} {ctx.key} {ctx.attempt}\n")


@registry.tool("nap", args=Nap)
def nap(args: Nap, ctx: ToolContext) -> dict[str, Any]:
    _mark("start", ctx)
    if ctx.attempt == 1:
        time.sleep(args.seconds)
    _mark("done", ctx)
    return {"attempt": ctx.attempt}
