"""An MCP client session (the ``mcp`` package's own client) against ``intentq mcp`` over stdio.

The client starts the server, lists its tools and calls one twice under the same
``_meta`` idempotency key: the second call gets the first call's booking.

    intentq worker --app examples.tools:registry &
    python -m examples.mcp_client
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from intentq.agents import META_KEY


def server() -> StdioServerParameters:
    """``intentq mcp`` for the examples' tools, with this process's INTENTQ_* settings."""
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "intentq.cli", "mcp", "--app", "examples.tools:registry",
              "--scope", "demo-user"],
        env=dict(os.environ),  # read now, not at import: the transport and the store
    )  # fmt: skip


async def book_twice(order: str) -> dict[str, Any]:
    """List the tools, then book under the key ``order`` twice; what each call answered."""
    async with stdio_client(server()) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = (await session.list_tools()).tools
        first = await session.call_tool("book_slot", {"slot": "11:00"}, meta={META_KEY: order})
        again = await session.call_tool("book_slot", {"slot": "11:00"}, meta={META_KEY: order})
    return {
        "tools": {tool.name: tool.input_schema for tool in tools},
        "first": first.structured_content,
        "again": again.structured_content,
    }


if __name__ == "__main__":
    print(asyncio.run(book_twice(sys.argv[1] if len(sys.argv) > 1 else "order-42")))
