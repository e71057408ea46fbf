"""An in-process worker for the agent tests: a fresh registry, store and executor per test."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import BaseModel

from intentq import Registry, ToolContext
from intentq.dedup.memory import MemoryDedupStore
from intentq.executor import Executor
from intentq.intent import Intent
from intentq.ops import Awaited
from intentq.outcome import Delivery

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``docs/examples/<name>.py`` as a module of its own."""
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BookSlot(BaseModel):
    slot: str


@dataclass
class Tools:
    """A registry whose tools count their runs: the side effect the keys protect."""

    registry: Registry = field(default_factory=Registry)
    runs: list[str] = field(default_factory=list)


@pytest.fixture
def tools() -> Tools:
    made = Tools()

    @made.registry.tool("book_slot", args=BookSlot)
    def book_slot(args: BookSlot, ctx: ToolContext) -> dict[str, str]:
        made.runs.append(args.slot)
        return {"booked": args.slot}

    @made.registry.tool("fail")
    def fail(args: dict[str, object], ctx: ToolContext) -> None:
        raise ValueError("the calendar refused the booking")

    return made


@dataclass
class LocalProducer:
    """``send_intent`` runs the intent at once on an executor in this process."""

    executor: Executor
    sent: list[Intent] = field(default_factory=list)

    def send_intent(self, intent: Intent) -> None:
        self.sent.append(intent)
        self.executor.process(intent.to_json(), Delivery("memory", "agents", intent.intent_id))


@pytest.fixture
def run(tools: Tools) -> Callable[[Intent], Awaited]:
    store = MemoryDedupStore()
    producer = LocalProducer(Executor(tools.registry, store))
    runner: Callable[[Intent], Awaited] = load_example("agents_run").make_run(
        producer, store, timeout=0.0
    )
    return runner
