"""One fresh store per test, over every backend; a Redis server of the tests' own."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from intentq.dedup.base import DedupStore
from intentq.dedup.memory import MemoryDedupStore
from intentq.dedup.redis.store import RedisDedupStore
from intentq.dedup.sql.store import SqlDedupStore
from tests.support.net import free_port, port_open, wait_until
from tests.support.redis_cluster import redis_cluster  # noqa: F401 - a fixture

T = TypeVar("T")
BACKENDS = ["memory", "redis", "redis-cluster", "postgresql", "sqlite"]
# Backends other processes can open too.
SHARED = ["redis", "redis-cluster", "postgresql", "sqlite"]
POLL = 0.02  # seconds between polls on a real clock


class FakeClock:
    """The memory store's clock, moved by the test instead of by time."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Backend:
    """A store under test, and how to let its time pass."""

    name: str
    store: DedupStore
    clock: FakeClock | None = None
    spec: dict[str, Any] = field(default_factory=dict)  # opens the same store elsewhere

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass on the store's clock."""
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            time.sleep(seconds)

    def eventually(self, probe: Callable[[], T], timeout: float = 10.0, what: str = "") -> T:
        """Poll ``probe`` until it returns something truthy, moving the store's time on."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}")
            self.wait(POLL)


def store_now(backend: Backend) -> float:
    """The store's own clock, read the way the store reads it."""
    store = backend.store
    if backend.clock is not None:
        return backend.clock()
    if isinstance(store, RedisDedupStore):
        seconds, micros = store.client.time()
        return int(seconds) + int(micros) / 1e6
    assert isinstance(store, SqlDedupStore)
    with store.engine.connect() as conn:
        return float(conn.execute(select(store.statements.now)).scalar_one())


def open_store(spec: dict[str, Any]) -> DedupStore:
    """Open a store from a picklable description (what child processes receive)."""
    if spec["kind"] == "redis":
        return RedisDedupStore.from_url(spec["url"], prefix=spec["prefix"])
    return SqlDedupStore.from_url(spec["url"], table_name=spec["table"])


# A database of the shared Redis for these tests alone: cleaning up after a test scans only
# its keys, not everything benchmarks left in database 0.
REDIS_DB = 7


def _own_db(url: str) -> str:
    return f"{url.rsplit('/', 1)[0]}/{REDIS_DB}"


def _redis_cleanup(store: RedisDedupStore) -> None:
    keys = list(store.client.scan_iter(match=f"{store.prefix}:*", count=500))
    if keys:
        store.client.delete(*keys)


@pytest.fixture
def make_backend(
    request: pytest.FixtureRequest, tmp_path: Path, unique: str
) -> Iterator[Callable[[str], Backend]]:
    """Build a fresh backend by name; everything it made is dropped after the test."""
    cleanups: list[Callable[[], None]] = []

    def make(name: str) -> Backend:
        if name == "memory":
            clock = FakeClock()
            return Backend(name, MemoryDedupStore(prefix=f"t{unique}", clock=clock), clock=clock)
        if name == "redis":
            spec = {
                "kind": "redis",
                "url": _own_db(request.getfixturevalue("redis_url")),
                "prefix": f"test-{unique}",
            }
        elif name == "redis-cluster":
            url = request.getfixturevalue("redis_cluster").url
            spec = {"kind": "redis", "url": url, "prefix": f"test-{unique}"}
        elif name == "postgresql":
            spec = {
                "kind": "sql",
                "url": request.getfixturevalue("pg_url"),
                "table": f"dedup_{unique}",
            }
        elif name == "sqlite":
            spec = {
                "kind": "sql",
                "url": f"sqlite:///{tmp_path / 'dedup.db'}",
                "table": f"dedup_{unique}",
            }
        else:
            raise ValueError(name)
        store = open_store(spec)
        store.create_schema()

        def cleanup() -> None:
            if isinstance(store, RedisDedupStore):
                _redis_cleanup(store)
            elif isinstance(store, SqlDedupStore):
                store.drop_schema()
            store.close()

        cleanups.append(cleanup)
        return Backend(name, store, spec=spec)

    yield make
    for cleanup in reversed(cleanups):
        cleanup()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, make_backend: Callable[[str], Backend]) -> Backend:
    """Every backend in turn: the contract suite runs once per store."""
    return make_backend(request.param)


@pytest.fixture
def store(backend: Backend) -> DedupStore:
    return backend.store


class RedisServer:
    """A redis-server of the test's own, on a free port, that a test may stop and restart."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: port_open(self.port), timeout=10, what="the test's redis-server")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
