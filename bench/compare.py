"""Side by side on one Redis: intentq's store, Powertools' idempotent_function, a naive lock.

Each contender runs the same two workloads in the same run on a redis-server of the
benchmark's own (so command counts are exact and nothing else shares it):

- new keys: a key never seen, the tool runs once, the result is recorded;
- duplicates: the same keys again, the recorded result is returned without running.

Round trips are counted on the client (packets sent to the server), server commands from
``INFO commandstats`` (commands inside a Lua script count there). Writes JSON and Markdown to
bench/results/compare.{json,md}.

    python bench/compare.py [--n 5000]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._redis_server import OwnRedis, total_calls
from intentq.dedup.base import Acquired, Cached
from intentq.dedup.redis.store import RedisDedupStore
from intentq.intent import fingerprint

RESULTS = Path(__file__).resolve().parent / "results"


class CountingConnection(redis.Connection):
    """Counts what the client sends: one count per round trip (a pipeline is one)."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)


def counting_client(url: str) -> redis.Redis:
    pool = redis.ConnectionPool.from_url(url, connection_class=CountingConnection)
    return redis.Redis(connection_pool=pool)


def tool(args: dict[str, Any]) -> dict[str, Any]:
    return {"booked": args["slot"]}


def intentq_contender(client: redis.Redis) -> Callable[[str], Any]:
    store = RedisDedupStore(client, prefix=f"cmp-{uuid.uuid4().hex[:6]}")

    def call(key: str) -> Any:
        args = {"slot": key}
        claim = store.claim("book", key, fingerprint("book", args), lease=60, ttl=3600)
        if isinstance(claim, Cached):
            return claim.result
        assert isinstance(claim, Acquired), claim
        result = tool(args)
        store.complete("book", key, claim.token, result, ttl=3600)
        return result

    return call


def powertools_contender(client: redis.Redis) -> Callable[[str], Any]:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
    from aws_lambda_powertools.utilities.idempotency.persistence.cache import (
        CachePersistenceLayer,
    )

    logging.getLogger("aws_lambda_powertools").setLevel(logging.ERROR)
    # Outside Lambda there is no remaining-time to register; Powertools warns once per call.
    warnings.filterwarnings("ignore", message="Couldn't determine the remaining time")
    layer = CachePersistenceLayer(client=client)  # type: ignore[arg-type]
    config = IdempotencyConfig(expires_after_seconds=3600, use_local_cache=False)

    @idempotent_function(data_keyword_argument="args", persistence_store=layer, config=config)
    def book(args: dict[str, Any]) -> dict[str, Any]:
        return tool(args)

    return lambda key: book(args={"slot": key})


def naive_contender(client: redis.Redis) -> Callable[[str], Any]:
    """GET, then SET NX a lock, run, SET the result: the usual hand-rolled version."""
    prefix = f"naive-{uuid.uuid4().hex[:6]}"

    def call(key: str) -> Any:
        name = f"{prefix}:{key}"
        cached = client.get(name)
        if cached is not None and cached != b"__lock__":
            return json.loads(cached)
        if not client.set(name, "__lock__", nx=True, ex=60):
            raise RuntimeError("busy")
        result = tool({"slot": key})
        client.set(name, json.dumps(result), ex=3600)
        return result

    return call


CONTENDERS = {
    "intentq (Lua, fenced)": intentq_contender,
    "Powertools idempotent_function": powertools_contender,
    "naive GET + SET NX": naive_contender,
}


def measure(
    url: str, make: Callable[[redis.Redis], Callable[[str], Any]], n: int
) -> dict[str, Any]:
    client = counting_client(url)
    plain = redis.Redis.from_url(url)
    call = make(client)
    keys = [uuid.uuid4().hex for _ in range(n)]
    call("warm-up")
    out: dict[str, Any] = {}
    for phase in ("new", "duplicate"):
        sent, cmds = CountingConnection.sent, total_calls(plain)
        start = time.perf_counter()
        for key in keys:
            call(key)
        elapsed = time.perf_counter() - start
        out[phase] = {
            "calls_per_s": round(n / elapsed),
            "round_trips_per_call": round((CountingConnection.sent - sent) / n, 2),
            "server_commands_per_call": round((total_calls(plain) - cmds - 1) / n, 2),
        }
    client.close()
    plain.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="keys per workload")
    opts = parser.parse_args()
    with OwnRedis() as url:
        results = {name: measure(url, make, opts.n) for name, make in CONTENDERS.items()}
    base = results["intentq (Lua, fenced)"]
    lines = [
        f"Machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, redis-server on loopback, n={opts.n} per workload.",
        "",
        "| contender | new keys/s | round trips | duplicates/s | round trips "
        "| vs intentq (new, dup) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        new, dup = r["new"], r["duplicate"]
        ratio = (
            f"{new['calls_per_s'] / base['new']['calls_per_s']:.2f}x, "
            f"{dup['calls_per_s'] / base['duplicate']['calls_per_s']:.2f}x"
        )
        lines.append(
            f"| {name} | {new['calls_per_s']} | {new['round_trips_per_call']} "
            f"| {dup['calls_per_s']} | {dup['round_trips_per_call']} | {ratio} |"
        )
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compare.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "compare.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
