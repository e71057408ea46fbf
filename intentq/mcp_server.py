"""``intentq mcp``: a registry's tools as an MCP server, each call run at most once per key.

``tools/list`` gives every registered tool with its pydantic model's JSON schema; a
``tools/call`` becomes an intent on the configured transport and its answer is the intent's
outcome, awaited in the store. The key is the client's ``_meta["io.intentq/idempotency-key"]``
when it sends one, else the call's content (tool and arguments), both scoped (see
``intentq.agents.keys``): by ``scope`` when given, else by the MCP session. A client that
disconnects mid-call loses nothing: the intent runs once and its result waits in the store,
where the same call again (same scope) finds it without running the tool.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from typing import TYPE_CHECKING, Any

from intentq.agents import (
    CALL,
    CONTENT,
    InvalidToolCall,
    intent_from_mcp,
    mcp_error_object,
    mcp_result_object,
)
from intentq.errors import ConfigError, IntentqError
from intentq.ops.awaiting import Status
from intentq.registry import Registry, ToolSpec
from intentq.waiting.producer import AsyncProducer

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server
    from mcp.types import CallToolRequestParams, CallToolResult, ListToolsResult, Tool

    from intentq.config.settings import Settings

log = logging.getLogger("intentq.mcp")

# Seconds a tools/call waits for its intent's outcome before answering "timeout" (the intent
# may still complete; the same call again then gets its result).
DEFAULT_CALL_TIMEOUT = 60.0
# Streamable HTTP serves on this address only: the server has no authentication of its own.
HTTP_HOST = "127.0.0.1"
HTTP_PATH = "/mcp"


def tool_schema(spec: ToolSpec) -> dict[str, Any]:
    """The JSON schema of a tool's arguments (any object when it has no model)."""
    if spec.args_model is None:
        return {"type": "object"}
    return spec.args_model.model_json_schema()


def describe(spec: ToolSpec) -> Tool:
    """The MCP ``Tool`` for a registered tool.

    ``idempotentHint`` is always true: through intentq a repeated call with the same
    arguments (or the same ``_meta`` key) has no further effect. ``destructiveHint`` is the
    registry's ``destructive`` flag, left out when the tool does not say.
    """
    from mcp.types import Tool, ToolAnnotations

    doc = inspect.getdoc(spec.handler) or ""
    return Tool(
        name=spec.name,
        description=doc.split("\n\n")[0] or f"the {spec.name} tool",
        input_schema=tool_schema(spec),
        annotations=ToolAnnotations(idempotent_hint=True, destructive_hint=spec.destructive),
    )


class ToolServer:
    """Answers ``tools/list`` and ``tools/call`` for ``registry`` through ``producer``."""

    def __init__(
        self,
        registry: Registry,
        producer: AsyncProducer,
        *,
        key: str = CONTENT,
        scope: str | None = None,
        timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> None:
        if key not in (CONTENT, CALL):
            raise ConfigError(f"key mode must be {CONTENT!r} or {CALL!r}, not {key!r}")
        if key == CALL and scope is not None:
            # JSON-RPC ids start again with every session: under one fixed scope, two
            # sessions' first calls would share a key.
            raise ConfigError("key mode 'call' keys by the session: it takes no fixed scope")
        self.registry = registry
        self.producer = producer
        self.key = key
        self.scope = scope
        self.timeout = timeout
        self._process_session = uuid.uuid4().hex

    def session_scope(self, ctx: Any) -> str:
        """The scope of a call: the fixed one, else the MCP session's id."""
        if self.scope is not None:
            return self.scope
        headers = getattr(ctx.request, "headers", None)
        session_id = headers.get("mcp-session-id") if headers is not None else None
        # stdio (no header): the process serves one client, so it is the session.
        return f"mcp-session:{session_id or self._process_session}"

    async def list_tools(self, ctx: Any, params: Any) -> ListToolsResult:
        from mcp.types import ListToolsResult

        return ListToolsResult(tools=[describe(spec) for spec in self.registry])

    async def call_tool(self, ctx: Any, params: CallToolRequestParams) -> CallToolResult:
        request = {
            "method": "tools/call",
            "id": ctx.request_id,
            "params": params.model_dump(by_alias=True, exclude_none=True),
        }
        try:
            intent = intent_from_mcp(
                request, scope=self.session_scope(ctx), key=self.key, registry=self.registry
            )
        except InvalidToolCall as exc:
            return mcp_error_object(exc)
        try:
            # Already answered (a retry after a lost connection): no message to send.
            done = await self.producer.result(intent, 0)
            if done.status is Status.TIMEOUT:
                await self.producer.send_intent(intent)
                done = await self.producer.result(intent, self.timeout)
        except IntentqError as exc:  # another call's key, a store or broker that is down
            log.warning("%s: %s", intent.tool, exc)
            return mcp_error_object(exc)
        return mcp_result_object(done)

    def server(self, name: str = "intentq") -> Server[Any]:
        """The MCP SDK's low-level server with these handlers."""
        from mcp.server.lowlevel import Server

        from intentq import __version__

        return Server(
            name,
            version=__version__,
            instructions="Tools run at most once per idempotency key: a call repeated with "
            "the same arguments gets the first call's result.",
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
        )


async def serve_stdio(tools: ToolServer) -> None:
    """Serve one client over this process's stdin and stdout until it closes them."""
    from mcp.server.stdio import stdio_server

    server = tools.server()
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await tools.producer.aclose()


async def serve_http(tools: ToolServer, port: int, host: str = HTTP_HOST) -> None:
    """Serve Streamable HTTP at ``http://{host}:{port}/mcp`` until stopped."""
    import uvicorn

    app = tools.server().streamable_http_app(streamable_http_path=HTTP_PATH, host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    try:
        await uvicorn.Server(config).serve()
    finally:
        await tools.producer.aclose()


def tool_server(
    settings: Settings,
    registry: Registry,
    *,
    key: str = CONTENT,
    scope: str | None = None,
    timeout: float = DEFAULT_CALL_TIMEOUT,
) -> ToolServer:
    """A ``ToolServer`` sending on the settings' transport and waiting on their store."""
    return ToolServer(
        registry, AsyncProducer(settings, registry), key=key, scope=scope, timeout=timeout
    )
