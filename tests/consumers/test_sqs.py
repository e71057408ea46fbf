"""The consumer contract on SQS: the local SQS server, worker processes, real signals.

Redis holds the records, a SQLite file the dead letters; each worker's JSON log says how
every delivery was decided.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from intentq import Producer
from intentq.connections import open_dlq_for
from intentq.intent import Intent
from tests.celery.conftest import Effects, Worker
from tests.consumers.conftest import fx_env
from tests.consumers.contract import PATIENCE, ConsumerContract, Transport
from tests.sqs.conftest import StoreConfig, settings_for
from tests.support.net import wait_until
from tests.support.services import ROOT, SqsServer

ANSWERED = ("completed", "duplicate")
LEASE_LOST = "another worker owns the key now; the message goes back"


class SqsTransport(Transport[Worker]):
    def __init__(self, server: SqsServer, store: StoreConfig, fx: Effects, tmp: Path) -> None:
        self.url = server.new_queue()
        self.settings = settings_for(
            server, self.url, store, concurrency=self.concurrency, lease=2,
            dlq_url=f"sqlite:///{tmp / 'dlq.db'}", log_format="json", max_attempts=3,
            backoff_max=0.5,
        )  # fmt: skip
        dlq = open_dlq_for(self.settings)
        dlq.create_schema()
        super().__init__(store.open(), dlq, fx, tmp)
        self.client = server.client()
        self.producer = Producer(self.settings, sqs_client=self.client)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTQ_")}
        for name, value in self.settings.model_dump().items():
            if value is not None:
                self.env[f"INTENTQ_{name.upper()}"] = str(value)
        self.env.update(fx_env(fx), PYTHONPATH=str(ROOT), AWS_ACCESS_KEY_ID="test",
                        AWS_SECRET_ACCESS_KEY="test")  # fmt: skip

    def send_intent(self, intent: Intent) -> None:
        self.producer.send_intent(intent)

    def send_body(self, body: bytes) -> None:
        self.client.send_message(QueueUrl=self.url, MessageBody=body.decode())

    def start_worker(self) -> Worker:
        argv = [sys.executable, "-m", "tests.consumers.sqs_worker"]
        worker = Worker(argv, self.env, self.tmp / f"worker-{len(self.workers) + 1}.log")
        self.workers.append(worker)
        return worker.start()

    def alive(self, worker: Worker) -> bool:
        return worker.alive

    def kill(self, worker: Worker) -> None:
        worker.kill()

    def pause(self, worker: Worker) -> None:
        assert worker.proc is not None
        os.killpg(worker.proc.pid, signal.SIGSTOP)

    def resume(self, worker: Worker) -> None:
        assert worker.proc is not None
        os.killpg(worker.proc.pid, signal.SIGCONT)

    def terminate(self, worker: Worker) -> None:
        assert worker.proc is not None
        worker.proc.terminate()

    def wait_stopped(self, worker: Worker, timeout: float) -> bool:
        assert worker.proc is not None
        try:
            return worker.proc.wait(timeout) == 0
        except subprocess.TimeoutExpired:
            return False

    def lease_lost(self, worker: Worker) -> bool:
        return LEASE_LOST in worker.log_path.read_text(errors="replace")

    def answers(self, intents: Sequence[Intent], timeout: float = PATIENCE) -> list[Any]:
        # SQS carries no answer back: each delivery's decision is in the log, and what its
        # sender learns is the record's result.
        def all_answered() -> bool:
            decided = self._decisions()
            return all(decided.get(i.intent_id) in ANSWERED for i in intents)

        wait_until(all_answered, timeout=timeout, what="a decision for every delivery")
        return [self.record(i.tool, i.key).result for i in intents]

    def close(self) -> None:
        super().close()
        for worker in self.workers:
            if worker.alive:
                worker.stop()
        self.producer.close()
        self.client.close()
        self.store.close()
        self.dlq.close()

    def _decisions(self) -> dict[str, str]:
        """intent id -> the outcome of its latest delivery."""
        decided: dict[str, str] = {}
        for worker in self.workers:
            for line in worker.log_path.read_text(errors="replace").splitlines():
                if '"intentq.decisions"' not in line:
                    continue
                fields = json.loads(line)
                decided[fields["intent_id"]] = fields["outcome"]
        return decided


@pytest.fixture(scope="module")
def t(
    sqs_server: SqsServer, redis_url: str, fx: Effects, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqsTransport]:
    store = StoreConfig(redis_url, f"consumers-{os.urandom(5).hex()}")
    transport = SqsTransport(sqs_server, store, fx, tmp_path_factory.mktemp("sqs"))
    try:
        transport.start_worker()
        yield transport
    finally:
        transport.close()


class TestSqsTransport(ConsumerContract):
    pass
