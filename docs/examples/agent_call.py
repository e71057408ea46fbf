"""A model's tool calls in, their results out: each call becomes an intent, the worker runs
it once, and the answer goes back as the model's own tool message."""

from __future__ import annotations

from typing import Any

from intentq import Producer
from intentq.agents import (
    InvalidToolCall,
    intent_from_openai,
    openai_chat_error,
    openai_chat_result,
)
from intentq.config import Settings
from myapp.tools import registry


def answer_tool_calls(tool_calls: list[Any], conversation_id: str) -> list[dict[str, Any]]:
    """The ``role: tool`` messages answering an OpenAI assistant message's tool calls."""
    settings = Settings.load()  # INTENTQ_* variables, intentq.toml
    replies = []
    with Producer(settings, registry) as producer:
        for call in tool_calls:
            try:  # key: conversation + tool + arguments, whatever id the model gave the call
                intent = intent_from_openai(call, scope=conversation_id, registry=registry)
            except InvalidToolCall as exc:  # bad JSON, unknown tool, arguments off the schema
                replies.append(openai_chat_error(call, exc))
                continue
            producer.send_intent(intent)
            done = producer.result(intent, timeout=30)  # woken by the store: no polling
            replies.append(openai_chat_result(call, done))  # dead or late: an error text
    return replies
