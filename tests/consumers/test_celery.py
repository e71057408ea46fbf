"""The consumer contract on Celery: the Redis broker, worker processes, real signals.

The harness of ``tests/celery`` (its app, result backend, store and SQLite DLQ) with
workers that serve the contract's tools; each delivery's answer is its task's result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from intentq.consumers.celery import publish, publish_raw
from intentq.intent import Intent
from tests.celery.conftest import (
    BROKER_DB,
    RESULT_DB,
    Effects,
    Harness,
    Worker,
    make_harness,
    redis_db,
)
from tests.celery.worker_entry import CONFIG
from tests.consumers.conftest import fx_env
from tests.consumers.contract import PATIENCE, ConsumerContract, Transport

STORE_DB = 13
# A killed or frozen worker's message comes back after the visibility timeout: keep it
# short, and look for such messages every second.
TRANSPORT_OPTIONS = {
    "visibility_timeout": 4,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
LEASE_LOST = "another worker owns the key now; the message goes back"


class CeleryTransport(Transport[Worker]):
    def __init__(self, h: Harness) -> None:
        super().__init__(h.store, h.dlq, h.fx, h.log_dir)
        self.h = h
        h.env.update(fx_env(h.fx))

    def send_intent(self, intent: Intent) -> None:
        publish(self.h.app, intent, self.h.queue)

    def send_body(self, body: bytes) -> None:
        publish_raw(self.h.app, body, self.h.queue)

    def start_worker(self) -> Worker:
        name = f"w{len(self.workers) + 1}"
        config = self.h.worker_config(f"{name}@%h")
        env = dict(self.h.env, **{CONFIG: json.dumps(config)})
        argv = [sys.executable, "-m", "tests.consumers.celery_worker"]
        worker = Worker(argv, env, self.tmp / f"worker-{name}.log")
        self.workers.append(worker)
        self.h.workers.append(worker)  # stopped with the harness
        return worker.start()

    def alive(self, worker: Worker) -> bool:
        return worker.alive

    def kill(self, worker: Worker) -> None:
        worker.kill()

    def pause(self, worker: Worker) -> None:
        assert worker.proc is not None
        os.killpg(worker.proc.pid, signal.SIGSTOP)  # the main process and its pool children

    def resume(self, worker: Worker) -> None:
        assert worker.proc is not None
        os.killpg(worker.proc.pid, signal.SIGCONT)

    def terminate(self, worker: Worker) -> None:
        assert worker.proc is not None
        worker.proc.terminate()  # warm shutdown: the main process only, as Worker.stop does

    def wait_stopped(self, worker: Worker, timeout: float) -> bool:
        assert worker.proc is not None
        try:
            return worker.proc.wait(timeout) == 0
        except subprocess.TimeoutExpired:
            return False

    def lease_lost(self, worker: Worker) -> bool:
        return LEASE_LOST in worker.log_path.read_text(errors="replace")

    def answers(self, intents: Sequence[Intent], timeout: float = PATIENCE) -> list[Any]:
        return [self.h.result(intent.intent_id, timeout) for intent in intents]

    def close(self) -> None:
        super().close()
        self.h.close()


@pytest.fixture(scope="module")
def t(
    redis_url: str, fx: Effects, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryTransport]:
    harness = make_harness(
        tmp_path_factory.mktemp("celery-contract"),
        fx,
        broker_url=redis_db(redis_url, BROKER_DB),
        dedup_url=redis_db(redis_url, STORE_DB),
        result_backend=redis_db(redis_url, RESULT_DB),
        transport_options=TRANSPORT_OPTIONS,
    )
    transport = CeleryTransport(harness)
    try:
        transport.start_worker()
        yield transport
    finally:
        transport.close()


class TestCeleryTransport(ConsumerContract):
    pass
