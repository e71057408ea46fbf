"""The transactional outbox measured: relay throughput against ``Producer.enqueue_many``, and
the lag from commit to send under a steady write rate.

``python -m bench.outbox [--intents 3000] [--rate 500] [--seconds 10] [--writers 4]``

Needs PostgreSQL on 127.0.0.1:5432 (postgres, trust) and starts a local SQS server
(ministack, as the tests do). Both runs use fresh tables and queues.

1. Throughput: the same N intents sent by ``Producer.enqueue_many`` straight to SQS, and
   written to the outbox (not timed) then sent by one ``Relay`` draining the table.
2. Lag: ``--writers`` processes each commit one intent per transaction (with a row of the
   application's) at ``--rate`` intents/s in all, while one relay runs with LISTEN/NOTIFY;
   lag is ``sent_at`` (marked right after the broker took it) minus the writer's clock
   just after its commit.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/intentq_test"


def settings_for(table: str, queue_url: str, endpoint: str) -> Any:
    from intentq.config.settings import Settings

    return Settings(
        transport="sqs", sqs_queue=queue_url, sqs_endpoint_url=endpoint, outbox_url=PG,
        outbox_table=table, tracing=False, dedup_url="memory://", dlq_url="memory://",
        outbox_poll_interval=1.0,
    )  # fmt: skip


def create_table(settings: Any) -> None:
    from intentq.connections import open_outbox_for
    from intentq.migrations import upgrade

    db = open_outbox_for(settings)
    upgrade(db.schema_target)
    db.close()


def drop_table(table: str) -> None:
    engine = sa.create_engine(PG)
    with engine.begin() as conn:
        for name in (table, f"{table}_relay", f"{table}_version", f"{table}_app"):
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))
        conn.execute(sa.text(f'DROP FUNCTION IF EXISTS "{table}_notify"() CASCADE'))
    engine.dispose()


def items(count: int) -> list[tuple[str, dict[str, int], str]]:
    run = uuid.uuid4().hex[:8]
    return [("book_slot", {"n": i}, f"{run}-{i}") for i in range(count)]


# -- 1. throughput ----------------------------------------------------------------------------


def throughput(server: Any, count: int) -> dict[str, Any]:
    from intentq.outbox import Outbox, Relay
    from intentq.producer import Producer

    client = server.client()
    out: dict[str, Any] = {"intents": count}
    direct_q = server.new_queue()
    table = f"bench_outbox_{uuid.uuid4().hex[:8]}"
    relay_q = server.new_queue()
    try:
        settings = settings_for(table, direct_q, server.endpoint_url)
        with Producer(settings) as producer:
            producer.enqueue_many(items(20))  # warm: client, queue URL
            client.purge_queue(QueueUrl=direct_q)
            started = time.perf_counter()
            producer.enqueue_many(items(count))
            out["enqueue_many_per_s"] = count / (time.perf_counter() - started)
        settings = settings_for(table, relay_q, server.endpoint_url)
        create_table(settings)
        engine = sa.create_engine(PG)
        outbox = Outbox(settings)
        with engine.begin() as conn:
            outbox.add_many(conn, items(count))
        engine.dispose()
        with Relay(settings) as relay:
            relay.sender.send([])  # nothing: the client is made on first use
            started = time.perf_counter()
            sent = relay.drain().sent
            out["relay_per_s"] = sent / (time.perf_counter() - started)
        out["ratio"] = out["relay_per_s"] / out["enqueue_many_per_s"]
    finally:
        drop_table(table)
        for url in (direct_q, relay_q):
            client.delete_queue(QueueUrl=url)
        client.close()
    return out


# -- 2. lag -----------------------------------------------------------------------------------


def writer(settings_json: str, rate: float, seconds: float, out_path: str, start_at: float) -> None:
    """One agent process: one intent per transaction at ``rate``/s; the commit times to a file."""
    from intentq.config.settings import Settings
    from intentq.outbox import Outbox

    settings = Settings(**json.loads(settings_json))
    engine = sa.create_engine(PG)
    app = sa.Table(
        f"{settings.outbox_table}_app", sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True), sa.Column("key", sa.Text),
    )  # fmt: skip
    outbox = Outbox(settings)
    committed: dict[str, float] = {}
    time.sleep(max(0.0, start_at - time.time()))
    begin = time.monotonic()
    n = 0
    while time.monotonic() - begin < seconds:
        due = begin + n / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        key = f"{os.getpid()}-{n}"
        with engine.begin() as conn:
            conn.execute(sa.insert(app).values(key=key))
            intent = outbox.add(conn, "book_slot", {"n": n}, key=key)
        committed[intent.intent_id] = time.time()
        n += 1
    engine.dispose()
    Path(out_path).write_text(json.dumps(committed))


def lag(server: Any, rate: float, seconds: float, writers: int) -> dict[str, Any]:
    from intentq.outbox import Relay

    table = f"bench_outbox_{uuid.uuid4().hex[:8]}"
    queue = server.new_queue()
    settings = settings_for(table, queue, server.endpoint_url)
    create_table(settings)
    engine = sa.create_engine(PG)
    sa.Table(f"{table}_app", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("key", sa.Text)).create(engine)  # fmt: skip
    engine.dispose()
    folder = Path(tempfile.mkdtemp(prefix="bench-outbox-"))
    fork = multiprocessing.get_context("fork")
    start_at = time.time() + 2.0
    procs = [
        fork.Process(target=writer, args=(settings.model_dump_json(), rate / writers, seconds,
                                          str(folder / f"w{i}.json"), start_at))
        for i in range(writers)
    ]  # fmt: skip
    for proc in procs:
        proc.start()
    stop = threading.Event()
    relay = Relay(settings)
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    try:
        for proc in procs:
            proc.join()
        committed: dict[str, float] = {}
        for i in range(writers):
            committed.update(json.loads((folder / f"w{i}.json").read_text()))
        c = relay.db.table.c
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with relay.db.engine.connect() as conn:
                left = conn.execute(sa.select(sa.func.count()).where(c.state == "pending")).scalar()
            if not left:
                break
            time.sleep(0.2)
        with relay.db.engine.connect() as conn:
            sent = dict(conn.execute(sa.select(c.intent_id, c.sent_at)).all())
    finally:
        stop.set()
        thread.join(15)
        relay.close()
        drop_table(table)
        client = server.client()
        client.delete_queue(QueueUrl=queue)
        client.close()
    lags = sorted(sent[i] - t for i, t in committed.items() if sent.get(i) is not None)
    return {
        "writers": writers,
        "rate_asked": rate,
        "rate_written": len(committed) / seconds,
        "intents": len(committed),
        "sent": len(lags),
        "p50_ms": 1000 * statistics.median(lags),
        "p99_ms": 1000 * lags[int(0.99 * (len(lags) - 1))],
        "max_ms": 1000 * lags[-1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outbox", description=__doc__)
    parser.add_argument("--intents", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", type=int, default=4)
    o = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.net import free_port
    from tests.support.services import SqsServer

    server = SqsServer(free_port(), Path(tempfile.mkdtemp()) / "ministack.log")
    server.start()
    try:
        report = {
            "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "throughput": throughput(server, o.intents),
            "lag": lag(server, o.rate, o.seconds, o.writers),
        }
    finally:
        server.stop()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
