"""Celery node names: two workers on one host, and a restart right after SIGKILL, all keep
consuming. Celery's default name (``celery@<host>``) is the same for every worker on a host;
on RabbitMQ the second one died at start with ``ResourceLocked`` on its pidbox queue."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from intentq import Producer
from intentq.config import Settings
from intentq.consumers.celery import worker_argv
from tests.observe.support import CliWorker, settings_env
from tests.observe.tools import CALLS_ENV
from tests.support.net import wait_until

APP = "tests.observe.tools:registry"


def test_the_default_node_name_is_unique_on_the_host() -> None:
    settings = Settings()
    names = {worker_argv(settings)[-1] for _ in range(3)}
    assert len(names) == 3
    for name in names:
        assert name.startswith("intentq-") and name.endswith("@%h")
    assert worker_argv(settings, hostname="mine@%h")[-2:] == ["--hostname", "mine@%h"]


def ran_in(calls: Path, pid: int) -> set[str]:
    """Calls run by worker ``pid`` (in itself or in one of its pool children)."""
    return {p.name for p in calls.iterdir() if str(pid) in p.name.split("-")[:2]}


# RabbitMQ: two workers, then a restart right after SIGKILL; Redis: two workers.
@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_two_workers_and_a_restart_after_sigkill_keep_consuming(
    broker: str, request: pytest.FixtureRequest, unique: str, tmp_path: Path
) -> None:
    broker_url = (
        request.getfixturevalue("amqp_url")
        if broker == "rabbitmq"
        else request.getfixturevalue("redis_url").rsplit("/", 1)[0] + "/11"
    )
    values: dict[str, Any] = {
        "transport": "celery",
        "app": APP,
        "broker_url": broker_url,
        "celery_queue": f"nodes-{unique}",
        "dedup_url": request.getfixturevalue("redis_url"),
        "key_prefix": f"nodes-{unique}",
        "dlq_url": "memory://",
        "lease": 2.0,
    }
    calls = tmp_path / "calls"
    calls.mkdir()
    env = dict(settings_env(**values), **{CALLS_ENV: str(calls)})
    args = ["--pool", "prefork", "--concurrency", "2"]

    def launch(name: str) -> CliWorker:
        return CliWorker(args, env, tmp_path / f"{name}.log").launch()

    def consumed_by(producer: Producer, *workers: CliWorker, n: int = 12) -> None:
        """Send ``n`` short calls until each worker ran at least one of them."""
        for round_ in range(10):
            for i in range(n):
                producer.enqueue("ok", {"n": i, "sleep": 0.05}, key=f"{round_}-{i}-{unique}")
            try:
                wait_until(
                    lambda: all(ran_in(calls, w.pid) for w in workers),
                    timeout=10,
                    what="every worker to consume",
                )
                return
            except AssertionError:
                continue
        raise AssertionError(f"not every worker consumed: {sorted(calls.iterdir())[:5]}")

    workers: list[CliWorker] = []
    settings = Settings(**values)
    with Producer(settings) as producer:
        try:
            # Given two workers with default node names, started together on this host
            workers += [launch("first"), launch("second")]
            for worker in workers:
                worker.wait(worker.ready_line)
            # Then both are up and both consume
            consumed_by(producer, *workers)
            if broker == "rabbitmq":
                # When the second is SIGKILLed and started again at once
                workers[1].kill()
                restarted = launch("restarted")
                workers.append(restarted.wait(restarted.ready_line))
                # Then the restarted one consumes, next to the first
                consumed_by(producer, workers[0], restarted)
            assert all(worker.alive for worker in (workers[0], workers[-1]))
        finally:
            for worker in workers:
                worker.stop()
            if broker == "rabbitmq":
                app = producer._app()
                with app.connection_for_write() as conn:
                    app.amqp.queues[values["celery_queue"]](conn.default_channel).delete()
    host = socket.gethostname()
    for worker in workers:
        log = worker.log_path.read_text(errors="replace")
        assert "ResourceLocked" not in log
        assert f"@{host}" in log and "intentq-" in log
