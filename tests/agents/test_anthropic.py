"""Anthropic ``tool_use`` blocks in, ``tool_result`` blocks out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.types import ServerToolUseBlock, TextBlock, ToolUseBlock

from intentq.agents import (
    InvalidToolCall,
    anthropic_error,
    anthropic_result,
    intent_from_anthropic,
)


def block_dict(call_id: Any = "toolu_1", name: Any = "book_slot", input: Any = None) -> Any:
    return {
        "type": "tool_use", "id": call_id, "name": name,
        "input": {"slot": "15:00"} if input is None else input,
    }  # fmt: skip


def block_sdk(call_id: str = "toolu_1") -> ToolUseBlock:
    return ToolUseBlock(type="tool_use", id=call_id, name="book_slot", input={"slot": "15:00"})


@pytest.mark.parametrize("block", [block_sdk(), block_dict()], ids=["sdk", "dict"])
def test_tool_use_becomes_an_intent(block: Any) -> None:
    intent = intent_from_anthropic(block, scope="conv-1")

    assert (intent.tool, dict(intent.args)) == ("book_slot", {"slot": "15:00"})
    assert intent.meta["tool_call_id"] == "toolu_1"
    assert intent.meta["conversation_id"] == "conv-1"
    assert intent.meta["tool_format"] == "anthropic"


@pytest.mark.parametrize(
    "answering", [block_sdk(), block_dict(), "toolu_1"], ids=["sdk", "dict", "id"]
)
def test_result_is_a_tool_result_block(answering: Any) -> None:
    assert anthropic_result(answering, {"booked": "15:00"}) == {
        "type": "tool_result", "tool_use_id": "toolu_1",
        "content": '{"booked": "15:00"}', "is_error": False,
    }  # fmt: skip


def test_result_answers_the_intent_it_was_made_into() -> None:
    intent = intent_from_anthropic(block_sdk("toolu_5"), scope="s")

    assert anthropic_result(intent, None)["tool_use_id"] == "toolu_5"


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        (block_dict(input=[1]), "bad_arguments"),
        (block_dict(input="{}"), "bad_arguments"),
        (block_dict(input={"n": float("nan")}), "bad_arguments"),
        (block_dict(name=None), "missing_name"),
        (block_dict(call_id=""), "missing_id"),
        ({"type": "text", "text": "hello"}, "wrong_type"),
        (TextBlock(type="text", text="hello"), "wrong_type"),
        (ServerToolUseBlock(type="server_tool_use", id="srvtoolu_1", name="web_search",
                            input={"query": "x"}), "wrong_type"),
        ({"id": "toolu_1", "name": "book_slot", "input": {}}, "wrong_type"),
    ],
)  # fmt: skip
def test_bad_blocks_raise_one_error_type(block: Any, reason: str) -> None:
    with pytest.raises(InvalidToolCall) as caught:
        intent_from_anthropic(block, scope="s")

    assert caught.value.reason == reason


def test_bad_block_becomes_an_error_result_for_that_block(tools: Any) -> None:
    block = block_dict(call_id="toolu_9", input={"slot": 1500})
    with pytest.raises(InvalidToolCall) as caught:
        intent_from_anthropic(block, scope="s", registry=tools.registry)

    result = anthropic_error(block, caught.value)

    assert result["tool_use_id"] == "toolu_9"
    assert result["is_error"] is True
    assert json.loads(result["content"])["error"]["reason"] == "invalid_args"


def test_error_helper_never_raises() -> None:
    result = anthropic_error(object(), RuntimeError("store down"))

    assert result["tool_use_id"] == ""
    assert json.loads(result["content"]) == {
        "error": {"status": "error", "reason": "RuntimeError", "message": "store down"}
    }
