"""Soak: one SQS worker process runs 100,000 intents; its memory is sampled as it goes.

The worker (Redis store, a no-op tool, concurrency 8) consumes a queue on a local ministack
started here; the feeder keeps the backlog at a few thousand (ministack's receive scans the
whole queue, so a deeper backlog would measure ministack). Every completed intent is one
record in a Redis server of the run's own, so ``DBSIZE`` counts the work done. RSS, peak
RSS, threads and open file descriptors of the worker are read from /proc at the start,
every 10,000 intents and at the end. Writes bench/results/soak.json.

    python bench/soak.py [--n 100000] [--every 10000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: the repository root instead of bench/, whose celery.py and sqs.py
    # would shadow the libraries of those names.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.chaos.world import RedisServer
from intentq import Producer, Registry, ToolContext
from intentq.config import Settings
from tests.support.net import free_port, wait_until
from tests.support.services import SqsServer

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
CONFIG_ENV = "SOAK_WORKER"
READY = b"consuming "
BACKLOG = 3000  # messages kept waiting, at most
CHUNK = 1000


def registry() -> Registry:
    tools = Registry()

    @tools.tool("noop")
    def noop(args: dict[str, Any], ctx: ToolContext) -> None:
        return None

    return tools


def worker_main() -> int:
    """The worker process: ``python bench/soak.py worker`` with ``SOAK_WORKER`` (JSON)."""
    from intentq.consumers.sqs.service import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return run_worker(Settings(**json.loads(os.environ[CONFIG_ENV])), registry())


def sample(pid: int) -> dict[str, int]:
    """RSS and peak RSS (KiB), threads and open descriptors of ``pid``, from /proc."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "Threads"):
            fields[name] = int(value.split()[0])
    return {
        "rss_kib": fields["VmRSS"],
        "peak_rss_kib": fields["VmHWM"],
        "threads": fields["Threads"],
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def backlog(client: Any, url: str) -> int:
    attrs = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def soak(n: int, every: int, concurrency: int, workdir: Path) -> dict[str, Any]:
    import redis

    store = RedisServer(workdir, durable=False, name="store")
    server = SqsServer(free_port(), workdir / "ministack.log")
    store.start()
    server.start()
    client = server.client()
    counter = redis.Redis.from_url(store.url(0))
    proc: subprocess.Popen[bytes] | None = None
    try:
        url = client.create_queue(QueueName=f"soak-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        settings = Settings(
            transport="sqs", sqs_queue=url, sqs_endpoint_url=server.endpoint_url,
            sqs_wait_seconds=1, concurrency=concurrency, lease=60, dedup_url=store.url(0),
            key_prefix="soak", dlq_url="memory://",
        )  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTQ_")}
        env[CONFIG_ENV] = settings.model_dump_json()
        env["PYTHONPATH"] = str(ROOT)
        log_path = workdir / "worker.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "worker"],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(lambda: READY in log_path.read_bytes(), timeout=120, what="the worker")
        samples = [{"done": 0, "seconds": 0.0, **sample(proc.pid)}]
        print(f"{0:>7} done  {samples[0]['rss_kib'] / 1024:7.1f} MiB", flush=True)
        sent, next_mark, started = 0, every, time.monotonic()
        with Producer(
            Settings(transport="sqs", sqs_endpoint_url=server.endpoint_url, sqs_queue=url),
            sqs_client=client,
        ) as producer:
            while True:
                done = int(counter.dbsize())
                if done >= next_mark or done >= n:
                    mark = min(next_mark, n)
                    samples.append(
                        {"done": done, "seconds": round(time.monotonic() - started, 1),
                         **sample(proc.pid)}
                    )  # fmt: skip
                    print(
                        f"{done:>7} done  {samples[-1]['rss_kib'] / 1024:7.1f} MiB  "
                        f"{done / (time.monotonic() - started):6.0f} msg/s",
                        flush=True,
                    )
                    next_mark = mark + every
                if done >= n:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"the worker exited with {proc.returncode}; {log_path}")
                if sent < n and backlog(client, url) < BACKLOG - CHUNK:
                    count = min(CHUNK, n - sent)
                    producer.enqueue_many([("noop", {"i": sent + i}) for i in range(count)])
                    sent += count
                else:
                    time.sleep(0.2)
        elapsed = time.monotonic() - started
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        return {
            "n": n,
            "seconds": round(elapsed, 1),
            "msgs_per_s": round(n / elapsed, 1),
            "concurrency": concurrency,
            "exit_code": code,
            "samples": samples,
        }
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        counter.close()
        client.close()
        server.stop()
        store.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("role", nargs="?", default="run", choices=["run", "worker"])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    opts = parser.parse_args()
    if opts.role == "worker":
        return worker_main()
    workdir = Path(tempfile.mkdtemp(prefix="intentq-soak-"))
    result = soak(opts.n, opts.every, opts.concurrency, workdir)
    first, last = result["samples"][0], result["samples"][-1]
    after_warmup = next((s for s in result["samples"] if s["done"] >= opts.every), first)
    result.update(
        machine=f"{os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}; ministack, Redis on the same machine",
        transport="sqs",
        store="redis",
        rss_start_mib=round(first["rss_kib"] / 1024, 1),
        rss_end_mib=round(last["rss_kib"] / 1024, 1),
        rss_growth_after_first_interval_mib=round(
            (last["rss_kib"] - after_warmup["rss_kib"]) / 1024, 1
        ),
    )
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{opts.n} intents in {result['seconds']} s ({result['msgs_per_s']} msg/s); RSS "
        f"{result['rss_start_mib']} -> {result['rss_end_mib']} MiB; worker exit "
        f"{result['exit_code']}; {opts.out}"
    )
    return 0 if result["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
