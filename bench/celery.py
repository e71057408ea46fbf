"""Tasks per second through a real Celery worker: ``IdempotentTask`` against a plain task.

One worker (prefork) on one Redis broker, one run. Each round
fills the queue with N messages while the worker is not consuming it, then has the worker
consume the queue (``add_consumer``) and times it until the queue is empty and nothing is
left unacknowledged. Rounds alternate between a plain Celery task and an intentq no-op tool
(a new key each: a claim and a completion in the Redis store per task), so load on the
machine hits both alike. Both run on the same app (JSON, late acks) and the same worker
settings: with 2 pool processes (Celery's default on 2 cores) and with 8 (intentq's default
for Celery), each first with intentq's prefetch multiplier (1), then with Celery's (4);
``--concurrency`` and ``--prefetch`` pick others.

A third kind of round runs a plain task that spins for ``--work-us`` microseconds (100 by
default, 0 leaves it out): a no-op finishes in a pool process before the worker's main
process has gone back to waiting, a task that takes a little longer does not, and on a
virtual machine that alone moves the rate a lot. It shows what a plain task that does
anything at all runs at, next to the no-op.

Wall-clock rates swing with whatever else the machine runs; the CPU the worker's processes
spend per task (from /proc, Linux) does much less, so it is reported next to them. Besides
the ratio of the medians, the median of the per-round ratios (each intentq round against the
plain round just before it) is reported: load that drifts over a run moves both sides of a
pair alike.

``--store postgres`` keeps the dedup records in the local PostgreSQL (a database of the
benchmark's own) instead of Redis: each task then claims and completes with a statement of its
own (a Celery task is one message: there is no batch to record together).

Prints the medians and their ratios; writes bench/results/celery.json
(``celery-postgres.json`` with ``--store postgres``).

    .venv/bin/python -m bench.celery [--n 2000] [--rounds 5] [--concurrency 2 8] [--prefetch 1 4]
                                     [--store redis|postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a file: this directory must not shadow the celery package, and intentq must
    # be importable from the checkout.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path.insert(0, str(here.parent))

import celery
import kombu
import redis

from intentq import Registry, ToolContext
from intentq.config import Settings
from intentq.consumers.celery import create_app, publish, run_worker
from intentq.dedup import open_store
from intentq.dlq import open_dlq
from intentq.intent import Intent

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
REDIS = "redis://127.0.0.1:6379"
BROKER_DB, STORE_DB = 14, 15
PLAIN = "bench.plain_noop"
BUSY = "bench.plain_busy"
IDLE_QUEUE = "bench-idle"
# intentq's default (1: a long tool holds back no other message), then Celery's own (4).
PREFETCH = [1, 4]
# Celery's default pool size on this kind of machine (one per core), then intentq's.
CONCURRENCY = [2, 8]

registry = Registry()


@registry.tool("noop")
def noop(args: dict[str, Any], ctx: ToolContext) -> None:
    """The side effect that costs nothing: what is left is intentq's own cost."""


def define_plain(app: Any) -> None:
    @app.task(name=PLAIN, shared=False)
    def plain_noop() -> None:
        """A plain Celery task doing nothing."""

    @app.task(name=BUSY, shared=False)
    def plain_busy(work_us: float) -> None:
        """A plain Celery task that keeps its process busy for ``work_us`` microseconds."""
        end = time.perf_counter() + work_us / 1e6
        while time.perf_counter() < end:
            pass


# Where the dedup records go: ``--store``.
STORES = {
    "redis": f"{REDIS}/{STORE_DB}",
    "postgres": "postgresql+psycopg://postgres@127.0.0.1:5432/intentq_bench_workers",
}


def settings_for(prefix: str, tmp: Path, store: str = "redis") -> Settings:
    return Settings(
        broker_url=f"{REDIS}/{BROKER_DB}",
        dedup_url=STORES[store],
        dlq_url=f"sqlite:///{tmp / 'dlq.db'}",
        key_prefix=prefix,
        celery_queue=IDLE_QUEUE,
    )


def worker_main(config: dict[str, Any]) -> int:
    settings = Settings(**config["settings"])
    app = create_app(settings, registry)
    app.conf.worker_prefetch_multiplier = config["prefetch"]
    define_plain(app)
    return run_worker(
        settings,
        registry,
        concurrency=config["concurrency"],
        app=app,
        hostname=config["hostname"],
        loglevel="WARNING",
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (Linux ``/proc``); 0 if it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(
        self,
        n: int,
        concurrency: int,
        prefetch: int,
        tmp: Path,
        work_us: float = 0.0,
        store: str = "redis",
    ) -> None:
        self.n, self.concurrency, self.prefetch, self.tmp = n, concurrency, prefetch, tmp
        self.work_us = work_us
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}"
        self.settings = settings_for(self.prefix, tmp, store)
        self.app = create_app(self.settings, registry)
        self.broker = redis.Redis.from_url(f"{REDIS}/{BROKER_DB}")
        self.hostname = f"bench-{uuid.uuid4().hex[:6]}@localhost"
        self.proc: subprocess.Popen[bytes] | None = None

    def start_worker(self) -> None:
        config = {
            "settings": self.settings.model_dump(),
            "concurrency": self.concurrency,
            "hostname": self.hostname,
            "prefetch": self.prefetch,
        }
        log = (self.tmp / f"worker-{self.prefetch}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.celery", "--worker", json.dumps(config)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while not self.app.control.ping(destination=[self.hostname], timeout=0.5):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"the worker did not start; see {log.name}")

    def fill(self, kind: str, queue: str) -> None:
        with self.app.producer_or_acquire() as producer:
            for _ in range(self.n):
                if kind == "plain":
                    self.app.send_task(PLAIN, queue=queue, producer=producer)
                elif kind == "busy":
                    self.app.send_task(BUSY, args=[self.work_us], queue=queue, producer=producer)
                else:
                    publish(self.app, Intent.create("noop", {}), queue)

    def drained(self, queue: str) -> bool:
        return self.broker.llen(queue) == 0 and self.broker.hlen("unacked") == 0

    def cpu(self) -> tuple[float, float]:
        """CPU seconds used so far by the worker's main process and by its pool children."""
        assert self.proc is not None
        main = self.proc.pid
        children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
        return cpu_seconds(main), sum(cpu_seconds(int(child)) for child in children)

    def round(self, kind: str) -> tuple[float, float, float]:
        """Tasks per second for one queue of ``n`` messages of ``kind``, and CPU ms per task
        in the worker's main process and in its pool."""
        queue = f"{self.prefix}-{kind}-{uuid.uuid4().hex[:6]}"
        self.fill(kind, queue)
        assert self.broker.llen(queue) == self.n, "the queue did not fill"
        main_before, pool_before = self.cpu()
        started = time.perf_counter()
        self.app.control.add_consumer(queue, destination=[self.hostname], reply=True)
        while True:
            # Twice in a row: a message between the list and the unacked hash is in neither.
            if self.drained(queue):
                time.sleep(0.005)
                if self.drained(queue):
                    break
            time.sleep(0.002)
        elapsed = time.perf_counter() - started
        main_after, pool_after = self.cpu()
        self.app.control.cancel_consumer(queue, destination=[self.hostname], reply=True)
        per_task = 1000 / self.n
        return (
            self.n / elapsed,
            (main_after - main_before) * per_task,
            (pool_after - pool_before) * per_task,
        )

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
        self.app.close()
        self.broker.close()


def measure(args: argparse.Namespace, concurrency: int, prefetch: int, tmp: Path) -> dict[str, Any]:
    """Alternating rounds of each kind on one worker with these pool and prefetch sizes."""
    bench = Bench(args.n, concurrency, prefetch, tmp, args.work_us, args.store)
    kinds = ("plain", "intentq", "busy") if args.work_us > 0 else ("plain", "intentq")
    rounds: dict[str, list[tuple[float, float, float]]] = {kind: [] for kind in kinds}
    try:
        bench.start_worker()
        bench.round("plain")  # warm-up: imports, connections, the store's scripts
        bench.round("intentq")
        for _ in range(args.rounds):
            for kind in kinds:
                rate, main_ms, pool_ms = bench.round(kind)
                rounds[kind].append((rate, main_ms, pool_ms))
                print(
                    f"{concurrency} processes, prefetch {prefetch}  {kind:8} {rate:6.0f} "
                    f"tasks/s   CPU per task: "
                    f"main {main_ms:.2f} ms, pool {pool_ms:.2f} ms",
                    flush=True,
                )
    finally:
        bench.close()
    out: dict[str, Any] = {"concurrency": concurrency, "worker_prefetch_multiplier": prefetch}
    labels = {"plain": "plain", "intentq": "idempotent", "busy": "plain_busy"}
    for kind in kinds:
        label = labels[kind]
        rates, mains, pools = zip(*rounds[kind], strict=True)
        out[f"{label}_tasks_per_s"] = round(statistics.median(rates), 1)
        out[f"{label}_cpu_ms_per_task"] = {
            "main": round(statistics.median(mains), 3),
            "pool": round(statistics.median(pools), 3),
        }
        out[f"{label}_all_rounds_tasks_per_s"] = [round(r, 1) for r in rates]
    out["ratio"] = round(out["idempotent_tasks_per_s"] / out["plain_tasks_per_s"], 3)
    pairs = [i[0] / p[0] for p, i in zip(rounds["plain"], rounds["intentq"], strict=True)]
    out["paired_ratio"] = round(statistics.median(pairs), 3)
    cpu = {k: sum(out[f"{k}_cpu_ms_per_task"].values()) for k in ("plain", "idempotent")}
    out["cpu_ratio"] = round(cpu["plain"] / cpu["idempotent"], 3)
    if "busy" in rounds:
        out["plain_busy_work_us"] = args.work_us
        out["ratio_vs_busy"] = round(
            out["idempotent_tasks_per_s"] / out["plain_busy_tasks_per_s"], 3
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each kind")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=CONCURRENCY,
        help="worker pool sizes to run, each with every prefetch multiplier",
    )
    parser.add_argument(
        "--prefetch",
        type=int,
        nargs="+",
        default=PREFETCH,
        help="worker prefetch multipliers to run, each for both kinds of task",
    )
    parser.add_argument(
        "--work-us",
        type=float,
        default=100.0,
        help="microseconds of work in the third kind of plain task (0: no such rounds)",
    )
    parser.add_argument("--store", choices=list(STORES), default="redis", help="the dedup store")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sys.exit(worker_main(json.loads(args.worker)))

    broker = redis.Redis.from_url(f"{REDIS}/{BROKER_DB}")
    broker.flushdb()  # the bench's own database: no messages left unacked by an old run
    broker.close()
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="intentq-bench-celery-") as tmp:
        dlq = open_dlq(settings_for("bench", Path(tmp)).dlq_url)
        dlq.create_schema()
        dlq.close()
        if args.store == "postgres":
            from bench.sqs import ensure_pg_database

            ensure_pg_database()
            store = open_store(STORES["postgres"])
            store.create_schema()
            store.close()
        for concurrency in args.concurrency:
            for prefetch in args.prefetch:
                run = measure(args, concurrency, prefetch, Path(tmp))
                runs[f"concurrency_{concurrency}_prefetch_{prefetch}"] = run
    print()
    for run in runs.values():
        plain, idem = run["plain_tasks_per_s"], run["idempotent_tasks_per_s"]
        print(
            f"{run['concurrency']} processes, prefetch {run['worker_prefetch_multiplier']}: "
            f"plain Celery task {plain:.0f}/s, "
            f"IdempotentTask {idem:.0f}/s, ratio {run['ratio']:.2f}x "
            f"(per-round {run['paired_ratio']:.2f}x); "
            f"worker CPU per task ratio {run['cpu_ratio']:.2f}x"
        )
        if "ratio_vs_busy" in run:
            print(
                f"    plain task with {run['plain_busy_work_us']:.0f} µs of work "
                f"{run['plain_busy_tasks_per_s']:.0f}/s: IdempotentTask ratio "
                f"{run['ratio_vs_busy']:.2f}x"
            )
    result = {
        "bench": "celery",
        "broker": "redis",
        "store": args.store,
        "tool": "no-op",
        "messages_per_round": args.n,
        "rounds": args.rounds,
        "pool": "prefork",
        "runs": runs,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "versions": {"celery": celery.__version__, "kombu": kombu.__version__},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "celery.json" if args.store == "redis" else f"celery-{args.store}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
