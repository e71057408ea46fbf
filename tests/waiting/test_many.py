"""A thousand intents awaited at once in one event loop: one listener connection, a few
reader threads, whatever the number of waiters."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from intentq.dedup.redis.store import RedisDedupStore
from intentq.ops.awaiting import Status
from intentq.waiting import AsyncWaiter
from intentq.waiting.hub import DEFAULT_READERS
from tests.waiting.conftest import run_once

MANY = 1000
ARGS = {"n": 1}


def connections(store: Any) -> int:
    """Connections the server has open now, from every client."""
    if isinstance(store, RedisDedupStore):
        return len(store.client.client_list())
    from sqlalchemy import text

    with store.engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        )).scalar_one())  # fmt: skip


def test_a_thousand_awaits_share_one_listener(push_store: Any) -> None:
    from intentq.intent import fingerprint

    fp = fingerprint("noop", ARGS)
    before_threads = threading.active_count()
    before_connections = connections(push_store)
    peak = {"threads": 0, "connections": 0}

    async def scenario() -> list[Any]:
        async with AsyncWaiter(push_store, recheck=3600) as waiter:
            tasks = [
                asyncio.create_task(waiter.wait("noop", f"k{i}", 60, fingerprint=fp))
                for i in range(MANY)
            ]
            # Given every waiter subscribed and read its (absent) record once
            deadline = time.monotonic() + 30
            while push_store.reads.count < MANY and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert waiter.waiting == MANY
            peak["threads"] = threading.active_count()
            peak["connections"] = await asyncio.to_thread(connections, push_store)

            # When a worker completes them all
            def work() -> None:
                for i in range(MANY):
                    run_once(push_store, "noop", f"k{i}", ARGS, i)

            await asyncio.to_thread(work)
            return await asyncio.gather(*tasks)

    started = time.monotonic()
    done = asyncio.run(scenario())
    wall = time.monotonic() - started

    # Then each waiter has its own result
    assert [d.status for d in done] == [Status.COMPLETED] * MANY
    assert [d.result for d in done] == list(range(MANY))
    # and a thousand waits took the listener, the reader threads and their connections
    assert peak["threads"] - before_threads <= DEFAULT_READERS + 2, peak
    assert peak["connections"] - before_connections <= DEFAULT_READERS + 2, peak
    assert wall < 60
