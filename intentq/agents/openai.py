"""OpenAI tool calls: Chat Completions ``tool_calls[]`` and Responses ``function_call`` items.

In: ``intent_from_openai`` takes either kind, as an ``openai`` SDK object or its JSON dict.
Chat sends ``{"id", "type": "function", "function": {"name", "arguments"}}``; Responses sends
``{"type": "function_call", "call_id", "name", "arguments"}``; ``arguments`` is a JSON string
the model wrote, so it may not parse.

Out: Chat wants ``{"role": "tool", "tool_call_id", "content"}``, Responses wants
``{"type": "function_call_output", "call_id", "output"}``; both take text, so a result is
sent as JSON (a string result as it is) and an error as ``{"error": {...}}``.
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

CHAT = "openai.chat"
RESPONSES = "openai.responses"


def read_openai(tool_call: object) -> ToolCall:
    """The name, arguments and id of a Chat tool call or a Responses ``function_call``."""
    data = as_data(tool_call)
    kind = get(data, "type")
    if kind == "function_call":
        call_id = text_field(data, "call_id", "missing_id", "call_id", None)
        name = text_field(data, "name", "missing_name", "name", call_id)
        raw, fmt = get(data, "arguments"), RESPONSES
    elif kind == "function" or (kind is None and get(data, "function") is not None):
        call_id = text_field(data, "id", "missing_id", "id", None)
        function = get(data, "function")
        if function is None:
            raise InvalidToolCall("missing_name", "tool call has no function", call_id=call_id)
        function = as_data(function)
        name = text_field(function, "name", "missing_name", "function.name", call_id)
        raw, fmt = get(function, "arguments"), CHAT
    else:
        raise InvalidToolCall(
            "wrong_type", f"expected a function tool call, got type {str(kind)[:40]!r}",
            call_id=_loose_id(data),
        )  # fmt: skip
    args = arguments_object(raw, tool=name, call_id=call_id, text=True)
    return ToolCall(fmt, name, args, call_id)


def intent_from_openai(
    tool_call: object,
    *,
    scope: str,
    key: str = CONTENT,
    registry: Registry | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Intent:
    """The intent for an OpenAI tool call; raises only ``InvalidToolCall``."""
    return intent_from_tool_call(
        read_openai(tool_call), scope=scope, key=key, registry=registry, meta=meta
    )


def _loose_id(data: object) -> str | None:
    for name in ("call_id", "id"):
        value = get(data, name)
        if isinstance(value, str) and value:
            return value
    return None


def _call_id(call: object, field: str) -> str:
    # A Responses item's ``id`` names the item, not the call: there only ``call_id`` matches.
    if isinstance(call, str) and call:
        return call
    found = call.meta.get(META_CALL_ID) if isinstance(call, Intent) else get(as_data(call), field)
    if not isinstance(found, str) or not found:
        raise InvalidToolCall("missing_id", "cannot tell which tool call this answers")
    return found


def _error_id(call: object, field: str, exc: BaseException) -> str:
    known = exc.call_id if isinstance(exc, InvalidToolCall) else None
    if known:
        return known
    try:
        return _call_id(call, field)
    except InvalidToolCall:
        # The model's own call had no id: nothing can match, but the loop goes on.
        return ""


def _chat(call_id: str, reply: Reply) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": reply.text}


def _responses(call_id: str, reply: Reply) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": reply.text}


def openai_chat_result(tool_call: object, result: Any) -> dict[str, Any]:
    """The ``role: tool`` message answering ``tool_call`` (the call, its intent or its id).

    ``result`` is an ``Awaited``, an exception, or the tool's plain result value.
    """
    return _chat(_call_id(tool_call, "id"), to_reply(result))


def openai_chat_error(tool_call: object, exc: BaseException) -> dict[str, Any]:
    """The ``role: tool`` message telling the model why ``tool_call`` was refused."""
    return _chat(_error_id(tool_call, "id", exc), error_reply(exc))


def openai_responses_result(call: object, result: Any) -> dict[str, Any]:
    """The ``function_call_output`` item answering ``call`` (the item, its intent or id)."""
    return _responses(_call_id(call, "call_id"), to_reply(result))


def openai_responses_error(call: object, exc: BaseException) -> dict[str, Any]:
    """The ``function_call_output`` item telling the model why ``call`` was refused."""
    return _responses(_error_id(call, "call_id", exc), error_reply(exc))
