"""An MCP client (the ``mcp`` package's own) against ``intentq mcp`` over stdio, with a real
SQS worker behind it: tools listed from the registry, every key mode, bad input as error
results, and a client that hangs up mid-call losing nothing."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from intentq.agents import META_KEY
from tests.cli.conftest import Env
from tests.serve.conftest import APP, ServeWorker, effects
from tests.support.net import wait_until


@asynccontextmanager
async def session(env: Env, *options: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "intentq.cli", "mcp", "--app", APP, *options],
        env=env.process_env(), cwd=str(env.cwd),
    )  # fmt: skip
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        yield client


def answer(result: Any) -> Any:
    """The JSON a model would read from a CallToolResult's text."""
    return json.loads(result.content[0].text)


def test_tools_keys_and_errors_over_stdio(
    env: Env, worker: ServeWorker, cli_db: str, unique: str
) -> None:
    slot = f"s-{unique}"

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with session(env) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            seen["tools"] = tools
            # content key: the same call twice (a model asked again) runs the tool once
            seen["first"] = await client.call_tool("book_slot", {"slot": slot})
            seen["again"] = await client.call_tool("book_slot", {"slot": slot})
            # a client's own key, sent twice: once; reused with other arguments: refused
            meta = {META_KEY: f"order-{unique}"}
            seen["meta"] = await client.call_tool("book_slot", {"slot": f"{slot}-m"}, meta=meta)
            seen["meta_again"] = await client.call_tool(
                "book_slot", {"slot": f"{slot}-m"}, meta=meta
            )
            seen["meta_other"] = await client.call_tool(
                "book_slot", {"slot": f"{slot}-x"}, meta=meta
            )
            # bad input: error results, and the server goes on serving
            seen["unknown"] = await client.call_tool("cancel_all", {})
            seen["schema"] = await client.call_tool("book_slot", {"slot": 15})
            seen["bad_key"] = await client.call_tool(
                "book_slot", {"slot": slot}, meta={META_KEY: "no spaces allowed"}
            )
            seen["dead"] = await client.call_tool("refuse_slot", {"slot": slot})
            seen["after"] = await client.call_tool("book_slot", {"slot": slot})
        # key="call": each JSON-RPC request is its own intent, even with equal arguments
        async with session(env, "--key", "call") as client:
            seen["call_1"] = await client.call_tool("book_slot", {"slot": f"{slot}-c"})
            seen["call_2"] = await client.call_tool("book_slot", {"slot": f"{slot}-c"})
        # a short wait: the answer says so, and the intent goes on
        async with session(env, "--timeout", "0.3") as client:
            seen["timeout"] = await client.call_tool("slow_book", {"slot": f"{slot}-t",
                                                                   "seconds": 2})  # fmt: skip
        return seen

    seen = asyncio.run(scenario())

    tools = seen["tools"]
    assert set(tools) == {"book_slot", "slow_book", "refuse_slot", "noop"}
    assert tools["book_slot"].input_schema["properties"]["slot"]["type"] == "string"
    assert tools["book_slot"].description == "Book a slot in the calendar."
    hints = {name: tool.annotations for name, tool in tools.items()}
    assert all(hint.idempotent_hint for hint in hints.values())
    assert (hints["book_slot"].destructive_hint, hints["slow_book"].destructive_hint) == (
        False, True,
    )  # fmt: skip
    assert hints["refuse_slot"].destructive_hint is None

    assert seen["first"].structured_content == {"booked": slot}
    assert not seen["first"].is_error and seen["again"].structured_content == {"booked": slot}
    assert effects(cli_db, slot) == 1, worker.log()

    assert seen["meta_again"].structured_content == {"booked": f"{slot}-m"}
    assert effects(cli_db, f"{slot}-m") == 1
    assert seen["meta_other"].is_error
    assert answer(seen["meta_other"])["error"]["reason"] == "KeyReuseMismatch"
    assert effects(cli_db, f"{slot}-x") == 0

    for name, reason in (("unknown", "unknown_tool"), ("schema", "invalid_args"),
                         ("bad_key", "bad_key")):  # fmt: skip
        assert seen[name].is_error and answer(seen[name])["error"]["reason"] == reason, name
    dead = answer(seen["dead"])["error"]
    assert (dead["status"], dead["reason"]) == ("dead", "permanent")
    assert "is closed" in dead["message"]
    assert seen["after"].structured_content == {"booked": slot}

    assert effects(cli_db, f"{slot}-c") == 2  # two requests, two keys

    assert answer(seen["timeout"])["error"]["status"] == "timeout"
    wait_until(lambda: effects(cli_db, f"{slot}-t") == 1, timeout=20, what="the slow tool")


def test_a_client_that_hangs_up_mid_call_loses_nothing(
    env: Env, worker: ServeWorker, cli_db: str, unique: str
) -> None:
    from intentq.dedup import open_store

    slot = f"h-{unique}"
    args = {"slot": slot, "seconds": 1.5}
    scope = ("--scope", f"agent-{unique}")

    async def hang_up() -> None:
        async with session(env, *scope) as client:
            call = asyncio.create_task(client.call_tool("slow_book", args))
            # The intent is in the worker's hands once its record exists: then hang up.
            store = open_store(env.vars["INTENTQ_DEDUP_URL"], env.vars["INTENTQ_KEY_PREFIX"])
            try:
                while not list(store.client.scan_iter(f"{store.prefix}:slow_book:*")):  # type: ignore[attr-defined]
                    await asyncio.sleep(0.02)
            finally:
                store.close()
            call.cancel()

    async def retry() -> Any:
        async with session(env, *scope) as client:
            return await client.call_tool("slow_book", args)

    asyncio.run(hang_up())
    result = asyncio.run(retry())

    assert result.structured_content == {"booked": slot}
    assert effects(cli_db, slot) == 1, worker.log()
