"""Key modes: content keys survive a model's new call id, call keys do not, explicit wins."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intentq.agents import (
    InvalidToolCall,
    call_key,
    content_key,
    intent_from_anthropic,
    intent_from_mcp,
    intent_from_openai,
)
from intentq.intent import key_for_tool_call, normalize_key


def openai_call(call_id: str, args: Any) -> dict[str, Any]:
    arguments = json.dumps(args)
    return {"id": call_id, "type": "function", "function": {"name": "t", "arguments": arguments}}


def anthropic_block(call_id: str, args: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": "t", "input": args}


def mcp_request(call_id: str, args: Any) -> dict[str, Any]:
    return {"id": call_id, "method": "tools/call", "params": {"name": "t", "arguments": args}}


FORMATS = [
    (intent_from_openai, openai_call),
    (intent_from_anthropic, anthropic_block),
    (intent_from_mcp, mcp_request),
]
IDS = ["openai", "anthropic", "mcp"]


@pytest.mark.parametrize(("intent_from", "make"), FORMATS, ids=IDS)
def test_content_key_is_equal_across_call_ids(intent_from: Any, make: Any) -> None:
    # Given the model asked twice for the same thing, minting a new id the second time
    first = intent_from(make("id-1", {"to": "a@b.c"}), scope="conv")
    again = intent_from(make("id-2", {"to": "a@b.c"}), scope="conv")

    # Then both are one intent, and the side effect runs once
    assert first.key == again.key
    assert first.meta["key_mode"] == "content"


@pytest.mark.parametrize(("intent_from", "make"), FORMATS, ids=IDS)
def test_call_key_differs_across_call_ids(intent_from: Any, make: Any) -> None:
    first = intent_from(make("id-1", {"to": "a@b.c"}), scope="conv", key="call")
    again = intent_from(make("id-2", {"to": "a@b.c"}), scope="conv", key="call")
    redelivered = intent_from(make("id-1", {"to": "a@b.c"}), scope="conv", key="call")

    assert first.key != again.key
    assert first.key == redelivered.key == key_for_tool_call("conv", "id-1")


@pytest.mark.parametrize(("intent_from", "make"), FORMATS, ids=IDS)
def test_explicit_key_wins(intent_from: Any, make: Any) -> None:
    intent = intent_from(make("id-1", {"to": "a@b.c"}), scope="conv", key="Order-1042")

    assert intent.key == "Order-1042"
    assert intent.meta["key_mode"] == "explicit"


@pytest.mark.parametrize("bad", ["", "two words", "x" * 201, "ключ"])
def test_explicit_key_obeys_the_envelope_rules(bad: str) -> None:
    with pytest.raises(InvalidToolCall, match="bad_key"):
        intent_from_anthropic(anthropic_block("id-1", {}), scope="conv", key=bad)


def test_content_key_separates_scope_tool_and_arguments() -> None:
    base = content_key("conv", "t", {"a": 1})

    assert content_key("conv-2", "t", {"a": 1}) != base
    assert content_key("conv", "u", {"a": 1}) != base
    assert content_key("conv", "t", {"a": 2}) != base
    assert content_key("conv", "t", {"a": 1.5}) != content_key("conv", "t", {"a": "1.5"})


def test_keys_are_canonical_envelope_keys() -> None:
    for key in (content_key("c", "t", {}), call_key("c", "call_1")):
        assert normalize_key(key) == key


def test_scope_is_required() -> None:
    with pytest.raises(InvalidToolCall, match="bad_scope"):
        intent_from_anthropic(anthropic_block("id-1", {}), scope="")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                               max_size=4),
    max_leaves=20,
)  # fmt: skip


def reordered(value: Any) -> Any:
    """The same JSON value with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(item) for item in value]
    return value


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=6), st.text(min_size=1))
def test_content_key_is_stable_under_key_order(args: dict[str, Any], scope: str) -> None:
    shuffled = reordered(args)
    expected = content_key(scope, "t", args)

    assert content_key(scope, "t", shuffled) == expected
    # The model's JSON text may order and space its keys any way at all.
    text = json.dumps(shuffled, indent=1)
    call = {"id": "x", "type": "function", "function": {"name": "t", "arguments": text}}
    assert intent_from_openai(call, scope=scope).key == expected
    assert intent_from_anthropic(anthropic_block("y", shuffled), scope=scope).key == expected
