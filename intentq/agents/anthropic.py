"""Anthropic tool calls: ``tool_use`` content blocks in, ``tool_result`` blocks out.

In: ``{"type": "tool_use", "id", "name", "input"}`` as an ``anthropic`` SDK block or its
JSON dict; ``input`` is already an object. Out: ``{"type": "tool_result", "tool_use_id",
"content", "is_error"}``, sent back in the next ``user`` message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from intentq.agents.base import (
    META_CALL_ID,
    ToolCall,
    arguments_object,
    as_data,
    get,
    intent_from_tool_call,
    text_field,
)
from intentq.agents.keys import CONTENT
from intentq.agents.replies import Reply, error_reply, to_reply
from intentq.errors import InvalidToolCall
from intentq.intent import Intent
from intentq.registry import Registry

FORMAT = "anthropic"


def read_anthropic(block: object) -> ToolCall:
    """The name, input and id of a ``tool_use`` block."""
    data = as_data(block)
    kind = get(data, "type")
    if kind != "tool_use":
        # server_tool_use and friends run at Anthropic: there is nothing here to enqueue.
        raise InvalidToolCall(
            "wrong_type", f"expected a tool_use block, got type {str(kind)[:40]!r}",
            call_id=_loose_id(data),
        )  # fmt: skip
    call_id = text_field(data, "id", "missing_id", "id", None)
    name = text_field(data, "name", "missing_name", "name", call_id)
    args = arguments_object(get(data, "input"), tool=name, call_id=call_id)
    return ToolCall(FORMAT, name, args, call_id)


def intent_from_anthropic(
    block: object,
    *,
    scope: str,
    key: str = CONTENT,
    registry: Registry | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Intent:
    """The intent for a ``tool_use`` block; raises only ``InvalidToolCall``."""
    return intent_from_tool_call(
        read_anthropic(block), scope=scope, key=key, registry=registry, meta=meta
    )


def _loose_id(data: object) -> str | None:
    value = get(data, "id")
    return value if isinstance(value, str) and value else None


def _call_id(block: object) -> str:
    if isinstance(block, str) and block:
        return block
    found = block.meta.get(META_CALL_ID) if isinstance(block, Intent) else get(block, "id")
    if not isinstance(found, str) or not found:
        raise InvalidToolCall("missing_id", "cannot tell which tool_use block this answers")
    return found


def _result(tool_use_id: str, reply: Reply) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": reply.text,
        "is_error": reply.is_error,
    }


def anthropic_result(block: object, result: Any) -> dict[str, Any]:
    """The ``tool_result`` block answering ``block`` (the block, its intent or its id).

    ``result`` is an ``Awaited``, an exception, or the tool's plain result value.
    """
    return _result(_call_id(block), to_reply(result))


def anthropic_error(block: object, exc: BaseException) -> dict[str, Any]:
    """The ``tool_result`` block (``is_error``) telling the model why ``block`` was refused."""
    known = exc.call_id if isinstance(exc, InvalidToolCall) else None
    if not known:
        try:
            known = _call_id(block)
        except InvalidToolCall:
            known = ""  # the block had no id: nothing can match, but the loop goes on
    return _result(known, error_reply(exc))
