"""OpenAI Chat Completions and Responses tool calls, as SDK objects and as dicts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.chat import ChatCompletionMessageCustomToolCall, ChatCompletionMessageToolCall
from openai.types.chat.chat_completion_message_custom_tool_call import Custom
from openai.types.chat.chat_completion_message_function_tool_call import Function
from openai.types.responses import ResponseFunctionToolCall

from intentq.agents import (
    InvalidToolCall,
    intent_from_openai,
    openai_chat_error,
    openai_chat_result,
    openai_responses_error,
    openai_responses_result,
)
from intentq.errors import InvalidArgs, InvalidIntent, UnknownTool
from intentq.registry import Registry

ARGS = '{"slot": "15:00"}'


def chat_dict(call_id: str = "call_1", arguments: Any = ARGS, name: Any = "book_slot") -> Any:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chat_sdk(call_id: str = "call_1", arguments: str = ARGS) -> ChatCompletionMessageToolCall:
    return ChatCompletionMessageToolCall(
        id=call_id, type="function", function=Function(name="book_slot", arguments=arguments)
    )


def responses_dict(call_id: str = "call_9", arguments: str = ARGS) -> dict[str, Any]:
    return {
        "type": "function_call", "id": "fc_1", "call_id": call_id,
        "name": "book_slot", "arguments": arguments,
    }  # fmt: skip


def responses_sdk(call_id: str = "call_9") -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        type="function_call", id="fc_1", call_id=call_id, name="book_slot", arguments=ARGS
    )


@pytest.mark.parametrize("call", [chat_sdk(), chat_dict()], ids=["sdk", "dict"])
def test_chat_call_becomes_an_intent(call: Any) -> None:
    intent = intent_from_openai(call, scope="conv-1")

    assert (intent.tool, dict(intent.args)) == ("book_slot", {"slot": "15:00"})
    assert intent.meta == {
        "tool_call_id": "call_1", "conversation_id": "conv-1",
        "tool_format": "openai.chat", "key_mode": "content",
    }  # fmt: skip


@pytest.mark.parametrize("call", [responses_sdk(), responses_dict()], ids=["sdk", "dict"])
def test_responses_call_is_matched_by_call_id_not_item_id(call: Any) -> None:
    intent = intent_from_openai(call, scope="conv-1")

    assert intent.meta["tool_call_id"] == "call_9"
    assert intent.meta["tool_format"] == "openai.responses"
    assert openai_responses_result(call, {"booked": "15:00"}) == {
        "type": "function_call_output", "call_id": "call_9", "output": '{"booked": "15:00"}',
    }  # fmt: skip


def test_sdk_object_and_dict_are_the_same_intent() -> None:
    assert (
        intent_from_openai(chat_sdk(), scope="s").key
        == intent_from_openai(chat_dict(), scope="s").key
    )


@pytest.mark.parametrize(
    "answering", [chat_sdk(), chat_dict(), "call_1"], ids=["sdk", "dict", "id"]
)
def test_chat_result_is_a_tool_message(answering: Any) -> None:
    message = openai_chat_result(answering, {"booked": "15:00", "n": 1})

    assert message["role"] == "tool"
    assert message["tool_call_id"] == "call_1"
    assert json.loads(message["content"]) == {"booked": "15:00", "n": 1}


def test_result_answers_the_intent_it_was_made_into() -> None:
    intent = intent_from_openai(responses_dict(), scope="s")

    assert openai_responses_result(intent, "done")["call_id"] == "call_9"
    assert openai_chat_result(intent, "done")["content"] == "done"  # text passes as it is


def test_empty_arguments_are_no_arguments() -> None:
    assert intent_from_openai(chat_dict(arguments=""), scope="s").args == {}


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (chat_dict(arguments='{"slot": '), "invalid_json"),
        (chat_dict(arguments='{"n": NaN}'), "invalid_json"),
        (chat_dict(arguments="[1, 2]"), "bad_arguments"),
        (chat_dict(arguments="3"), "bad_arguments"),
        (chat_dict(arguments=None), "bad_arguments"),
        (chat_dict(name=""), "missing_name"),
        (chat_dict(name=None), "missing_name"),
        (chat_dict(name="no spaces please"), "bad_name"),
        ({"id": "call_1", "type": "function"}, "missing_name"),
        ({"type": "function_call", "name": "book_slot", "arguments": ARGS}, "missing_id"),
        ({"type": "message", "id": "m1"}, "wrong_type"),
        (ChatCompletionMessageCustomToolCall(
            id="call_c", type="custom", custom=Custom(name="grammar", input="x")), "wrong_type"),
        ("a string", "wrong_type"),
    ],
)  # fmt: skip
def test_bad_calls_raise_one_error_type(call: Any, reason: str) -> None:
    with pytest.raises(InvalidToolCall) as caught:
        intent_from_openai(call, scope="s")

    assert caught.value.reason == reason
    assert isinstance(caught.value, InvalidIntent)


def test_bad_call_becomes_an_error_message_for_that_call() -> None:
    call = chat_dict(call_id="call_7", arguments="{oops")
    with pytest.raises(InvalidToolCall) as caught:
        intent_from_openai(call, scope="s")

    message = openai_chat_error(call, caught.value)

    assert message["tool_call_id"] == "call_7"
    error = json.loads(message["content"])["error"]
    assert error["status"] == "rejected"
    assert error["reason"] == "invalid_json"
    assert error["tool"] == "book_slot"
    assert "Traceback" not in message["content"]


def test_error_helper_never_raises_even_without_an_id() -> None:
    exc = InvalidToolCall("wrong_type", "not a tool call")

    assert openai_chat_error(object(), exc)["tool_call_id"] == ""
    assert openai_responses_error({"call_id": "call_3"}, exc)["call_id"] == "call_3"


def test_result_without_an_id_is_refused() -> None:
    with pytest.raises(InvalidToolCall, match="missing_id"):
        openai_chat_result({"type": "function"}, 1)


def test_unknown_tool_is_an_error_result_not_a_crash(tools: Any) -> None:
    registry: Registry = tools.registry
    call = chat_dict(name="cancel_everything")
    with pytest.raises(InvalidToolCall) as caught:
        intent_from_openai(call, scope="s", registry=registry)

    assert caught.value.reason == "unknown_tool"
    assert isinstance(caught.value.__cause__, UnknownTool)
    error = json.loads(openai_chat_error(call, caught.value)["content"])["error"]
    assert "book_slot" in error["message"]  # the model learns which tools exist


def test_arguments_off_the_schema_are_an_error_result(tools: Any) -> None:
    call = responses_dict(arguments='{"slot": 1500}')
    with pytest.raises(InvalidToolCall) as caught:
        intent_from_openai(call, scope="s", registry=tools.registry)

    assert caught.value.reason == "invalid_args"
    assert isinstance(caught.value.__cause__, InvalidArgs)
    item = openai_responses_error(call, caught.value)
    assert item["call_id"] == "call_9"
    assert "slot" in json.loads(item["output"])["error"]["message"]
