"""Anthropic: the ``tool_use`` blocks of a reply in, one ``user`` message of results out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from intentq import Registry
from intentq.agents import InvalidToolCall, anthropic_error, anthropic_result, intent_from_anthropic
from intentq.intent import Intent
from intentq.ops import Awaited

Run = Callable[[Intent], Awaited]


def tool_results(
    message: Any, conversation_id: str, registry: Registry, run: Run
) -> dict[str, Any]:
    """The ``user`` message answering every ``tool_use`` block of ``message``."""
    blocks = []
    for block in message.content:
        if block.type != "tool_use":
            continue
        try:
            intent = intent_from_anthropic(block, scope=conversation_id, registry=registry)
        except InvalidToolCall as exc:
            blocks.append(anthropic_error(block, exc))  # is_error: the model can fix it
            continue
        blocks.append(anthropic_result(block, run(intent)))
    return {"role": "user", "content": blocks}
