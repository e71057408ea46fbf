"""An OpenAI Chat Completions agent loop whose tool calls run through intentq.

Each tool call becomes an intent keyed by its content, so the model asking again for the
same booking (a new call id) gets the first booking back instead of a second one. A call
the model got wrong (broken JSON) is answered with an error it can read; the loop goes on.

    intentq worker --app examples.tools:registry &
    python -m examples.openai_agent

The model is a recording (examples/recorded/openai_chat.json); with the ``openai`` client,
``ask`` would be ``client.chat.completions.create(model=..., messages=..., tools=TOOLS)``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from openai.types.chat import ChatCompletion

from examples.tools import registry
from intentq import Producer
from intentq.agents import (
    InvalidToolCall,
    intent_from_openai,
    openai_chat_error,
    openai_chat_result,
)
from intentq.config import Settings

# The tools as the API wants them, from the registry's pydantic models.
TOOLS = [
    {"type": "function", "function": {
        "name": spec.name, "description": (spec.handler.__doc__ or "").strip(),
        "parameters": spec.args_model.model_json_schema() if spec.args_model else {},
    }}
    for spec in registry
]  # fmt: skip


def run_turn(
    ask: Callable[[list[dict[str, Any]]], dict[str, Any]],
    producer: Producer,
    conversation: str,
    user: str,
) -> list[dict[str, Any]]:
    """Ask, run the tool calls, give the model their results, until it answers in text."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": user}]
    while True:
        message = ChatCompletion.model_validate(ask(messages)).choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            return messages
        for call in message.tool_calls:
            try:
                intent = intent_from_openai(call, scope=conversation, registry=registry)
            except InvalidToolCall as exc:
                messages.append(openai_chat_error(call, exc))
                continue
            producer.send_intent(intent)  # sent again on a retry: the tool still runs once
            messages.append(openai_chat_result(call, producer.result(intent, timeout=30)))


def main() -> None:
    from examples.recorded import Recorded

    with Producer(Settings.load(), registry) as producer:
        messages = run_turn(
            Recorded("openai_chat.json"), producer, f"conv-{uuid.uuid4().hex[:8]}",
            "Book me the 15:00 slot.",
        )  # fmt: skip
    for message in messages:
        print(message["role"], message.get("content") or message.get("tool_calls"))


if __name__ == "__main__":
    main()
