"""A tool call read out of any vendor's format, and the one way it becomes an ``Intent``.

Vendor modules only read fields; naming the key, checking the call against a registry and
building the envelope happen here, so every format behaves the same. SDK objects and their
plain-dict JSON form are both accepted: objects with ``model_dump()`` are dumped, anything
else is read by attribute. No vendor SDK is imported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from intentq.agents.keys import CONTENT, resolve_key
from intentq.errors import InvalidArgs, InvalidIntent, InvalidToolCall, RegistryError, UnknownTool
from intentq.intent import Intent, canonical_json
from intentq.registry import Registry, check_tool_name

# Meta fields an intent made from a tool call carries, to match its result back to the call.
META_CALL_ID = "tool_call_id"
META_SCOPE = "conversation_id"  # also the SQS FIFO group: one conversation stays in order
META_FORMAT = "tool_format"
META_KEY_MODE = "key_mode"
META_CLIENT_KEY = "client_key"
# An unknown-tool error lists this many registered names, so the model can correct itself.
KNOWN_TOOLS_SHOWN = 20


@dataclass(frozen=True)
class ToolCall:
    """One tool call as any vendor sends it: name, arguments object and the call's id."""

    format: str  # "openai.chat", "openai.responses", "anthropic", "mcp"
    name: str
    args: Mapping[str, Any]
    call_id: str | None = None
    sent_key: str | None = None  # an idempotency key the client sent (MCP ``_meta``)


def as_data(obj: object) -> object:
    """A mapping for dicts and pydantic-style models; any other object is read by attribute."""
    if isinstance(obj, Mapping):
        return obj
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        try:
            # by_alias: MCP's ``meta`` field is ``_meta`` on the wire.
            data = dump(by_alias=True, warnings=False)
        except TypeError:  # a model_dump without pydantic's keywords
            data = dump()
        if isinstance(data, Mapping):
            return data
    return obj


def get(obj: object, name: str) -> Any:
    """Field ``name`` of a mapping or an object; ``None`` when it is absent."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def text_field(obj: object, name: str, reason: str, what: str, call_id: str | None) -> str:
    """A required non-empty string field, or ``InvalidToolCall(reason)``."""
    value = get(obj, name)
    if not isinstance(value, str) or not value:
        raise InvalidToolCall(reason, f"{what} must be a non-empty string", call_id=call_id)
    return value


def optional_id(value: object) -> str | None:
    """A call id as text; JSON-RPC ids may be numbers."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def arguments_object(
    value: object, *, tool: str | None, call_id: str | None, text: bool = False
) -> dict[str, Any]:
    """The arguments as a dict; ``text`` when the format sends them as a JSON string."""
    if text and isinstance(value, str):
        if not value.strip():
            # Some OpenAI-compatible servers send "" for a tool without parameters.
            return {}
        try:
            value = _DECODER.decode(value)
        except RecursionError:
            raise InvalidToolCall(
                "invalid_json", "arguments are nested too deeply", tool=tool, call_id=call_id
            ) from None
        except ValueError as exc:
            raise InvalidToolCall(
                "invalid_json", f"arguments are not valid JSON: {str(exc)[:200]}",
                tool=tool, call_id=call_id,
            ) from None  # fmt: skip
    if not isinstance(value, Mapping):
        raise InvalidToolCall(
            "bad_arguments", f"arguments must be a JSON object, not {_json_type(value)}",
            tool=tool, call_id=call_id,
        )  # fmt: skip
    return dict(value)


def _json_type(value: object) -> str:
    names = {str: "a string", list: "an array", bool: "a boolean", type(None): "null"}
    for kind, label in names.items():
        if isinstance(value, kind):
            return label
    return "a number" if isinstance(value, int | float) else type(value).__name__


def _check_registry(registry: Registry, call: ToolCall) -> None:
    try:
        registry.validate(call.name, call.args)
    except UnknownTool as exc:
        known = ", ".join(registry.names[:KNOWN_TOOLS_SHOWN]) or "none"
        raise InvalidToolCall(
            "unknown_tool", f"unknown tool {call.name!r}; the tools are: {known}",
            tool=call.name, call_id=call.call_id,
        ) from exc  # fmt: skip
    except InvalidArgs as exc:
        raise InvalidToolCall(
            "invalid_args", exc.detail, tool=call.name, call_id=call.call_id
        ) from exc


def intent_from_tool_call(
    call: ToolCall,
    *,
    scope: str,
    key: str = CONTENT,
    registry: Registry | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Intent:
    """The intent for ``call`` in ``scope`` (a conversation, a user, a tenant).

    ``key`` is ``"content"``, ``"call"`` or an explicit key (see ``intentq.agents.keys``).
    With ``registry``, an unknown tool or arguments failing the tool's schema are refused
    here, where the model can still be told. Raises only ``InvalidToolCall``.
    """
    tool, call_id = call.name, call.call_id
    if not isinstance(scope, str) or not scope:
        raise InvalidToolCall(
            "bad_scope", "scope must be a non-empty string", tool=tool, call_id=call_id
        )
    try:
        check_tool_name(tool)
    except RegistryError as exc:
        raise InvalidToolCall("bad_name", str(exc), tool=tool, call_id=call_id) from None
    try:
        canonical_json(call.args)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidToolCall(
            "bad_arguments", f"arguments are not JSON: {str(exc)[:200]}",
            tool=tool, call_id=call_id,
        ) from None  # fmt: skip
    if registry is not None:
        _check_registry(registry, call)
    try:
        resolved, how = resolve_key(
            key, scope=scope, tool=tool, args=call.args, call_id=call_id, sent_key=call.sent_key
        )
    except InvalidToolCall as exc:
        exc.tool = tool
        raise
    except InvalidIntent as exc:
        raise InvalidToolCall(exc.reason, exc.message, tool=tool, call_id=call_id) from None
    fields: dict[str, Any] = {META_SCOPE: scope, META_FORMAT: call.format, META_KEY_MODE: how}
    if call_id is not None:
        fields[META_CALL_ID] = call_id
    if call.sent_key is not None:
        fields[META_CLIENT_KEY] = call.sent_key
    try:
        return Intent.create(tool, call.args, key=resolved, meta={**(meta or {}), **fields})
    except InvalidIntent as exc:  # caller's meta that is not JSON
        raise InvalidToolCall(exc.reason, exc.message, tool=tool, call_id=call_id) from None
