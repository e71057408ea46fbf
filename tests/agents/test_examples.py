"""The docs' agent examples run: each vendor's loop over real SDK objects, on a local worker."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from anthropic.types import Message, TextBlock, ToolUseBlock, Usage
from mcp.types import CallToolRequest, CallToolRequestParams, CallToolResult
from openai.types.chat import ChatCompletionMessage, ChatCompletionMessageToolCall
from openai.types.chat.chat_completion_message_function_tool_call import Function
from openai.types.responses import ResponseFunctionToolCall

from intentq.agents import META_KEY
from intentq.intent import Intent
from intentq.ops import Awaited
from tests.agents.conftest import Tools, load_example

Run = Callable[[Intent], Awaited]


def chat_message(*calls: tuple[str, str, str]) -> ChatCompletionMessage:
    return ChatCompletionMessage(
        role="assistant",
        content=None,
        tool_calls=[
            ChatCompletionMessageToolCall(
                id=call_id, type="function", function=Function(name=name, arguments=arguments)
            )
            for call_id, name, arguments in calls
        ],
    )


def test_keys_example_runs() -> None:
    load_example("agents_keys")  # its asserts are the test


def test_openai_chat_loop(tools: Tools, run: Run) -> None:
    chat = load_example("agents_openai").chat_tool_messages
    # Given a turn with a good call, a call with broken JSON and a call to no such tool
    message = chat_message(
        ("call_1", "book_slot", '{"slot": "15:00"}'),
        ("call_2", "book_slot", '{"slot": '),
        ("call_3", "cancel_all", "{}"),
    )

    replies = chat(message, "conv-1", tools.registry, run)

    # Then every call has its answer, and only the good one ran
    assert [r["tool_call_id"] for r in replies] == ["call_1", "call_2", "call_3"]
    assert json.loads(replies[0]["content"]) == {"booked": "15:00"}
    assert json.loads(replies[1]["content"])["error"]["reason"] == "invalid_json"
    assert json.loads(replies[2]["content"])["error"]["reason"] == "unknown_tool"
    assert tools.runs == ["15:00"]


def test_model_asked_again_runs_the_tool_once(tools: Tools, run: Run) -> None:
    chat = load_example("agents_openai").chat_tool_messages

    first = chat(
        chat_message(("call_1", "book_slot", '{"slot": "15:00"}')), "c", tools.registry, run
    )
    # The model, asked again, sends the same request with a new id and other spacing.
    again = chat(
        chat_message(("call_2", "book_slot", '{ "slot":"15:00" }')), "c", tools.registry, run
    )

    assert tools.runs == ["15:00"]
    assert again[0]["tool_call_id"] == "call_2"
    assert again[0]["content"] == first[0]["content"]


def test_openai_responses_loop(tools: Tools, run: Run) -> None:
    responses = load_example("agents_openai").responses_outputs
    output = [
        ResponseFunctionToolCall(
            type="function_call", id="fc_1", call_id="call_1", name="book_slot",
            arguments='{"slot": "09:00"}',
        ),
        ResponseFunctionToolCall(
            type="function_call", id="fc_2", call_id="call_2", name="fail", arguments="{}"
        ),
    ]  # fmt: skip

    items = responses(output, "conv-1", tools.registry, run)

    assert [i["call_id"] for i in items] == ["call_1", "call_2"]
    assert json.loads(items[0]["output"]) == {"booked": "09:00"}
    dead = json.loads(items[1]["output"])["error"]
    assert (dead["status"], dead["reason"]) == ("dead", "permanent")
    assert dead["message"] == "the calendar refused the booking"


def test_anthropic_loop(tools: Tools, run: Run) -> None:
    tool_results = load_example("agents_anthropic").tool_results
    message = Message(
        id="msg_1", type="message", role="assistant", model="claude-x",
        stop_reason="tool_use", stop_sequence=None,
        usage=Usage(input_tokens=1, output_tokens=1),
        content=[
            TextBlock(type="text", text="Booking it."),
            ToolUseBlock(type="tool_use", id="toolu_1", name="book_slot",
                         input={"slot": "10:00"}),
            ToolUseBlock(type="tool_use", id="toolu_2", name="book_slot", input={"slot": 10}),
        ],
    )  # fmt: skip

    reply = tool_results(message, "conv-1", tools.registry, run)

    assert reply["role"] == "user"
    ok, bad = reply["content"]
    assert (ok["tool_use_id"], ok["is_error"]) == ("toolu_1", False)
    assert (bad["tool_use_id"], bad["is_error"]) == ("toolu_2", True)
    assert json.loads(bad["content"])["error"]["reason"] == "invalid_args"
    assert tools.runs == ["10:00"]


def test_mcp_handler(tools: Tools, run: Run) -> None:
    call_tool = load_example("agents_mcp").call_tool
    request = CallToolRequest(
        params=CallToolRequestParams.model_validate(
            {"name": "book_slot", "arguments": {"slot": "11:00"}, "_meta": {META_KEY: "req-1"}}
        )
    )

    result = call_tool(request, "user-1", tools.registry, run)
    again = call_tool(request, "user-1", tools.registry, run)  # the client retried
    refused = call_tool({"name": "book_slot", "_meta": {META_KEY: "no good"}}, "user-1",
                        tools.registry, run)  # fmt: skip

    assert result["structuredContent"] == {"booked": "11:00"}
    assert again == result
    assert tools.runs == ["11:00"]
    assert CallToolResult.model_validate(refused).is_error


def test_timeout_reaches_the_model(tools: Tools) -> None:
    from intentq.dedup.memory import MemoryDedupStore

    class Dropping:
        """A producer whose message never arrives."""

        def send_intent(self, intent: Intent) -> None:
            pass

    run: Any = load_example("agents_run").make_run(Dropping(), MemoryDedupStore(), timeout=0.0)
    chat = load_example("agents_openai").chat_tool_messages

    replies = chat(chat_message(("call_1", "book_slot", '{"slot": "15:00"}')), "c",
                   tools.registry, run)  # fmt: skip

    assert json.loads(replies[0]["content"])["error"]["status"] == "timeout"
    assert tools.runs == []
