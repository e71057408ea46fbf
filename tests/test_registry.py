"""Tool registration: names, duplicates, unknown tools, schema validation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from intentq import Registry, ToolContext
from intentq.errors import InvalidArgs, RegistryError, UnknownTool


class BookSlot(BaseModel):
    slot: str
    seats: int = 1


def make() -> Registry:
    registry = Registry()

    @registry.tool(
        "book_slot", args=BookSlot, max_attempts=3, retry_on=(KeyError,), ttl=60, lease=5
    )
    def book_slot(args: BookSlot, ctx: ToolContext) -> dict[str, Any]:
        return {"slot": args.slot, "key": ctx.key}

    return registry


def test_registered_tool_keeps_its_policy() -> None:
    spec = make().get("book_slot")
    assert (spec.max_attempts, spec.retry_on, spec.ttl, spec.lease) == (3, (KeyError,), 60, 5)
    ctx = ToolContext(tool="book_slot", key="k", intent_id="i", attempt=1)
    assert spec.handler(spec.validate({"slot": "15:00"}), ctx) == {"slot": "15:00", "key": "k"}


def test_registries_are_independent() -> None:
    a, b = make(), Registry()
    assert "book_slot" in a
    assert "book_slot" not in b
    assert len(b) == 0


def test_duplicate_name_refused() -> None:
    registry = make()
    with pytest.raises(RegistryError, match="already registered"):
        registry.tool("book_slot")(lambda args, ctx: None)


def test_unknown_tool_is_named() -> None:
    with pytest.raises(UnknownTool) as info:
        make().get("cancel_slot")
    assert info.value.tool == "cancel_slot"


@pytest.mark.parametrize("name", ["", "has space", "a:b", "a/b", "1abc", "x" * 65, "é"])
def test_unsafe_tool_names_refused(name: str) -> None:
    with pytest.raises(RegistryError, match="bad tool name"):
        Registry().tool(name)


@pytest.mark.parametrize(
    "options",
    [{"max_attempts": 0}, {"ttl": 0}, {"lease": -1}, {"retry_on": ("x",)}, {"args": dict}],
)
def test_bad_options_refused(options: dict[str, Any]) -> None:
    with pytest.raises(RegistryError):
        Registry().tool("ok", **options)


def test_schema_failure_keeps_the_pydantic_text() -> None:
    with pytest.raises(InvalidArgs) as info:
        make().validate("book_slot", {"seats": "many"})
    assert info.value.tool == "book_slot"
    assert "slot" in info.value.detail
    assert "Field required" in info.value.detail


def test_tool_without_model_gets_a_dict() -> None:
    registry = Registry()
    registry.tool("echo")(lambda args, ctx: args)
    assert registry.validate("echo", {"a": 1}) == {"a": 1}
