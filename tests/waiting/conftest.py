"""Stores that count their reads, over the real Redis and PostgreSQL servers, one per test.

A waiter reads its record through the store's ``get``; counting those reads is how a test
tells a wake-up by notification (one read after the completion) from a poll.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from intentq.dedup.base import Acquired, DedupStore, Record
from intentq.dedup.memory import MemoryDedupStore
from intentq.dedup.redis.store import RedisDedupStore
from intentq.dedup.sql.store import SqlDedupStore
from intentq.intent import fingerprint


class Reads:
    """How many times the store's ``get`` ran; thread-safe."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.count += 1


class CountingRedis(RedisDedupStore):
    reads = Reads()

    def get(self, tool: str, key: str) -> Record | None:
        self.reads.add()
        return super().get(tool, key)


class CountingSql(SqlDedupStore):
    reads = Reads()

    def get(self, tool: str, key: str) -> Record | None:
        self.reads.add()
        return super().get(tool, key)


class CountingMemory(MemoryDedupStore):
    reads = Reads()

    def get(self, tool: str, key: str) -> Record | None:
        self.reads.add()
        return super().get(tool, key)


def counting(store: Any) -> Any:
    store.reads = Reads()  # one counter per store, not per class
    return store


@pytest.fixture
def redis_store(redis_url: str) -> Iterator[CountingRedis]:
    store: CountingRedis = counting(
        CountingRedis.from_url(redis_url, prefix=f"w{uuid.uuid4().hex[:10]}")
    )
    try:
        yield store
    finally:
        keys = list(store.client.scan_iter(f"{store.prefix}:*", count=10_000))
        if keys:
            store.client.delete(*keys)
        store.close()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[CountingSql]:
    store: CountingSql = counting(
        CountingSql.from_url(pg_url, table_name=f"w_{uuid.uuid4().hex[:10]}")
    )
    store.create_schema()
    try:
        yield store
    finally:
        store.drop_schema()
        store.close()


@pytest.fixture(params=["redis", "postgresql"])
def push_store(request: pytest.FixtureRequest) -> DedupStore:
    """A store that notifies: Redis, then PostgreSQL."""
    name = "redis_store" if request.param == "redis" else "pg_store"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def run_once(store: DedupStore, tool: str, key: str, args: dict[str, Any],
             result: Any = None, error: dict[str, Any] | None = None) -> None:  # fmt: skip
    """What a worker does: claim the key, then complete it (or fail it)."""
    claim = store.claim(tool, key, fingerprint(tool, args))
    assert isinstance(claim, Acquired), claim
    if error is None:
        store.complete(tool, key, claim.token, result)
    else:
        store.fail(tool, key, claim.token, error)


def later(action: Callable[[], None]) -> threading.Thread:
    """Run ``action`` in a thread of its own (a worker finishing while the test waits)."""
    thread = threading.Thread(target=action)
    thread.start()
    return thread
