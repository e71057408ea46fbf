"""Waiting for results: push against polling, a thousand awaits at once, and ``intentq mcp``.

1. Latency from a tool's completion (the store's ``complete`` returning) to the waiter
   seeing the result, p50 and p99, on Redis and PostgreSQL: ``AsyncWaiter`` woken by the
   store's notification against the same waiter polling every 200 ms. ``--keys`` waiters
   at once, each completed at a random moment over two seconds by a worker thread.
2. A thousand awaits in one event loop (one ``AsyncWaiter``): wall time from the first
   wait to the last result while a thread completes them all, and the threads and store
   connections in use at the peak.
3. A no-op tool's round trip through ``intentq mcp`` (the ``mcp`` client over stdio, a
   Celery worker on the Redis broker, results pushed from the Redis store), against the
   worker's own path run directly (``Executor.process`` on the same store) and against
   ``Producer.enqueue(..., wait=)`` (the same transport without MCP).

Everything runs in one process run, so compare the ratios. Prints a table; writes
bench/results/await.json.

    .venv/bin/python -m bench.await [--keys 200] [--many 1000] [--calls 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from intentq import Registry, ToolContext
from intentq.dedup.base import Acquired, DedupStore
from intentq.intent import fingerprint

ROOT = Path(__file__).resolve().parents[1]
REDIS = "redis://127.0.0.1:6379/0"
BROKER = "redis://127.0.0.1:6379/7"
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/intentq_test"
POLL = 0.2

registry = Registry()


@registry.tool("noop")
def noop(args: dict[str, Any], ctx: ToolContext) -> None:
    """Do nothing."""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def open_store(kind: str) -> DedupStore:
    from intentq.dedup.redis.store import RedisDedupStore
    from intentq.dedup.sql.store import SqlDedupStore

    if kind == "redis":
        return RedisDedupStore.from_url(REDIS, prefix=f"bench{uuid.uuid4().hex[:8]}")
    store = SqlDedupStore.from_url(POSTGRES, table_name=f"bench_{uuid.uuid4().hex[:8]}")
    store.create_schema()
    return store


def drop(store: DedupStore) -> None:
    from intentq.dedup.sql.store import SqlDedupStore

    if isinstance(store, SqlDedupStore):
        store.drop_schema()
    else:
        client = store.client  # type: ignore[attr-defined]
        keys = list(client.scan_iter(f"{store.prefix}:*", count=10_000))
        if keys:
            client.delete(*keys)
    store.close()


def complete(store: DedupStore, key: str) -> float:
    claim = store.claim("noop", key, fingerprint("noop", {}))
    assert isinstance(claim, Acquired)
    store.complete("noop", key, claim.token, None)
    return time.monotonic()


# -- 1. latency --------------------------------------------------------------------------


def latency(kind: str, push: bool, keys: int) -> list[float]:
    from intentq.waiting import AsyncWaiter

    store = open_store(kind)
    done_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}

    async def run() -> None:
        async with AsyncWaiter(store, push=push, poll=POLL, recheck=3600) as waiter:

            async def wait(key: str) -> None:
                await waiter.wait("noop", key, 30, fingerprint=fingerprint("noop", {}))
                seen_at[key] = time.monotonic()

            names = [f"k{i}" for i in range(keys)]
            tasks = [asyncio.create_task(wait(name)) for name in names]
            await asyncio.sleep(0.5)  # every waiter subscribed and read once

            def worker() -> None:
                start = time.monotonic()
                for name, at in sorted(((n, random.uniform(0, 2.0)) for n in names),
                                       key=lambda pair: pair[1]):  # fmt: skip
                    time.sleep(max(0.0, start + at - time.monotonic()))
                    done_at[name] = complete(store, name)

            await asyncio.to_thread(worker)
            await asyncio.gather(*tasks)

    try:
        asyncio.run(run())
    finally:
        drop(store)
    return [(seen_at[k] - done_at[k]) * 1000 for k in done_at]


# -- 2. many -----------------------------------------------------------------------------


def connections(kind: str, store: DedupStore) -> int:
    if kind == "redis":
        return len(store.client.client_list())  # type: ignore[attr-defined]
    from sqlalchemy import text

    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        return int(conn.execute(text(sql)).scalar_one())


def many(kind: str, count: int) -> dict[str, Any]:
    from intentq.waiting import AsyncWaiter

    store = open_store(kind)
    before = {"threads": threading.active_count(), "connections": connections(kind, store)}
    peak = {"threads": 0, "connections": 0}
    stop = threading.Event()

    def sample() -> None:  # the peak over the whole run, every 20 ms
        while not stop.wait(0.02):
            peak["threads"] = max(peak["threads"], threading.active_count() - 1)
            peak["connections"] = max(peak["connections"], connections(kind, store))

    async def run() -> float:
        async with AsyncWaiter(store, recheck=3600) as waiter:
            started = time.monotonic()
            fp = fingerprint("noop", {})
            tasks = [
                asyncio.create_task(waiter.wait("noop", f"k{i}", 120, fingerprint=fp))
                for i in range(count)
            ]
            await asyncio.sleep(0)
            await asyncio.to_thread(lambda: [complete(store, f"k{i}") for i in range(count)])
            results = await asyncio.gather(*tasks)
            assert all(r.status == "completed" for r in results)
            return time.monotonic() - started

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        wall = asyncio.run(run())
    finally:
        stop.set()
        sampler.join()
        drop(store)
    return {
        "wall_s": round(wall, 3),
        "threads_added": peak["threads"] - before["threads"],
        "connections_added": peak["connections"] - before["connections"],
    }


# -- 3. intentq mcp ----------------------------------------------------------------------


def direct(calls: int) -> list[float]:
    from intentq.dedup.redis.store import RedisDedupStore
    from intentq.executor import Executor
    from intentq.intent import Intent
    from intentq.outcome import Delivery

    store = RedisDedupStore.from_url(REDIS, prefix=f"bench{uuid.uuid4().hex[:8]}")
    executor = Executor(registry, store)
    times = []
    try:
        for _ in range(calls):
            intent = Intent.create("noop", {})
            started = time.perf_counter()
            executor.process(intent.to_json(), Delivery("memory", "bench", intent.intent_id))
            times.append((time.perf_counter() - started) * 1000)
    finally:
        drop(store)
    return times


def celery_env(tmp: str, prefix: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("INTENTQ_")},
        "INTENTQ_TRANSPORT": "celery",
        "INTENTQ_BROKER_URL": BROKER,
        "INTENTQ_CELERY_QUEUE": f"q{prefix}",
        "INTENTQ_DEDUP_URL": REDIS,
        "INTENTQ_KEY_PREFIX": prefix,
        "INTENTQ_DLQ_URL": f"sqlite:///{tmp}/dlq.db",
        "INTENTQ_APP": "bench.await:registry",
        "PYTHONPATH": str(ROOT),
    }


def through_mcp(calls: int) -> dict[str, list[float]]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from intentq.config.settings import Settings
    from intentq.producer import Producer

    prefix = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        env = celery_env(tmp, prefix)
        cli = [sys.executable, "-m", "intentq.cli"]
        subprocess.run([*cli, "init"], env=env, cwd=tmp, check=True, capture_output=True)
        worker = subprocess.Popen(
            [*cli, "worker", "--concurrency", "2"], env=env, cwd=tmp,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            params = StdioServerParameters(command=sys.executable, args=["-m", "intentq.cli",
                                           "mcp"], env=env, cwd=tmp)  # fmt: skip

            async def session() -> list[float]:
                times = []
                async with stdio_client(params) as (r, w), ClientSession(r, w) as client:
                    await client.initialize()
                    await client.call_tool("noop", {"warm": "up"})  # the worker is up
                    for i in range(calls):
                        started = time.perf_counter()
                        result = await client.call_tool("noop", {"n": i})
                        times.append((time.perf_counter() - started) * 1000)
                        assert not result.is_error, result
                return times

            mcp_times = asyncio.run(session())
            saved = dict(os.environ)
            os.environ.update(env)
            try:
                producer_times = []
                with Producer(Settings.load(), registry) as producer:
                    producer.enqueue("noop", {"warm": 1}, wait=30)
                    for i in range(calls):
                        started = time.perf_counter()
                        done = producer.enqueue("noop", {"p": i}, wait=30)
                        producer_times.append((time.perf_counter() - started) * 1000)
                        assert done.status == "completed", done
            finally:
                os.environ.clear()
                os.environ.update(saved)
        finally:
            worker.terminate()
            worker.wait(30)
    return {"mcp": mcp_times, "producer": producer_times}


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 2), "p99": round(pct(values, 0.99), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--many", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=100)
    options = parser.parse_args()

    results: dict[str, Any] = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "latency_ms": {},
        "many": {},
    }
    for kind in ("redis", "postgresql"):
        for push in (True, False):
            name = f"{kind} {'push' if push else f'poll {int(POLL * 1000)} ms'}"
            results["latency_ms"][name] = summary(latency(kind, push, options.keys))
            print(f"{name:>24}: {results['latency_ms'][name]}", flush=True)
        results["many"][kind] = many(kind, options.many)
        print(f"{options.many} awaits on {kind}: {results['many'][kind]}", flush=True)
    direct_ms = direct(options.calls)
    remote = through_mcp(options.calls)
    results["round_trip_ms"] = {
        "executor direct": summary(direct_ms),
        "Producer.enqueue(wait=), Celery": summary(remote["producer"]),
        "intentq mcp over stdio, Celery": summary(remote["mcp"]),
    }
    for name, figures in results["round_trip_ms"].items():
        print(f"{name:>34}: {figures}")
    out = ROOT / "bench" / "results" / "await.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
