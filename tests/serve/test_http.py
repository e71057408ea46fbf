"""``intentq mcp --port`` over Streamable HTTP on 127.0.0.1: a duplicate call runs the tool
once, and a call the client gave up on is answered from the store when it asks again."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.cli.conftest import Env
from tests.serve.conftest import APP, ServeWorker, effects
from tests.support.net import free_port, port_open, wait_until


@pytest.fixture
def http_server(env: Env, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "mcp.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "intentq.cli", "mcp", "--app", APP, "--port", str(port)],
        cwd=env.cwd, env=env.process_env(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until(lambda: port_open(port) or proc.poll() is not None, timeout=30)
        assert proc.poll() is None, (tmp_path / "mcp.log").read_text()
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_duplicate_and_abandoned_calls_over_http(
    http_server: str, worker: ServeWorker, cli_db: str, unique: str
) -> None:
    slot, slow = f"http-{unique}", f"slow-{unique}"
    nap = {"slot": slow, "seconds": 1.5}

    async def scenario() -> tuple[list[object], object]:
        async with (
            streamable_http_client(http_server) as (read, write),
            ClientSession(read, write) as client,
        ):
            await client.initialize()
            # the same call twice at once (a client retrying before the answer came)
            both = await asyncio.gather(
                client.call_tool("book_slot", {"slot": slot}),
                client.call_tool("book_slot", {"slot": slot}),
            )
            # a slow call the client gives up on, then asks again in the same session
            abandoned = asyncio.create_task(client.call_tool("slow_book", nap))
            wait = asyncio.to_thread(wait_until, lambda: effects(cli_db, slow) == 1, 20.0)
            await asyncio.sleep(0.3)
            abandoned.cancel()
            await wait
            again = await client.call_tool("slow_book", nap)
            return list(both), again

    both, again = asyncio.run(scenario())

    assert [r.structured_content for r in both] == [{"booked": slot}] * 2  # type: ignore[attr-defined]
    assert effects(cli_db, slot) == 1, worker.log()
    assert again.structured_content == {"booked": slow}  # type: ignore[attr-defined]
    assert effects(cli_db, slow) == 1
