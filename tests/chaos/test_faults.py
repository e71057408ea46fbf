"""Faults one at a time, against worker processes: the store's Redis down for seconds, the
PostgreSQL store's connections terminated, the SQS server restarted, a worker frozen past
its lease. Each test states what the design guarantees, and asserts exactly that.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bench.chaos.world import RedisServer, WorkerProc
from bench.chaos.zygote import Zygote
from intentq import Producer
from intentq.config import Settings
from intentq.dedup.base import State
from tests.chaos.harness import Rig, rig
from tests.support.net import free_port, wait_until
from tests.support.services import SqsServer

# A tool claimed just before the store went down may still start a moment later.
CLAIMED_BEFORE_SLACK = 1.5
OUTAGE = 5.0


def send(
    endpoint: str,
    queue_url: str,
    keys: Sequence[str],
    tool: str = "effect",
    args: dict[str, Any] | None = None,
) -> None:
    settings = Settings(transport="sqs", sqs_endpoint_url=endpoint, sqs_queue=queue_url)
    with Producer(settings) as producer:
        producer.enqueue_many([(tool, args or {"n": i}, key) for i, key in enumerate(keys)])


def depth(server: SqsServer, url: str) -> int:
    client = server.client()
    try:
        attrs = client.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
    finally:
        client.close()
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def all_ran(r: Rig, keys: Sequence[str]) -> bool:
    return set(keys) <= set(r.fx.counts("effect"))


def explain(r: Rig, since: float) -> str:
    """Every row of the keys that ran other than once: who, which attempt, when."""
    counts = r.fx.counts("effect")
    odd = {k for k, n in counts.items() if n != 1}
    rows = [
        f"{row.kind} {row.key} pid {row.pid} attempt {row.attempt} at {row.at - since:+.3f}"
        for row in r.fx.rows()
        if row.key in odd
    ]
    logs = "\n".join(f"--- worker {w.pid}\n{w.log_tail(4000)}" for w in r.workers)
    return "\n".join(rows) + "\n" + logs


def alive(workers: Sequence[WorkerProc]) -> None:
    for worker in workers:
        assert worker.poll() is None, worker.log_tail()


@pytest.fixture
def queue(sqs_server: SqsServer) -> str:
    return sqs_server.new_queue()


def test_redis_store_down_for_seconds_fails_closed_then_resumes_without_loss_or_double(
    zygote: Zygote,
    pg_url: str,
    unique: str,
    tmp_path: Path,
    sqs_server: SqsServer,
    queue: str,
    own_redis: RedisServer,
) -> None:
    # The lease outlasts the outage: a tool that finished while the store was down keeps
    # retrying its completion until it is back, so nobody takes it over and runs it again.
    with rig(zygote, pg_url, unique, tmp_path, queue, sqs_server, redis=own_redis, lease=15) as r:
        keys = [f"outage-{i}" for i in range(300)]
        send(sqs_server.endpoint_url, queue, keys[:150] + keys[:30])
        workers = [r.spawn(), r.spawn()]
        wait_until(lambda: len(r.fx.counts("effect")) >= 40, timeout=60, what="40 effects")
        send(sqs_server.endpoint_url, queue, keys[150:] + keys[100:130])

        # When the store's Redis dies (SIGKILL) for several seconds
        own_redis.stop(signal.SIGKILL)
        down_at = time.time()
        wait_until(
            lambda: any(b"store unavailable" in w.log().encode() for w in workers),
            timeout=20,
            what="a worker to notice the outage",
        )
        waiting = depth(sqs_server, queue)
        time.sleep(max(0.0, down_at + OUTAGE - time.time()))  # the outage itself
        up_at = time.time()
        own_redis.start()

        # Then it resumes, and every intent runs exactly once
        wait_until(lambda: all_ran(r, keys), timeout=90, what="every intent to run")
        wait_until(lambda: depth(sqs_server, queue) == 0, timeout=60, what="an empty queue")
        assert waiting > 0  # there was work on offer during the outage
        # Fail closed: no tool started while no claim could be made.
        started = [row for row in r.fx.rows("call") if down_at + CLAIMED_BEFORE_SLACK < row.at]
        assert not [row for row in started if row.at < up_at], (down_at, up_at)
        assert r.fx.counts("effect") == dict.fromkeys(keys, 1), explain(r, down_at)
        alive(workers)


def test_postgres_store_connections_terminated_mid_run_lose_nothing_run_nothing_twice(
    zygote: Zygote,
    pg_url: str,
    unique: str,
    tmp_path: Path,
    sqs_server: SqsServer,
    queue: str,
) -> None:
    with rig(zygote, pg_url, unique, tmp_path, queue, sqs_server, lease=15) as r:
        # Enough work that the run outlasts several terminations however fast the workers.
        keys = [f"pgdrop-{i}" for i in range(1200)]
        send(sqs_server.endpoint_url, queue, keys + keys[:200])
        workers = [r.spawn(), r.spawn()]
        wait_until(lambda: r.fx.counts("effect"), timeout=60, what="the first effect")

        # While the store's connections are terminated (pg_terminate_backend) every 0.3 s
        terminated = 0
        deadline = time.monotonic() + 90
        while not all_ran(r, keys):
            assert time.monotonic() < deadline, "the run did not finish"
            terminated += r.schema.terminate(f"chaos-store-{unique}")
            time.sleep(0.3)  # the fault's cadence

        wait_until(lambda: depth(sqs_server, queue) == 0, timeout=60, what="an empty queue")
        assert terminated >= 3
        assert any("SQL store unavailable" in w.log() for w in workers)
        assert r.fx.counts("effect") == dict.fromkeys(keys, 1), explain(r, 0.0)
        alive(workers)


@pytest.fixture
def restartable_sqs(tmp_path: Path) -> Iterator[SqsServer]:
    server = SqsServer(free_port(), tmp_path / "ministack.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_sqs_server_restarted_mid_run_worker_survives_and_resumes_with_no_double(
    zygote: Zygote,
    pg_url: str,
    unique: str,
    tmp_path: Path,
    restartable_sqs: SqsServer,
    own_redis: RedisServer,
) -> None:
    """ministack keeps queues in memory: a restart loses the queue and what it held.

    Real SQS does not lose queues, so what this can show is the worker's side: it survives
    the outage without crashing, resumes against the new server once the queue exists
    again, runs everything sent after the restart exactly once, and never runs anything
    from before it twice. It cannot show that messages waiting at the restart survive.
    """
    server = restartable_sqs
    url = server.new_queue(f"restart-{unique}")
    with rig(zygote, pg_url, unique, tmp_path, url, server, redis=own_redis, lease=15) as r:
        before = [f"before-{i}" for i in range(200)]
        send(server.endpoint_url, url, before)
        worker = r.spawn()
        wait_until(lambda: len(r.fx.counts("effect")) >= 20, timeout=60, what="20 effects")

        server.stop()
        server.start()
        assert server.new_queue(f"restart-{unique}") == url  # same port, same name
        after = [f"after-{i}" for i in range(100)]
        send(server.endpoint_url, url, after + after[:20])

        wait_until(lambda: all_ran(r, after), timeout=90, what="every intent sent after")
        wait_until(lambda: depth(server, url) == 0, timeout=60, what="an empty queue")
        alive([worker])
        assert "receive failed" in worker.log()
        counts = r.fx.counts("effect")
        assert {k: counts[k] for k in after} == dict.fromkeys(after, 1)
        assert max(counts.values()) == 1
        assert set(counts) <= set(before) | set(after)


@pytest.mark.parametrize(
    ("tool", "effect_pids"),
    [("slow", ["taker", "frozen"]), ("slow_tx", ["taker"])],
    ids=["plain-tool", "transactional-tool"],
)
def test_worker_frozen_past_its_lease_is_taken_over_and_its_late_completion_is_fenced(
    zygote: Zygote,
    pg_url: str,
    unique: str,
    tmp_path: Path,
    sqs_server: SqsServer,
    queue: str,
    tool: str,
    effect_pids: list[str],
) -> None:
    """A tool that hangs past its lease (here its whole process is frozen: SIGSTOP, as in a
    stalled VM or a long GC pause) is taken over by another worker once the lease runs out.

    What the design guarantees: the taker's result is the one recorded, and the late
    finisher's completion is fenced (``LeaseLost``) so it never overwrites it. What it
    cannot guarantee: a plain tool's side effect, outside the store, has already happened
    when the late finisher is told; so it shows twice, and only a transactional tool (its
    effect commits with the completion record) or the tool's own unique key prevents that.
    """
    key = f"hang-{unique}"
    with rig(zygote, pg_url, unique, tmp_path, queue, sqs_server, lease=2) as r:
        send(sqs_server.endpoint_url, queue, [key], tool=tool, args={"seconds": 3})
        frozen = r.spawn()
        wait_until(lambda: r.fx.counts("start")[key], timeout=60, what="the tool to start")
        frozen.signal(signal.SIGSTOP)
        try:
            taker = r.spawn()
            wait_until(lambda: r.fx.counts("effect")[key], timeout=60, what="the takeover")
        finally:
            frozen.signal(signal.SIGCONT)
        # Told LeaseLost, the late finisher gives its message back instead of acking it
        fenced = "another worker owns the key now; the message goes back"
        wait_until(lambda: fenced in frozen.log(), timeout=30, what="the late finisher")
        wait_until(lambda: depth(sqs_server, queue) == 0, timeout=30, what="an empty queue")

        pids = {"frozen": frozen.pid, "taker": taker.pid}
        starts = [(row.pid, row.attempt) for row in r.fx.rows("start")]
        assert starts == [(frozen.pid, 1), (taker.pid, 2)]
        effects = [row.pid for row in r.fx.rows("effect")]
        assert effects == [pids[name] for name in effect_pids]
        record = r.store.get(tool, key)
        assert record is not None and record.state is State.COMPLETED
        result: dict[str, Any] = record.result
        assert result == {"pid": taker.pid, "attempt": 2}  # never overwritten by the late one
        alive([frozen, taker])
