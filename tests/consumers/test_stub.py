"""The consumer contract on the in-memory stub transport: threads, not processes.

A killed stub worker is abandoned (no heartbeat, no verdicts) while its tool keeps waiting;
a paused one stops beating, as a process stopped by SIGSTOP would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from intentq.consumers.stub import StubBroker, StubWorker
from intentq.dedup.memory import MemoryDedupStore
from intentq.dlq.memory import MemoryDeadLetterStore
from intentq.heartbeat import Beat, Beating, Heartbeat
from intentq.intent import Intent
from intentq.outcome import Ack, RetryLater
from intentq.policy import Policy
from tests.celery.conftest import Effects
from tests.consumers.conftest import fx_env
from tests.consumers.contract import PATIENCE, ConsumerContract, Transport
from tests.consumers.tools import build_registry
from tests.support.net import wait_until

# A short lease: a takeover comes within about a second.
POLICY = Policy(lease=1.0, backoff_base=0.05, backoff_max=0.2, max_attempts=3)


class PausableHeartbeat(Heartbeat):
    """A heartbeat whose beats are skipped while ``paused`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = threading.Event()

    def beating(self, interval: float, beat: Beat) -> Beating:
        def unless_paused() -> None:
            if not self.paused.is_set():
                beat()

        return super().beating(interval, unless_paused)


class StubTransport(Transport[StubWorker]):
    processes = False
    # One slot: a worker whose tool is held receives nothing else, as a frozen process.
    concurrency = 1

    def __init__(self, fx: Effects, tmp: Path) -> None:
        super().__init__(MemoryDedupStore(), MemoryDeadLetterStore(), fx, tmp)
        self.broker = StubBroker()
        self.registry = build_registry()
        self.sent: dict[str, str] = {}  # intent id -> message id
        self.stopping: dict[int, tuple[threading.Thread, list[bool]]] = {}

    def send_intent(self, intent: Intent) -> None:
        self.sent[intent.intent_id] = self.broker.send(intent)

    def send_body(self, body: bytes) -> None:
        self.broker.send_body(body)

    def start_worker(self) -> StubWorker:
        worker = StubWorker(
            self.broker, self.registry, self.store, self.dlq, concurrency=self.concurrency,
            policy=POLICY, heartbeat=PausableHeartbeat(), name=f"w{len(self.workers) + 1}",
        )  # fmt: skip
        self.workers.append(worker)
        return worker.start()

    def alive(self, worker: StubWorker) -> bool:
        return worker.alive

    def kill(self, worker: StubWorker) -> None:
        worker.kill()

    def pause(self, worker: StubWorker) -> None:
        self._heartbeat(worker).paused.set()

    def resume(self, worker: StubWorker) -> None:
        self._heartbeat(worker).paused.clear()

    def terminate(self, worker: StubWorker) -> None:
        finished: list[bool] = []
        thread = threading.Thread(target=lambda: finished.append(worker.stop(PATIENCE)))
        thread.start()
        self.stopping[id(worker)] = (thread, finished)

    def wait_stopped(self, worker: StubWorker, timeout: float) -> bool:
        thread, finished = self.stopping.pop(id(worker))
        thread.join(timeout)
        return finished == [True]

    def lease_lost(self, worker: StubWorker) -> bool:
        return any(
            isinstance(o, RetryLater) and o.cause == "lease_lost" for _, o in list(worker.outcomes)
        )

    def answers(self, intents: Sequence[Intent], timeout: float = PATIENCE) -> list[Any]:
        def answer(message_id: str) -> list[Any]:
            acks = [
                outcome
                for worker in self.workers
                for received, outcome in list(worker.outcomes)
                if received.message_id == message_id and isinstance(outcome, Ack)
            ]
            return [acks[-1].result] if acks else []

        found = [partial(answer, self.sent[intent.intent_id]) for intent in intents]
        return [wait_until(each, timeout=timeout, what="an answer")[0] for each in found]

    def close(self) -> None:
        super().close()
        for worker in self.workers:
            if worker.alive:
                worker.stop(PATIENCE)

    @staticmethod
    def _heartbeat(worker: StubWorker) -> PausableHeartbeat:
        assert isinstance(worker.heartbeat, PausableHeartbeat)
        return worker.heartbeat


@pytest.fixture(scope="module")
def t(fx: Effects, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StubTransport]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in fx_env(fx).items():
            patch.setenv(name, value)
        transport = StubTransport(fx, tmp_path_factory.mktemp("stub"))
        transport.start_worker()
        try:
            yield transport
        finally:
            transport.close()


class TestStubTransport(ConsumerContract):
    pass
