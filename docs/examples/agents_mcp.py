"""MCP: a ``tools/call`` request in, a ``CallToolResult`` out, for any MCP server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from intentq import Registry
from intentq.agents import InvalidToolCall, intent_from_mcp, mcp_error, mcp_result
from intentq.intent import Intent
from intentq.ops import Awaited

Run = Callable[[Intent], Awaited]


def call_tool(request: Any, caller_id: str, registry: Registry, run: Run) -> dict[str, Any]:
    """Answer ``tools/call``; a client's ``_meta`` idempotency key is kept to ``caller_id``."""
    try:
        # The scope is who is calling (a user, a tenant), not the session: a client that
        # reconnects and sends its request again must land on the same key.
        intent = intent_from_mcp(request, scope=caller_id, registry=registry)
    except InvalidToolCall as exc:
        return mcp_error(exc)  # isError: the model reads why
    return mcp_result(run(intent))  # mcp_result_object() for the mcp SDK's type
