"""What the operators' view costs: worker throughput with metrics and tracing on, against off.

Each round drains the same backlog twice, once with observation off (no ``metrics_port``,
``tracing = false``) and once on: Prometheus metrics served on a port, and OpenTelemetry
spans through the SDK (a ``TracerProvider`` with a ``BatchSpanProcessor`` and an exporter
that drops what it gets), the producer's spans included. Off and on take turns, so a change
in the machine's load hits both sides of a ratio alike. Two tools: a no-op, and one that
sleeps 1 ms (a realistic I/O-bound tool). Rates count from the first tool call to the last,
so worker start-up is left out. The worker's CPU per intent (this process, every thread)
is reported too: on a loaded machine rates move by 2x between drains, CPU hardly does.

- SQS: ``SqsWorker`` (Redis store, concurrency 8) on a local SQS server (ministack).
- Celery: a worker in this process (threads pool, concurrency 4, Redis broker and store).

    python bench/observe.py [--n 1500] [--rounds 3] [--transports sqs celery]
    python -m bench.observe ...

Writes bench/results/observe.{json,md}; target: on/off >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `tests` importable, and
    # keep this folder off the path, where bench/celery.py would shadow Celery itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from intentq import Producer, Registry, ToolContext
from intentq.config import Settings
from intentq.connections import open_store
from intentq.consumers.sqs.service import SqsWorker
from intentq.dlq.memory import MemoryDeadLetterStore
from tests.support.net import free_port
from tests.support.services import SqsServer

RESULTS = Path(__file__).resolve().parent / "results"
REDIS_URL = "redis://127.0.0.1:6379/0"
BROKER_URL = "redis://127.0.0.1:6379/9"
TOOLS = {"noop": 0.0, "io_1ms": 0.001}


class DropExporter(SpanExporter):
    """Takes every span and keeps none: the SDK's whole cost, no exporter's."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class Calls:
    """Times of the tool calls of one drain."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: list[float] = []
        self.cpu: list[float] = []  # this process's CPU time (every thread) at each call
        self.done = threading.Event()
        self.expect = 0

    def reset(self, expect: int) -> None:
        with self.lock:
            self.times, self.cpu, self.expect = [], [], expect
            self.done.clear()

    def call(self) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        with self.lock:
            self.times.append(now)
            self.cpu.append(cpu)
            if len(self.times) >= self.expect:
                self.done.set()

    def rate(self) -> float:
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])

    def cpu_us(self) -> float:
        """Worker CPU per intent (microseconds): unlike a rate, it hardly moves with the
        machine's load. The SQS server's CPU is another process's, not counted."""
        return (self.cpu[-1] - self.cpu[0]) / (len(self.cpu) - 1) * 1e6


def registry(calls: Calls) -> Registry:
    tools = Registry()
    for name, seconds in TOOLS.items():

        def tool(args: dict[str, Any], ctx: ToolContext, seconds: float = seconds) -> None:
            if seconds:
                time.sleep(seconds)
            calls.call()

        tools.tool(name)(tool)
    return tools


# What "on" turns on (--on): both by default.
ON = {"metrics", "tracing"}


def settings_for(on: bool, **values: Any) -> Settings:
    values["tracing"] = on and "tracing" in ON
    if on and "metrics" in ON:
        values.update(metrics_port=free_port(), metrics_host="127.0.0.1")
    return Settings(dedup_url=REDIS_URL, key_prefix=f"bench-{uuid.uuid4().hex[:8]}",
                    dlq_url="memory://", **values)  # fmt: skip


def fill(settings: Settings, tool: str, n: int, **producer: Any) -> None:
    with Producer(settings, **producer) as p:
        for start in range(0, n, 100):
            p.enqueue_many([(tool, {"i": i}) for i in range(start, min(n, start + 100))])


# -- SQS ---------------------------------------------------------------------------------------


def drain_sqs(server: SqsServer, calls: Calls, tool: str, n: int, on: bool) -> tuple[float, float]:
    queue = server.new_queue()
    settings = settings_for(
        on, transport="sqs", sqs_queue=queue, sqs_endpoint_url=server.endpoint_url,
        sqs_wait_seconds=1, concurrency=8,
    )  # fmt: skip
    fill(settings, tool, n)
    calls.reset(n)
    store = open_store(REDIS_URL, prefix=settings.key_prefix)
    worker = SqsWorker(settings, registry(calls), store=store, dlq=MemoryDeadLetterStore())
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        if not calls.done.wait(300):
            raise RuntimeError(f"SQS drain stalled at {len(calls.times)} of {n}")
    finally:
        worker.stop()
        thread.join(60)
        worker.close()
        store.close()
        client = server.client()
        client.delete_queue(QueueUrl=queue)
        client.close()
    return calls.rate(), calls.cpu_us()


# -- Celery ------------------------------------------------------------------------------------


def drain_celery(calls: Calls, tool: str, n: int, on: bool) -> tuple[float, float]:
    from celery.contrib.testing.worker import start_worker

    from intentq.consumers.celery import create_app

    queue = f"bench-observe-{uuid.uuid4().hex[:8]}"
    settings = settings_for(on, transport="celery", broker_url=BROKER_URL, celery_queue=queue)
    tools = registry(calls)
    app = create_app(settings, tools)
    fill(settings, tool, n, celery_app=app)
    calls.reset(n)
    try:
        with start_worker(
            app, pool="threads", concurrency=4, perform_ping_check=False, shutdown_timeout=60
        ):
            if not calls.done.wait(300):
                raise RuntimeError(f"Celery drain stalled at {len(calls.times)} of {n}")
    finally:
        app.close()
    return calls.rate(), calls.cpu_us()


# -- the run -----------------------------------------------------------------------------------


@contextmanager
def sqs_server() -> Iterator[SqsServer]:
    server = SqsServer(free_port(), RESULTS / "observe-ministack.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def run(n: int, rounds: int, transports: Sequence[str], tools: Sequence[str]) -> dict[str, Any]:
    exporter = DropExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    calls = Calls()
    results: dict[str, Any] = {}
    with sqs_server() as server:
        drains: dict[str, Callable[[str, bool], tuple[float, float]]] = {
            "sqs": lambda tool, on: drain_sqs(server, calls, tool, n, on),
            "celery": lambda tool, on: drain_celery(calls, tool, n, on),
        }
        for transport in transports:
            for tool in tools:
                rates: dict[bool, list[float]] = {False: [], True: []}
                cpus: dict[bool, list[float]] = {False: [], True: []}
                for r in range(rounds):
                    # Alternate which goes first: a warming machine favours neither side.
                    for on in (False, True) if r % 2 == 0 else (True, False):
                        rate, cpu = drains[transport](tool, on)
                        rates[on].append(rate)
                        cpus[on].append(cpu)
                        print(f"{transport} {tool} round {r + 1} {'on ' if on else 'off'}: "
                              f"{rate:,.0f}/s, {cpu:,.0f} us CPU each", flush=True)  # fmt: skip
                ratios = [a / b for a, b in zip(rates[True], rates[False], strict=True)]
                cpu_ratios = [b / a for a, b in zip(cpus[True], cpus[False], strict=True)]
                results[f"{transport}/{tool}"] = {
                    "off": statistics.median(rates[False]),
                    "on": statistics.median(rates[True]),
                    "ratio": statistics.median(ratios),
                    "ratios": ratios,
                    "cpu_us_off": statistics.median(cpus[False]),
                    "cpu_us_on": statistics.median(cpus[True]),
                    "cpu_ratio": statistics.median(cpu_ratios),
                }
    provider.shutdown()
    results["spans_exported"] = exporter.spans
    return results


def machine() -> dict[str, Any]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_1m": load,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"n={args.n} per drain, {args.rounds} rounds, on: {', '.join(sorted(ON))}; {machine()}",
        "",
        "| transport / tool | off (intents/s) | on (intents/s) | on ÷ off (median, range) "
        "| worker CPU per intent, off → on | CPU off ÷ on |",
        "| --- | ---: | ---: | --- | --- | ---: |",
    ]
    for name, r in results.items():
        if isinstance(r, dict):
            lo, hi = min(r["ratios"]), max(r["ratios"])
            lines.append(
                f"| {name} | {r['off']:,.0f} | {r['on']:,.0f} | "
                f"**{r['ratio']:.2f}** ({lo:.2f}-{hi:.2f}) | "
                f"{r['cpu_us_off']:,.0f} → {r['cpu_us_on']:,.0f} µs | **{r['cpu_ratio']:.2f}** |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transports", nargs="+", default=["sqs", "celery"])
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=list(TOOLS))
    parser.add_argument("--on", nargs="+", default=sorted(ON), choices=sorted(ON))
    args = parser.parse_args()
    ON.intersection_update(args.on)
    RESULTS.mkdir(exist_ok=True)
    results = run(args.n, args.rounds, args.transports, args.tools)
    text = report(results, args)
    print(text)
    (RESULTS / "observe.json").write_text(
        json.dumps({"machine": machine(), "args": vars(args), "results": results}, indent=2)
    )
    (RESULTS / "observe.md").write_text(text)


if __name__ == "__main__":
    main()
