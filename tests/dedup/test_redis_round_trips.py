"""Each Redis store call is one round trip, a claim batch too (counted by the server itself).

The test's own redis-server counts read events (``total_reads_processed``): one per request
that arrives at once, so a pipelined batch is one. Counting happens on a second connection,
whose own INFO calls are subtracted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from intentq.dedup.base import Acquired, Cached, ClaimRequest
from intentq.dedup.redis.store import RedisDedupStore
from tests.dedup.conftest import RedisServer

TOOL = "send_email"
FP = "b" * 64


class Meter:
    """Round trips and commands the server saw between two readings."""

    def __init__(self, admin: redis.Redis) -> None:
        self.admin = admin

    def _read(self) -> tuple[int, dict[str, int]]:
        # Two INFO requests: each is one read event of its own.
        reads = int(self.admin.info("stats")["total_reads_processed"])
        commands = {k: int(v["calls"]) for k, v in self.admin.info("commandstats").items()}
        return reads, commands

    def measure(self, action: Callable[[], Any]) -> tuple[int, dict[str, int]]:
        reads_0, commands_0 = self._read()
        action()
        reads_1, commands_1 = self._read()
        commands = {
            name.removeprefix("cmdstat_"): calls - commands_0.get(name, 0)
            for name, calls in commands_1.items()
            if calls != commands_0.get(name, 0) and name != "cmdstat_info"
        }
        return reads_1 - reads_0 - 2, commands


@pytest.fixture
def store(own_redis: RedisServer) -> Iterator[RedisDedupStore]:
    store = RedisDedupStore.from_url(own_redis.url, prefix="rt")
    store.create_schema()
    store.claim(TOOL, "warm-up", FP)  # the connection is open before counting starts
    yield store
    store.close()


@pytest.fixture
def meter(own_redis: RedisServer) -> Iterator[Meter]:
    admin = redis.Redis.from_url(own_redis.url)
    yield Meter(admin)
    admin.close()


def test_every_call_is_one_round_trip_running_one_script(
    store: RedisDedupStore, meter: Meter
) -> None:
    token = ""

    def claim_new() -> None:
        nonlocal token
        claim = store.claim(TOOL, "k", FP, lease=60)
        assert isinstance(claim, Acquired)
        token = claim.token

    calls: list[tuple[str, Callable[[], Any], str]] = [
        ("claim a new key", claim_new, "evalsha"),
        ("claim a duplicate", lambda: store.claim(TOOL, "k", FP), "evalsha"),
        ("extend", lambda: store.extend(TOOL, "k", token, 60), "evalsha"),
        ("release", lambda: store.release(TOOL, "k", token), "evalsha"),
        ("claim after release", claim_new, "evalsha"),
        ("complete", lambda: store.complete(TOOL, "k", token, {"id": 7}), "evalsha"),
        ("claim a completed key", lambda: store.claim(TOOL, "k", FP), "evalsha"),
        ("get", lambda: store.get(TOOL, "k"), "hgetall"),
        ("forget", lambda: store.forget(TOOL, "k"), "del"),
        ("claim again", claim_new, "evalsha"),
        ("fail", lambda: store.fail(TOOL, "k", token, {"reason": "x"}), "evalsha"),
        ("reset", lambda: store.reset(TOOL, "k"), "evalsha"),
    ]
    for what, call, command in calls:
        round_trips, commands = meter.measure(call)
        assert round_trips == 1, what
        assert commands.get(command) == 1, (what, commands)
        assert "script|load" not in commands and "eval" not in commands, what


def test_a_batch_of_ten_claims_is_one_round_trip(store: RedisDedupStore, meter: Meter) -> None:
    store.complete(TOOL, "done", _token(store.claim(TOOL, "done", FP)), "cached")
    batch = [ClaimRequest(TOOL, f"new-{i}", FP) for i in range(9)] + [
        ClaimRequest(TOOL, "done", FP)
    ]
    claims: list[Any] = []

    round_trips, commands = meter.measure(lambda: claims.extend(store.claim_many(batch)))

    assert round_trips == 1
    assert commands["evalsha"] == 10
    assert "time" in commands  # the scripts read the server's clock
    assert all(isinstance(c, Acquired) for c in claims[:9]) and claims[9] == Cached("cached")


def test_a_flushed_script_cache_is_reloaded_once(store: RedisDedupStore, meter: Meter) -> None:
    store.client.script_flush()

    _, commands = meter.measure(lambda: store.claim(TOOL, "a", FP))
    assert commands.get("script|load", 0) >= 1 and commands["evalsha"] == 2

    store.client.script_flush()
    _, commands = meter.measure(
        lambda: store.claim_many([ClaimRequest(TOOL, f"b{i}", FP) for i in range(3)])
    )
    assert commands.get("script|load", 0) >= 1 and commands["evalsha"] == 6

    round_trips, _ = meter.measure(lambda: store.claim(TOOL, "c", FP))
    assert round_trips == 1


def _token(claim: Any) -> str:
    assert isinstance(claim, Acquired)
    return claim.token
