"""Every body of the bad-input corpus ends as a dead letter with its named reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from intentq import Registry, ToolContext
from intentq.dedup.memory import MemoryDedupStore
from intentq.executor import Executor
from intentq.intent import DEFAULT_MAX_BYTES, Intent
from intentq.outcome import Delivery, SendToDLQ

CORPUS = Path(__file__).parent / "corpus"
EXPECTED: dict[str, dict[str, str]] = json.loads((CORPUS / "expected.json").read_text())


class Slot(BaseModel):
    slot: str


def corpus_registry() -> Registry:
    """The registry the corpus was written against: one ``book_slot`` tool."""
    registry = Registry()

    @registry.tool("book_slot", args=Slot)
    def book_slot(args: Slot, ctx: ToolContext) -> str:
        raise AssertionError("a corpus body must never run the tool")

    return registry


def corpus_bodies() -> list[tuple[str, bytes]]:
    """The corpus files, plus one body over the size limit (made here, not stored)."""
    bodies = [(name, (CORPUS / name).read_bytes()) for name in sorted(EXPECTED)]
    oversized = Intent.create("book_slot", {"slot": "x" * DEFAULT_MAX_BYTES}).to_json()
    return [*bodies, ("oversized", oversized)]


CASES = corpus_bodies()
EXPECTED["oversized"] = {"reason": "poison", "error_type": "InvalidIntent.too_large"}


@pytest.mark.parametrize(("name", "body"), CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_corpus_body_is_dead_lettered_with_its_reason(name: str, body: bytes) -> None:
    executor = Executor(corpus_registry(), MemoryDedupStore())
    out = executor.process(body, Delivery("memory", "q", "m"))
    assert isinstance(out, SendToDLQ), out
    assert out.letter.reason == EXPECTED[name]["reason"]
    assert out.letter.error_type == EXPECTED[name]["error_type"]
    assert out.letter.body == body  # kept byte for byte, for inspection and replay
