"""End-to-end messages per second through ``SqsWorker`` against a raw boto3 drain loop.

Both drain the same backlog of no-op intents from the same local SQS server (ministack,
started here on a free port) in the same run, rounds alternating so drift hits both alike:

- raw: one boto3 client, ``receive_message`` (10) then ``delete_message_batch``, in a loop;
- worker: ``SqsWorker`` with the Redis store, then with the PostgreSQL store: parse,
  claim the batch in one store call, run the no-op tool, record the result, batch-delete.

The ratio worker/raw is what intentq costs over the broker alone (target >= 0.9x). Keep
backlogs to a few thousand: ministack's receive scans its whole queue. Writes
bench/results/sqs.{json,md}.

    python bench/sqs.py [--n 3000] [--rounds 3] [--concurrency 8 20]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intentq import Producer, Registry, ToolContext
from intentq.config import Settings
from intentq.consumers.sqs import SqsWorker
from intentq.dedup import open_store
from intentq.dlq.memory import MemoryDeadLetterStore
from tests.support.net import free_port
from tests.support.services import SqsServer

RESULTS = Path(__file__).resolve().parent / "results"
REDIS_URL = "redis://127.0.0.1:6379/0"
PG_ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"
PG_DB = "intentq_bench"
PG_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"


def registry() -> Registry:
    tools = Registry()

    @tools.tool("noop")
    def noop(args: dict[str, Any], ctx: ToolContext) -> None:
        return None

    return tools


def ensure_pg_database() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DB,)).fetchone():
            conn.execute(f'CREATE DATABASE "{PG_DB}"')


def fill(server: SqsServer, client: Any, n: int) -> str:
    """A fresh queue holding ``n`` no-op intents."""
    url = server.new_queue(f"bench-{uuid.uuid4().hex[:8]}")
    settings = Settings(transport="sqs", sqs_queue=url, sqs_endpoint_url=server.endpoint_url)
    with Producer(settings, sqs_client=client) as producer:
        for start in range(0, n, 500):
            producer.enqueue_many([("noop", {"i": i}) for i in range(start, min(n, start + 500))])
    return url


def drain_raw(client: Any, url: str, n: int) -> float:
    """Seconds for a plain receive + delete_batch loop to take ``n`` messages."""
    done = 0
    started = time.perf_counter()
    while done < n:
        messages = client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=60
        ).get("Messages", [])
        if not messages:
            continue
        client.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
        done += len(messages)
    return time.perf_counter() - started


def drain_worker(server: SqsServer, url: str, n: int, store_url: str, concurrency: int) -> float:
    """Seconds for an ``SqsWorker`` to run and delete ``n`` messages."""
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
    with SqsWorker(settings, registry(), store=store, dlq=MemoryDeadLetterStore()) as worker:
        thread = threading.Thread(target=worker.run, daemon=True)
        started = time.perf_counter()
        thread.start()
        while worker.settle_stats.deleted < n:
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        worker.stop()
        thread.join()
    store.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="messages per drain")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 20])
    opts = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    ensure_pg_database()

    server = SqsServer(free_port(), Path(tempfile.mkdtemp()) / "ministack.log")
    server.start()
    client = server.client()
    modes = [("raw", None, 0)] + [
        (f"worker+{name}", url, c)
        for name, url in (("redis", REDIS_URL), ("postgres", PG_URL))
        for c in opts.concurrency
    ]
    rates: dict[str, list[float]] = {f"{m}/{c}" if c else m: [] for m, _, c in modes}
    try:
        for round_no in range(opts.rounds):
            for mode, store_url, concurrency in modes:
                url = fill(server, client, opts.n)
                if store_url is None:
                    seconds = drain_raw(client, url, opts.n)
                    label = mode
                else:
                    seconds = drain_worker(server, url, opts.n, store_url, concurrency)
                    label = f"{mode}/{concurrency}"
                client.delete_queue(QueueUrl=url)
                rates[label].append(opts.n / seconds)
                print(f"round {round_no + 1} {label:<22} {opts.n / seconds:8.0f} msg/s", flush=True)
    finally:
        client.close()
        server.stop()

    raw = statistics.median(rates["raw"])
    rows = []
    for label, values in rates.items():
        median = statistics.median(values)
        rows.append(
            {
                "mode": label,
                "msgs_per_s": [round(v, 1) for v in values],
                "median": round(median, 1),
                "ratio_to_raw": round(median / raw, 3),
            }
        )
    machine = (
        f"{os.cpu_count()} cores, {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}; ministack, Redis and PostgreSQL on the same machine"
    )
    results = {"machine": machine, "n": opts.n, "rounds": opts.rounds, "results": rows}
    lines = [
        f"Machine: {machine}. {opts.n} no-op intents per drain, median of {opts.rounds} rounds.",
        "",
        "| drain (store/concurrency) | msg/s | vs raw boto3 |",
        "| --- | ---: | ---: |",
    ]
    for row in rows:
        lines.append(f"| {row['mode']} | {row['median']:.0f} | {row['ratio_to_raw']:.2f}x |")
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sqs.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "sqs.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
