"""Throughput with 1, 2 and 4 SQS worker processes on one store and one queue, and what each
intent costs the store and the queue.

For each store (a redis-server of the benchmark's own, so its counters are exact; the local
PostgreSQL, in a database of the benchmark's own) and each number of worker processes, a
fresh queue is filled with N no-op intents and drained by that many ``SqsWorker`` processes
(forked from this preloaded process, concurrency 20 each), paired with a plain boto3 drain
of the same backlog just before it (one client: ``receive_message`` of 10, then
``delete_message_batch``). Reported per intent:

- worker CPU (all worker processes), SQS server CPU (ministack), store server CPU (the
  redis-server process; the PostgreSQL backends serving the workers' connections, WAL
  writer and checkpointer not included);
- store calls, counted in each worker around the store's public methods: each is one round
  trip (``claim_many`` and ``complete_many`` a whole batch in one), except a claim that takes
  over a record (PostgreSQL: one more) and a call after Redis lost its scripts;
- store operations seen by the server: Redis ``EVAL``/``EVALSHA`` calls from ``INFO
  commandstats`` (a script's own commands are counted apart; a pipelined batch is one per
  entry); PostgreSQL transactions committed in the benchmark's database
  (``pg_stat_database.xact_commit``): every store call is one autocommit statement or one
  pipeline, so one transaction per round trip;
- SQS calls per 10 messages, counted in each worker by boto3's event hooks.

Every process shares the same cores: with 2 cores, 4 worker processes contend with each
other, ministack and the store for them. Writes bench/results/scaling.{json,md}.

    python bench/scaling.py [--n 3000] [--rounds 2] [--procs 1 2 4] [--stores redis postgres]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
import redis

from bench._redis_server import OwnRedis
from bench.sqs import PG_DB, PG_URL, drain_raw, ensure_pg_database, fill, registry, server_cpu
from intentq.config import Settings
from intentq.consumers.sqs.service import SqsWorker
from intentq.dedup import open_store
from intentq.dlq.memory import MemoryDeadLetterStore
from tests.support.net import free_port
from tests.support.services import SqsServer

RESULTS = Path(__file__).resolve().parent / "results"
PG_DSN = f"host=127.0.0.1 user=postgres dbname={PG_DB}"
CONCURRENCY = 20  # the SQS worker's default
TICK = 0.005


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process (Linux ``/proc``); 0 if it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the worker processes ----------------------------------------------------------------


def worker_process(
    store_url: str,
    prefix: str,
    queue_url: str,
    endpoint: str,
    deleted: Any,
    ready: Any,
    go: Any,
    stop: Any,
    out: Any,
) -> None:
    """One ``SqsWorker`` from ``go`` until ``stop``; its deletes counted in ``deleted``."""
    logging.basicConfig(level=logging.WARNING)
    settings = Settings(
        transport="sqs",
        sqs_queue=queue_url,
        sqs_endpoint_url=endpoint,
        sqs_wait_seconds=1,
        concurrency=CONCURRENCY,
        lease=60,
    )
    calls: Counter[str] = Counter()

    def count(event_name: str, **_: Any) -> None:
        calls[event_name.rsplit(".", 1)[-1]] += 1

    store = open_store(store_url, prefix=prefix)
    store_calls: Counter[str] = Counter()
    for name in STORE_CALLS:
        setattr(store, name, _counted(getattr(store, name), name, store_calls))
    with SqsWorker(settings, registry(), store=store, dlq=MemoryDeadLetterStore()) as worker:
        worker.queue  # noqa: B018 - look the queue up before the clock starts
        worker.client.meta.events.register("before-call.sqs", count)
        ready.set()
        go.wait()
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        while not stop.wait(TICK):
            deleted.value = worker.settle_stats.deleted
        worker.stop()
        thread.join()
        deleted.value = worker.settle_stats.deleted
        stats = worker.settle_stats
    store.close()
    out.put({"calls": dict(calls), "record_calls": stats.record_calls, "store": store_calls})


# The store's calls a worker makes, each one round trip.
STORE_CALLS = ("claim", "claim_many", "complete", "complete_many", "release", "fail", "extend")


def _counted(method: Any, name: str, counts: Counter[str]) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        counts[name] += 1
        return method(*args, **kwargs)

    return call


# -- the store's counters ----------------------------------------------------------------


class RedisCounters:
    """Script calls and server CPU of a redis-server of the benchmark's own."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)

    def read(self) -> tuple[int, float]:
        stats = self.client.info("commandstats")
        scripts = sum(
            int(stats.get(name, {}).get("calls", 0)) for name in ("cmdstat_evalsha", "cmdstat_eval")
        )
        cpu = self.client.info("cpu")
        return scripts, float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])

    def backends(self) -> dict[int, float]:
        return {}

    def close(self) -> None:
        self.client.close()


class PgCounters:
    """Transactions committed in the benchmark's database, and its backends' CPU."""

    def __init__(self) -> None:
        self.conn = psycopg.connect(PG_DSN, autocommit=True)

    def read(self) -> tuple[int, float]:
        # Statistics of backends that ended are flushed as they exit; ask for fresh figures.
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        row = self.conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (PG_DB,)
        ).fetchone()
        assert row is not None
        return int(row[0]), 0.0

    def backends(self) -> dict[int, float]:
        """CPU seconds so far of every other backend connected to the benchmark's database."""
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (PG_DB,),
        ).fetchall()
        return {int(pid): cpu_of(int(pid)) for (pid,) in rows}

    def close(self) -> None:
        self.conn.close()


# -- one drain by several processes ------------------------------------------------------


@dataclass
class Run:
    """One drain by ``procs`` worker processes, and the raw drain paired with it."""

    store: str
    procs: int
    seconds: float
    raw_seconds: float
    worker_cpu: float
    sqs_cpu: float
    store_cpu: float
    round_trips: int
    calls: Counter[str] = field(default_factory=Counter)
    record_calls: int = 0


def drain_processes(
    server: SqsServer,
    url: str,
    n: int,
    store: str,
    store_url: str,
    procs: int,
    counters: RedisCounters | PgCounters,
) -> tuple[float, float, float, float, int, Counter[str], int]:
    ctx = mp.get_context("fork")
    prefix = f"scale-{uuid.uuid4().hex[:8]}"
    setup = open_store(store_url, prefix=prefix)
    setup.create_schema()
    setup.close()
    go, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    counts = [ctx.Value("i", 0, lock=False) for _ in range(procs)]
    readies = [ctx.Event() for _ in range(procs)]
    children = [
        ctx.Process(
            target=worker_process,
            args=(
                store_url,
                prefix,
                url,
                server.endpoint_url,
                counts[i],
                readies[i],
                go,
                stop,
                out,
            ),
            daemon=True,
        )
        for i in range(procs)
    ]
    for child in children:
        child.start()
    for ready in readies:
        if not ready.wait(120):
            raise SystemExit("a worker process did not start")
    trips_before, store_cpu_before = counters.read()
    backends_before = counters.backends()
    cpu_before = sum(cpu_of(c.pid or 0) for c in children)
    sqs_before = server_cpu(server)
    started = time.perf_counter()
    go.set()
    while sum(c.value for c in counts) < n:
        time.sleep(TICK)
    seconds = time.perf_counter() - started
    worker_cpu = sum(cpu_of(c.pid or 0) for c in children) - cpu_before
    sqs_cpu = server_cpu(server) - sqs_before
    backends_after = counters.backends()
    _, store_cpu_after = counters.read()
    stop.set()
    reports = [out.get(timeout=60) for _ in children]
    for child in children:
        child.join(30)
    time.sleep(0.5)  # the backends' statistics reach pg_stat_database as they exit
    trips_after, _ = counters.read()
    calls: Counter[str] = Counter()
    for report in reports:
        calls.update(report["calls"])
        calls.update({f"store.{k}": v for k, v in report["store"].items()})
    store_cpu = store_cpu_after - store_cpu_before
    if backends_after:
        store_cpu = sum(cpu - backends_before.get(pid, 0.0) for pid, cpu in backends_after.items())
    record_calls = sum(int(r["record_calls"]) for r in reports)
    return (
        seconds, worker_cpu, sqs_cpu, store_cpu, trips_after - trips_before, calls, record_calls
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="messages per drain")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--stores", nargs="+", default=["redis", "postgres"])
    opts = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if "postgres" in opts.stores:
        ensure_pg_database()
    server = SqsServer(free_port(), Path(tempfile.mkdtemp()) / "ministack.log")
    server.start()
    client = server.client()
    own_redis = OwnRedis()
    redis_url = own_redis.__enter__()
    runs: list[Run] = []
    try:
        for round_no in range(1, opts.rounds + 1):
            for store in opts.stores:
                store_url = redis_url if store == "redis" else PG_URL
                counters: RedisCounters | PgCounters = (
                    RedisCounters(redis_url) if store == "redis" else PgCounters()
                )
                try:
                    for procs in opts.procs:
                        url = fill(server, client, opts.n)
                        raw = drain_raw(server, client, url, opts.n)
                        client.delete_queue(QueueUrl=url)
                        url = fill(server, client, opts.n)
                        measured = drain_processes(
                            server, url, opts.n, store, store_url, procs, counters
                        )
                        client.delete_queue(QueueUrl=url)
                        seconds, wcpu, scpu, stcpu, trips, calls, record_calls = measured
                        run = Run(
                            store, procs, seconds, raw.seconds, wcpu, scpu, stcpu, trips,
                            calls, record_calls,
                        )  # fmt: skip
                        runs.append(run)
                        store_calls = sum(v for k, v in calls.items() if k.startswith("store."))
                        print(
                            f"round {round_no}: {store}, {procs} process(es): "
                            f"{opts.n / seconds:6.0f} msg/s ({raw.seconds / seconds:.2f}x raw "
                            f"{opts.n / raw.seconds:.0f}/s); store calls per intent "
                            f"{store_calls / opts.n:.2f}, server-side operations "
                            f"{trips / opts.n:.2f}; CPU ms/msg workers "
                            f"{wcpu / opts.n * 1000:.2f}, SQS {scpu / opts.n * 1000:.2f}, "
                            f"store {stcpu / opts.n * 1000:.3f}",
                            flush=True,
                        )
                finally:
                    counters.close()
    finally:
        client.close()
        server.stop()
        own_redis.__exit__(None, None, None)
    report(runs, opts)


def report(runs: list[Run], opts: argparse.Namespace) -> None:
    n = opts.n
    rows = []
    for store in opts.stores:
        for procs in opts.procs:
            mine = [r for r in runs if r.store == store and r.procs == procs]
            if not mine:
                continue
            calls: Counter[str] = Counter()
            for r in mine:
                calls.update(r.calls)

            def med(values: list[float]) -> float:
                return statistics.median(values)

            rows.append(
                {
                    "store": store,
                    "processes": procs,
                    "msgs_per_s": round(med([n / r.seconds for r in mine]), 1),
                    "raw_msgs_per_s": round(med([n / r.raw_seconds for r in mine]), 1),
                    "ratio_to_raw": round(med([r.raw_seconds / r.seconds for r in mine]), 3),
                    "worker_cpu_ms_per_msg": round(med([r.worker_cpu / n * 1000 for r in mine]), 3),
                    "sqs_cpu_ms_per_msg": round(med([r.sqs_cpu / n * 1000 for r in mine]), 3),
                    "store_cpu_ms_per_msg": round(med([r.store_cpu / n * 1000 for r in mine]), 3),
                    "store_calls_per_msg": {
                        k.removeprefix("store."): round(v / (n * len(mine)), 3)
                        for k, v in sorted(calls.items())
                        if k.startswith("store.")
                    },
                    "store_server_ops_per_msg": round(med([r.round_trips / n for r in mine]), 3),
                    "completions_per_store_call": round(
                        med([n / r.record_calls for r in mine if r.record_calls]) or 0.0, 2
                    )
                    if any(r.record_calls for r in mine)
                    else None,
                    "sqs_calls_per_10_msgs": {
                        k: round(v / (n * len(mine)) * 10, 2)
                        for k, v in sorted(calls.items())
                        if not k.startswith("store.")
                    },
                }
            )
    load = os.getloadavg()[0]
    machine = (
        f"{os.cpu_count()} cores, {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}; ministack, Redis and PostgreSQL on the same machine"
    )
    lines = [
        f"Machine: {machine}; 1-minute load average {load:.1f} at the end. {n} no-op intents "
        f"per drain, {opts.rounds} rounds, medians; each drain paired with a raw boto3 drain "
        "(one client) just before it.",
        "",
        "| store | worker processes | msg/s | vs raw boto3 | CPU ms/msg: workers | SQS server "
        "| store server | store calls (round trips) per intent | store server operations per "
        "intent | SQS calls per 10 msgs |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for row in rows:
        calls = ", ".join(f"{k} {v:.2f}" for k, v in row["sqs_calls_per_10_msgs"].items())
        store_calls = ", ".join(
            f"{k} {v:.2f}" for k, v in row["store_calls_per_msg"].items() if v >= 0.005
        )
        lines.append(
            f"| {row['store']} | {row['processes']} | {row['msgs_per_s']:.0f} "
            f"| {row['ratio_to_raw']:.2f}x | {row['worker_cpu_ms_per_msg']:.2f} "
            f"| {row['sqs_cpu_ms_per_msg']:.2f} | {row['store_cpu_ms_per_msg']:.3f} "
            f"| {sum(row['store_calls_per_msg'].values()):.2f} ({store_calls}) "
            f"| {row['store_server_ops_per_msg']:.2f} | {calls} |"
        )
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    results = {
        "machine": machine,
        "load_average_at_end": round(load, 2),
        "n": n,
        "rounds": opts.rounds,
        "concurrency_per_process": CONCURRENCY,
        "results": rows,
    }
    (RESULTS / "scaling.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "scaling.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
