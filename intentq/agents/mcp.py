"""MCP tool calls: ``tools/call`` requests in, ``CallToolResult`` out.

In: the JSON-RPC request ``{"jsonrpc", "id", "method": "tools/call", "params"}`` or just its
``params`` ``{"name", "arguments", "_meta"}``, as dicts or the ``mcp`` package's
``CallToolRequest`` / ``CallToolRequestParams``. A client may name the intent itself with
``_meta["io.intentq/idempotency-key"]``; that key is confined to the scope (see
``intentq.agents.keys``) and a malformed one is refused. The JSON-RPC ``id`` is the call id
``key="call"`` uses; a bare ``params`` has none.

Out: ``{"content": [{"type": "text", "text"}], "structuredContent", "isError"}`` as a dict,
or as ``mcp.types.CallToolResult`` when the ``mcp`` package is installed. An error is a
result with ``isError`` (the model reads it), not a JSON-RPC error (the client would).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from intentq.agents.base import (
    ToolCall,
    arguments_object,
    as_data,
    get,
    intent_from_tool_call,
    optional_id,
    text_field,
)
from intentq.agents.keys import CONTENT
from intentq.agents.replies import Reply, error_reply, to_reply
from intentq.errors import ConfigError, InvalidIntent, InvalidToolCall
from intentq.intent import Intent, normalize_key
from intentq.registry import Registry

if TYPE_CHECKING:
    from mcp.types import CallToolResult

FORMAT = "mcp"
METHOD = "tools/call"
# Where a client puts its idempotency key: MCP reserves ``_meta`` for such extensions.
META_KEY = "io.intentq/idempotency-key"


def _sent_key(params: object, call_id: str | None) -> str | None:
    meta = get(params, "_meta")
    if meta is None and not isinstance(params, Mapping):
        meta = getattr(params, "meta", None)  # an object read by attribute: the field name
    if meta is None:
        return None
    meta = as_data(meta)
    if not isinstance(meta, Mapping):
        raise InvalidToolCall("bad_meta", "params._meta must be an object", call_id=call_id)
    sent = meta.get(META_KEY)
    if sent is None:
        return None
    try:
        return normalize_key(sent)
    except InvalidIntent as exc:
        raise InvalidToolCall(
            "bad_key", f"_meta[{META_KEY!r}]: {exc.message}", call_id=call_id
        ) from None


def read_mcp(request: object) -> ToolCall:
    """The name, arguments, JSON-RPC id and client key of a ``tools/call`` request."""
    data = as_data(request)
    method, params = get(data, "method"), get(data, "params")
    call_id = optional_id(get(data, "id"))
    if method is not None or params is not None:  # the request, not only its params
        if method != METHOD:
            raise InvalidToolCall(
                "wrong_type", f"expected {METHOD}, got method {str(method)[:40]!r}",
                call_id=call_id,
            )  # fmt: skip
        if params is None:
            raise InvalidToolCall("missing_name", "tools/call has no params", call_id=call_id)
        params = as_data(params)
    else:
        params = data
    name = text_field(params, "name", "missing_name", "params.name", call_id)
    raw = get(params, "arguments")
    # MCP makes ``arguments`` optional: a tool without parameters gets none.
    args = {} if raw is None else arguments_object(raw, tool=name, call_id=call_id)
    return ToolCall(FORMAT, name, args, call_id, _sent_key(params, call_id))


def intent_from_mcp(
    request: object,
    *,
    scope: str,
    key: str = CONTENT,
    registry: Registry | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Intent:
    """The intent for a ``tools/call`` request; raises only ``InvalidToolCall``.

    A key in ``_meta`` wins over the ``"content"`` and ``"call"`` modes; an explicit
    ``key`` wins over it.
    """
    return intent_from_tool_call(
        read_mcp(request), scope=scope, key=key, registry=registry, meta=meta
    )


def _result(reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {"content": [{"type": "text", "text": reply.text}]}
    # structuredContent must be an object; an error's shape is not the tool's outputSchema.
    if not reply.is_error and isinstance(reply.value, dict):
        out["structuredContent"] = reply.value
    out["isError"] = reply.is_error
    return out


def mcp_result(result: Any) -> dict[str, Any]:
    """A ``CallToolResult`` dict for an ``Awaited``, an exception or a plain result value."""
    return _result(to_reply(result))


def mcp_error(exc: BaseException) -> dict[str, Any]:
    """A ``CallToolResult`` dict (``isError``) telling the model why its call was refused."""
    return _result(error_reply(exc))


def _object(payload: dict[str, Any]) -> CallToolResult:
    try:
        from mcp.types import CallToolResult
    except ImportError as exc:
        raise ConfigError(
            "MCP result objects need the mcp package: pip install 'intentq[mcp]'"
        ) from exc
    return CallToolResult.model_validate(payload)


def mcp_result_object(result: Any) -> CallToolResult:
    """``mcp_result`` as an ``mcp.types.CallToolResult``; needs the ``mcp`` package."""
    return _object(mcp_result(result))


def mcp_error_object(exc: BaseException) -> CallToolResult:
    """``mcp_error`` as an ``mcp.types.CallToolResult``; needs the ``mcp`` package."""
    return _object(mcp_error(exc))
