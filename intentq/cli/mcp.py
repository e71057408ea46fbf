"""``intentq mcp``: the registry's tools as an MCP server (stdio, or Streamable HTTP)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

import typer

from intentq.cli.common import AppOpt, TransportOpt, check_broker, choice_option, load_settings
from intentq.cli.exits import CliError, ExitCode
from intentq.cli.output import examples, note

EPILOG = examples(
    "intentq mcp --app myapp.tools:registry            (stdio: the client starts it)",
    "intentq mcp --app myapp.tools:registry --port 8765  (http://127.0.0.1:8765/mcp)",
    "intentq mcp --app myapp.tools:registry --scope agent-7 --timeout 120",
)


def mcp(
    app: AppOpt = None,
    transport: TransportOpt = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=1,
            max=65535,
            help="Serve Streamable HTTP on 127.0.0.1:PORT (path /mcp) instead of stdio.",
        ),
    ] = None,
    key: Annotated[
        str,
        choice_option(
            "--key",
            ("content", "call"),
            "Key a call without a _meta key by its content (tool + arguments) or by its "
            "JSON-RPC id (per session).",
        ),
    ] = "content",
    scope: Annotated[
        str | None,
        typer.Option(
            "--scope",
            help="Scope every key by this name (a user, an agent) instead of the MCP "
            "session, so a client that reconnects lands on the same keys.",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0,
            help="Seconds a call waits for its result before answering 'timeout'.",
        ),
    ] = 60.0,
) -> None:
    """Serve the registry's tools over MCP: each tools/call is an intent on the transport,
    run at most once per key, and its answer the intent's result.

    The key is the client's _meta["io.intentq/idempotency-key"] when it sends one, else the
    call's content, scoped by --scope or the MCP session.
    """
    from intentq.cli.common import load_app_registry
    from intentq.mcp_server import serve_http, serve_stdio, tool_server

    settings = check_broker(load_settings(transport=transport, app=app))
    if not settings.app:
        raise CliError("intentq mcp needs the tools: --app package.module:registry", ExitCode.USAGE)
    registry = load_app_registry(settings.app)
    tools = tool_server(settings, registry, key=key, scope=scope, timeout=timeout)
    if port is None:
        asyncio.run(serve_stdio(tools))
        return
    note(f"MCP on http://127.0.0.1:{port}/mcp ({len(registry)} tools); Ctrl-C stops it")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn has stopped serving
        asyncio.run(serve_http(tools, port))
