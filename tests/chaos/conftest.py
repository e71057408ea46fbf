"""Fixtures for the chaos and fault tests: a zygote for worker processes, a Redis of our own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.chaos.world import RedisServer
from bench.chaos.zygote import Zygote


@pytest.fixture(scope="session")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    """Forks worker processes with every module already imported."""
    with Zygote(tmp_path_factory.mktemp("zygote") / "zygote.log") as z:
        yield z


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A durable redis-server of the test's own (AOF, fsync always), to stop and restart."""
    server = RedisServer(tmp_path, durable=True, name="store-redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()
