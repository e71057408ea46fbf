"""An Anthropic Messages agent loop in asyncio, its tool calls run through intentq.

The ``tool_use`` blocks of one response are awaited together (``AsyncProducer``: one store
listener for all of them); a block with bad input gets an ``is_error`` result the model
reads. Asked again for the same booking, the model gets the first one back.

    intentq worker --app examples.tools:registry &
    python -m examples.anthropic_agent

The model is a recording (examples/recorded/anthropic_messages.json); with the
``anthropic`` client, ``ask`` would be ``await client.messages.create(...)``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from anthropic.types import Message, ToolUseBlock

from examples.tools import registry
from intentq.agents import InvalidToolCall, anthropic_error, anthropic_result, intent_from_anthropic
from intentq.config import Settings
from intentq.waiting import AsyncProducer


async def answer(block: ToolUseBlock, producer: AsyncProducer, conversation: str) -> Any:
    """The ``tool_result`` block for one ``tool_use`` block."""
    try:
        intent = intent_from_anthropic(block, scope=conversation, registry=registry)
    except InvalidToolCall as exc:
        return anthropic_error(block, exc)
    await producer.send_intent(intent)
    return anthropic_result(block, await producer.result(intent, timeout=30))


async def run_turn(
    ask: Callable[[list[dict[str, Any]]], dict[str, Any]],
    producer: AsyncProducer,
    conversation: str,
    user: str,
) -> list[dict[str, Any]]:
    """Ask, run the tool calls, give the model their results, until it stops for good."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": user}]
    while True:
        message = Message.model_validate(ask(messages))
        messages.append({"role": "assistant", "content": [b.model_dump() for b in message.content]})
        blocks = [b for b in message.content if isinstance(b, ToolUseBlock)]
        if message.stop_reason != "tool_use" or not blocks:
            return messages
        results = await asyncio.gather(*(answer(b, producer, conversation) for b in blocks))
        messages.append({"role": "user", "content": list(results)})


async def main() -> None:
    from examples.recorded import Recorded

    async with AsyncProducer(Settings.load(), registry) as producer:
        messages = await run_turn(
            Recorded("anthropic_messages.json"), producer, f"conv-{uuid.uuid4().hex[:8]}",
            "Book me the 09:30 slot.",
        )  # fmt: skip
    for message in messages:
        print(message["role"], message["content"])


if __name__ == "__main__":
    asyncio.run(main())
