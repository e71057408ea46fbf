"""Counters read back from ``/metrics`` after real workers ran completions, duplicates,
retries and dead letters: the SQS worker, and a Celery prefork worker whose tools run in pool
children (prometheus-client's multiprocess mode) on RabbitMQ."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from intentq import Producer
from intentq.config import Settings
from intentq.connections import open_dlq
from intentq.observe import DECISIONS, OUTCOMES
from tests.observe.support import CliWorker, port_serves, scrape, settings_env, total
from tests.observe.tools import GATE_ENV
from tests.support.net import free_port, wait_until
from tests.support.services import SqsServer

APP = "tests.observe.tools:registry"
# Short leases and retries: a retry comes back, and a heartbeat beats, within a test.
FAST = {"lease": 1.5, "backoff_base": 0.1, "backoff_max": 0.3, "max_attempts": 3}
INTENTS = "intentq_intents_total"


@pytest.fixture
def dlq_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'dlq.db'}"
    dlq = open_dlq(url)
    dlq.create_schema()
    dlq.close()
    return url


def send_the_mix(producer: Producer) -> None:
    """Three completions, a retry, a long tool (lease extended), two dead letters."""
    for n in range(3):
        producer.enqueue("ok", {"n": n}, key=f"ok-{n}")
    producer.enqueue("flaky", {}, key="flaky")
    producer.enqueue("ok", {"n": 9, "sleep": 1.2}, key="long")
    producer.enqueue("broken", {}, key="broken")
    producer.enqueue("typed", {"count": "many"}, key="typed")  # no registry here: not checked


def wait_for(port: int, what: str, **expected: float) -> list[tuple[str, dict[str, str], float]]:
    """Scrape until each ``outcome=count`` of ``intentq_intents_total`` is reached."""

    def reached() -> list[tuple[str, dict[str, str], float]] | None:
        samples = scrape(port)
        have = {o: total(samples, INTENTS, outcome=o) for o in expected}
        return samples if all(have[o] >= n for o, n in expected.items()) else None

    return wait_until(reached, timeout=45, interval=0.2, what=what)


def check_the_mix(samples: list[tuple[str, dict[str, str], float]], queue: str) -> None:
    def get(name: str, **labels: str) -> float:
        return total(samples, name, queue=queue, **labels)

    assert get(INTENTS, tool="ok", outcome="completed") == 4
    assert get(INTENTS, tool="flaky", outcome="retried") == 1
    assert get(INTENTS, tool="flaky", outcome="completed") == 1
    assert get(INTENTS, outcome="dead_lettered") == 2
    assert get("intentq_dead_letters_total", tool="broken", reason="permanent") == 1
    assert get("intentq_dead_letters_total", tool="typed", reason="schema") == 1
    assert get("intentq_dedup_decisions_total", decision="acquired") == 7
    assert get("intentq_dedup_decisions_total", decision="cached") == 1
    # Every tool run: 3 ok, the long one, flaky twice, broken once.
    assert get("intentq_tool_duration_seconds_count") == 7
    assert get("intentq_tool_duration_seconds_count", tool="ok") == 4
    assert get("intentq_tool_duration_seconds_bucket", tool="ok", le="1.0") == 3
    assert get("intentq_queue_lag_seconds_count") == 7
    assert get("intentq_inprogress") == 0
    assert get("intentq_lease_extensions_total", tool="ok") >= 1
    assert total(samples, "intentq_store_errors_total") == 0
    # Labels are tool and queue and the one dimension: never a key or an intent id.
    for name, labels, _ in samples:
        if name.startswith("intentq_"):
            assert not {"key", "intent_id"} & set(labels), (name, labels)
            assert labels.get("outcome", OUTCOMES[0]) in OUTCOMES
            assert labels.get("decision", DECISIONS[0]) in DECISIONS


def check_dead_letter_gauge(port: int) -> None:
    def counted() -> bool:
        samples = scrape(port)
        return (
            total(samples, "intentq_dlq_letters", reason="permanent") == 1
            and total(samples, "intentq_dlq_letters", reason="schema") == 1
            and total(samples, "intentq_dlq_up") == 1
        )

    wait_until(counted, timeout=10, interval=0.2, what="the dead-letter gauge")


# -- SQS ---------------------------------------------------------------------------------------


@pytest.fixture
def sqs_env(
    sqs_server: SqsServer, redis_url: str, unique: str, dlq_url: str
) -> Iterator[dict[str, Any]]:
    queue = sqs_server.new_queue()
    yield {
        "transport": "sqs",
        "app": APP,
        "sqs_queue": queue,
        "sqs_endpoint_url": sqs_server.endpoint_url,
        "sqs_wait_seconds": 1,
        "dedup_url": redis_url,
        "key_prefix": f"observe-{unique}",
        "dlq_url": dlq_url,
        "metrics_port": free_port(),
        "metrics_host": "127.0.0.1",
        "metrics_dlq_interval": 0.2,
        "log_format": "json",
        **FAST,
    }
    client = sqs_server.client()
    client.delete_queue(QueueUrl=queue)
    client.close()


def test_sqs_worker_counts_what_it_did(sqs_env: dict[str, Any], tmp_path: Path) -> None:
    # Given an SQS worker serving /metrics, with JSON logs
    port = sqs_env["metrics_port"]
    env = settings_env(**sqs_env, **{"aws_region": "us-east-1"})
    env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    worker = CliWorker([], env, tmp_path / "sqs-worker.log")
    settings = Settings(**{k: v for k, v in sqs_env.items() if k != "metrics_port"})
    try:
        worker.start(lambda: port_serves(port))
        # When the mix is sent, then a duplicate of a completed key
        with Producer(settings) as producer:
            send_the_mix(producer)
            wait_for(port, "the mix", completed=5, retried=1, dead_lettered=2)
            producer.enqueue("ok", {"n": 0}, key="ok-0")
            samples = wait_for(port, "the duplicate", duplicate=1)
        # Then /metrics counts each, by tool and queue
        queue = sqs_env["sqs_queue"].rsplit("/", 1)[-1]
        check_the_mix(samples, queue)
        assert total(samples, INTENTS, queue=queue, tool="ok", outcome="duplicate") == 1
        check_dead_letter_gauge(port)
    finally:
        worker.stop()
    # And every decision is one JSON line with its fields
    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    duplicate = [d for d in lines if d.get("outcome") == "duplicate"]
    assert len(duplicate) == 1, lines[-5:]
    line = duplicate[0]
    assert line["logger"] == "intentq.decisions"
    assert line["key"] == "ok-0" and line["tool"] == "ok" and line["decision"] == "cached"
    assert line["intent_id"] and line["queue"] == queue and line["duration"] >= 0
    retried = [d for d in lines if d.get("outcome") == "retried"]
    assert retried and retried[0]["attempt"] == 1 and retried[0]["decision"] == "acquired"
    letters = {d["reason"] for d in lines if d.get("outcome") == "dead_lettered"}
    assert letters == {"permanent", "schema"}


# -- Celery prefork ----------------------------------------------------------------------------


def test_celery_prefork_worker_sums_its_children(
    amqp_url: str, redis_url: str, unique: str, dlq_url: str, tmp_path: Path
) -> None:
    # Given `intentq worker` on Celery's prefork pool, two children, serving /metrics
    port = free_port()
    values: dict[str, Any] = {
        "transport": "celery",
        "app": APP,
        "broker_url": amqp_url,
        "celery_queue": f"observe-{unique}",
        "dedup_url": redis_url,
        "key_prefix": f"observe-{unique}",
        "dlq_url": dlq_url,
        "metrics_host": "127.0.0.1",
        "metrics_dlq_interval": 0.2,
        **FAST,
    }
    gate = tmp_path / "gate"
    env = settings_env(**values, metrics_port=port)
    env[GATE_ENV] = str(gate)
    args = ["--pool", "prefork", "--concurrency", "2"]
    worker = CliWorker(args, env, tmp_path / "celery-worker.log")
    settings = Settings(**values)
    with Producer(settings) as producer:
        try:
            worker.start(worker.ready_line)
            # When the mix runs in the pool children, then a duplicate
            send_the_mix(producer)
            wait_for(port, "the mix", completed=5, retried=1, dead_lettered=2)
            producer.enqueue("ok", {"n": 0}, key="ok-0")
            samples = wait_for(port, "the duplicate", duplicate=1)
            # Then the main process serves the children's counts, summed
            check_the_mix(samples, values["celery_queue"])
            check_dead_letter_gauge(port)

            # When a child is SIGKILLed while its tool runs
            producer.enqueue("hold", {}, key="hold")
            held = wait_until(
                lambda: list(tmp_path.glob("hold-*")), timeout=30, what="the hold tool"
            )
            assert total(scrape(port), "intentq_inprogress", tool="hold") == 1
            os.kill(int(held[0].name.split("-")[1]), signal.SIGKILL)

            # Then its live gauge goes with it (mark_process_dead), and the redelivered
            # message completes in another child
            def settled() -> bool:
                samples = scrape(port)
                done = total(samples, INTENTS, tool="hold", outcome="completed")
                return done == 1 and total(samples, "intentq_inprogress", tool="hold") == 0

            wait_until(settled, timeout=30, interval=0.2, what="the killed child's gauge")
        finally:
            worker.stop()
            with producer._app().connection_for_write() as conn:
                producer._app().amqp.queues[values["celery_queue"]](conn.default_channel).delete()
    assert "ResourceLocked" not in worker.log()
