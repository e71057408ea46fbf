"""End-to-end messages per second through ``SqsWorker`` against a raw boto3 drain loop.

Both drain the same backlog of no-op intents from the same local SQS server (ministack,
started here on a free port) in the same run; every worker drain is paired with a raw drain
just before it, so a change in the machine's load hits both sides of a ratio alike:

- raw: one boto3 client, ``receive_message`` (10) then ``delete_message_batch``, in a loop;
- worker: ``SqsWorker`` with the Redis store, then with the PostgreSQL store: parse,
  claim the batch in one store call, run the no-op tool, record the batch's results in one
  store call, batch-delete;
- ``postgres-tx``: the PostgreSQL store with a transactional no-op tool, each completing in
  its own transaction (one by one, as transactional tools do).

The ratio worker/raw is what intentq costs over the broker alone (target >= 0.9x). CPU per
message, of this process and of the server, is reported too: unlike rates, it hardly moves
with the machine's load. Keep backlogs to a few thousand: ministack's receive scans its
whole queue. Writes bench/results/sqs.{json,md}.

    python bench/sqs.py [--n 3000] [--rounds 3] [--concurrency 8 20]
                        [--stores redis postgres postgres-tx]

``--profile FILE`` runs cProfile, timing each thread's CPU, in every thread of each worker
drain (the receive loop, the pool, the settler, the heartbeat) and writes the merged figures
to FILE (pstats format), with the SQS calls the worker made; cProfile's own cost inflates
the CPU figures.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import platform
import pstats
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intentq import Producer, Registry, ToolContext
from intentq.config import Settings
from intentq.consumers.sqs.service import SqsWorker
from intentq.dedup import open_store
from intentq.dlq.memory import MemoryDeadLetterStore
from tests.support.net import free_port
from tests.support.services import SqsServer

RESULTS = Path(__file__).resolve().parent / "results"
REDIS_URL = "redis://127.0.0.1:6379/0"
PG_ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"
PG_DB = "intentq_bench_workers"  # its own: other benchmarks drop and fill theirs
PG_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"


def registry() -> Registry:
    tools = Registry()

    @tools.tool("noop")
    def noop(args: dict[str, Any], ctx: ToolContext) -> None:
        return None

    @tools.tool("noop_tx", transactional=True)
    def noop_tx(args: dict[str, Any], ctx: ToolContext) -> None:
        return None  # writes nothing of its own: what is left is the transaction's cost

    return tools


# Which tool each store's drains run, and how the table names them.
TOOLS = {"redis": "noop", "postgres": "noop", "postgres-tx": "noop_tx"}
LABELS = {
    "redis": "Redis store",
    "postgres": "PostgreSQL store",
    "postgres-tx": "PostgreSQL store, transactional tool",
}


def ensure_pg_database() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DB,)).fetchone():
            conn.execute(f'CREATE DATABASE "{PG_DB}"')


def fill(server: SqsServer, client: Any, n: int, tool: str = "noop") -> str:
    """A fresh queue holding ``n`` no-op intents."""
    url = server.new_queue(f"bench-{uuid.uuid4().hex[:8]}")
    settings = Settings(transport="sqs", sqs_queue=url, sqs_endpoint_url=server.endpoint_url)
    with Producer(settings, sqs_client=client) as producer:
        for start in range(0, n, 500):
            producer.enqueue_many([(tool, {"i": i}) for i in range(start, min(n, start + 500))])
    return url


@dataclass(frozen=True)
class Drain:
    """One drain: wall seconds, and CPU seconds spent by this process and by the server."""

    seconds: float
    client_cpu: float
    server_cpu: float


def server_cpu(server: SqsServer) -> float:
    """CPU seconds the server process has used so far (user + system, all its threads)."""
    assert server.proc is not None
    fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def measured(server: SqsServer, out: list[Drain]) -> Iterator[None]:
    wall, cpu, srv = time.perf_counter(), time.process_time(), server_cpu(server)
    yield
    out.append(
        Drain(time.perf_counter() - wall, time.process_time() - cpu, server_cpu(server) - srv)
    )


class ThreadProfiles:
    """cProfile in every thread started while ``active``, merged afterwards."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self.threads: list[threading.Thread] = []
        self.calls: Counter[str] = Counter()

    @contextmanager
    def active(self) -> Iterator[None]:
        original = threading.Thread.run
        profiles, threads = self.profiles, self.threads

        def run(self: threading.Thread) -> None:
            profile = cProfile.Profile(time.thread_time)  # CPU, not waiting
            profiles.append(profile)
            threads.append(self)
            profile.enable()
            try:
                original(self)
            finally:
                profile.disable()

        threading.Thread.run = run  # type: ignore[method-assign]
        try:
            yield
        finally:
            threading.Thread.run = original  # type: ignore[method-assign]

    def count_calls(self, client: Any) -> None:
        def count(event_name: str, **kwargs: Any) -> None:
            self.calls[event_name.rsplit(".", 1)[-1]] += 1

        client.meta.events.register("before-call.sqs", count)

    def dump(self, path: str, n: int) -> None:
        for thread in self.threads:
            thread.join(5)
        stats = pstats.Stats(*self.profiles)
        stats.dump_stats(path)
        calls = ", ".join(f"{name} {count / n * 10:.2f}" for name, count in self.calls.items())
        print(f"{n} messages; SQS calls per 10 messages: {calls}")
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(40)


def drain_raw(server: SqsServer, client: Any, url: str, n: int) -> Drain:
    """A plain receive + delete_batch loop taking ``n`` messages."""
    out: list[Drain] = []
    done = 0
    with measured(server, out):
        while done < n:
            messages = client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=60
            ).get("Messages", [])
            if not messages:
                continue
            client.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
            done += len(messages)
    return out[0]


def drain_worker(
    server: SqsServer,
    url: str,
    n: int,
    store_url: str,
    concurrency: int,
    profiles: ThreadProfiles | None = None,
) -> Drain:
    """An ``SqsWorker`` running and deleting ``n`` messages (set-up not counted)."""
    settings = Settings(
        transport="sqs",
        sqs_queue=url,
        sqs_endpoint_url=server.endpoint_url,
        sqs_wait_seconds=1,
        concurrency=concurrency,
        lease=60,
    )
    store = open_store(store_url, prefix=f"bench-{uuid.uuid4().hex[:8]}")
    store.create_schema()
    out: list[Drain] = []
    with SqsWorker(settings, registry(), store=store, dlq=MemoryDeadLetterStore()) as worker:
        worker.queue  # noqa: B018 - look the queue up before the clock starts
        if profiles is not None:
            profiles.count_calls(worker.client)
        thread = threading.Thread(target=worker.run, daemon=True)
        profiling = profiles.active() if profiles is not None else nullcontext()
        with measured(server, out), profiling:
            thread.start()
            while worker.settle_stats.deleted < n:
                time.sleep(0.005)
        worker.stop()
        thread.join()
    store.close()
    return out[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="messages per drain")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 20])
    parser.add_argument(
        "--stores", nargs="+", default=["redis", "postgres", "postgres-tx"], choices=list(TOOLS)
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile the worker drains")
    opts = parser.parse_args()
    profiles = ThreadProfiles() if opts.profile else None
    logging.basicConfig(level=logging.WARNING)
    store_urls = {"redis": REDIS_URL, "postgres": PG_URL, "postgres-tx": PG_URL}
    if any(store.startswith("postgres") for store in opts.stores):
        ensure_pg_database()

    server = SqsServer(free_port(), Path(tempfile.mkdtemp()) / "ministack.log")
    server.start()
    client = server.client()
    modes = [(store, c) for store in opts.stores for c in opts.concurrency]
    drains: dict[str, list[Drain]] = {"raw": []}
    ratios: dict[str, list[float]] = {}

    def drain(store: str | None, concurrency: int) -> Drain:
        url = fill(server, client, opts.n, TOOLS[store or "redis"])
        try:
            if store is None:
                return drain_raw(server, client, url, opts.n)
            return drain_worker(server, url, opts.n, store_urls[store], concurrency, profiles)
        finally:
            client.delete_queue(QueueUrl=url)

    try:
        for round_no in range(1, opts.rounds + 1):
            for store, concurrency in modes:
                # Each worker drain is paired with a raw drain just before it, so a change
                # in the machine's load hits both sides of a ratio alike.
                raw_drain = drain(None, 0)
                worker_drain = drain(store, concurrency)
                label = f"worker, {LABELS[store]}, concurrency {concurrency}"
                drains["raw"].append(raw_drain)
                drains.setdefault(label, []).append(worker_drain)
                raw, rate = opts.n / raw_drain.seconds, opts.n / worker_drain.seconds
                ratios.setdefault(label, []).append(rate / raw)
                print(
                    f"round {round_no}: raw {raw:6.0f} msg/s, {label}: {rate:6.0f} msg/s "
                    f"({rate / raw:.2f}x)",
                    flush=True,
                )
    finally:
        client.close()
        server.stop()
    if profiles is not None:
        profiles.dump(opts.profile, opts.n * opts.rounds * len(modes))

    per_ms = 1000 / opts.n
    rows = [
        {
            "mode": label,
            "msgs_per_s": [round(opts.n / d.seconds, 1) for d in runs],
            "median": round(statistics.median(opts.n / d.seconds for d in runs), 1),
            "ratio_to_raw": [round(r, 3) for r in ratios.get(label, [])],
            "median_ratio": round(statistics.median(ratios[label]), 3) if label in ratios else 1.0,
            "client_cpu_ms_per_msg": round(
                statistics.median(d.client_cpu for d in runs) * per_ms, 3
            ),
            "server_cpu_ms_per_msg": round(
                statistics.median(d.server_cpu for d in runs) * per_ms, 3
            ),
        }
        for label, runs in drains.items()
    ]
    load = os.getloadavg()[0]
    machine = (
        f"{os.cpu_count()} cores, {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}; ministack, Redis and PostgreSQL on the same machine"
    )
    results = {
        "machine": machine,
        "load_average_at_end": round(load, 2),
        "n": opts.n,
        "rounds": opts.rounds,
        "results": rows,
    }
    lines = [
        f"Machine: {machine}; 1-minute load average {load:.1f} at the end. {opts.n} no-op "
        f"intents per drain, {opts.rounds} rounds; each worker drain paired with a raw drain "
        "just before it, medians shown.",
        "",
        "| drain | msg/s | vs raw boto3 (median of pairs) | CPU ms/msg here | CPU ms/msg server |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['mode']} | {row['median']:.0f} | {row['median_ratio']:.2f}x "
            f"| {row['client_cpu_ms_per_msg']:.2f} | {row['server_cpu_ms_per_msg']:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sqs.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "sqs.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
