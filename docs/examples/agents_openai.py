"""OpenAI: every tool call of a turn becomes an intent; every result a message or item."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from intentq import Registry
from intentq.agents import (
    InvalidToolCall,
    intent_from_openai,
    openai_chat_error,
    openai_chat_result,
    openai_responses_error,
    openai_responses_result,
)
from intentq.intent import Intent
from intentq.ops import Awaited

Run = Callable[[Intent], Awaited]


def chat_tool_messages(
    message: Any, conversation_id: str, registry: Registry, run: Run
) -> list[dict[str, Any]]:
    """Chat Completions: the ``role: tool`` messages answering an assistant ``message``."""
    replies = []
    for call in message.tool_calls or []:
        try:
            intent = intent_from_openai(call, scope=conversation_id, registry=registry)
        except InvalidToolCall as exc:  # bad JSON, unknown tool, arguments off the schema
            replies.append(openai_chat_error(call, exc))
            continue
        replies.append(openai_chat_result(call, run(intent)))  # dead or late: an error text
    return replies


def responses_outputs(
    output: list[Any], conversation_id: str, registry: Registry, run: Run
) -> list[dict[str, Any]]:
    """Responses API: ``function_call_output`` items for the ``function_call`` items."""
    items = []
    for item in output:
        if item.type != "function_call":
            continue
        try:
            intent = intent_from_openai(item, scope=conversation_id, registry=registry)
        except InvalidToolCall as exc:
            items.append(openai_responses_error(item, exc))
            continue
        items.append(openai_responses_result(item, run(intent)))
    return items
