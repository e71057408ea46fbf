"""Fixtures for the SQS worker tests: effects table, stores, workers in threads and processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from intentq.config import Settings
from intentq.consumers.sqs.service import SqsWorker
from intentq.dedup import DedupStore, open_store
from intentq.dlq.base import DeadLetterStore
from intentq.dlq.memory import MemoryDeadLetterStore
from intentq.registry import Registry
from tests.sqs.tools import Effects, build_registry
from tests.support.services import SqsServer

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class StoreConfig:
    """Where a test's dedup records live: a URL and a prefix no other test uses."""

    url: str
    prefix: str

    def open(self) -> DedupStore:
        store = open_store(self.url, prefix=self.prefix)
        store.create_schema()
        return store


@pytest.fixture
def effects(pg_url: str, unique: str) -> Iterator[Effects]:
    table = Effects(pg_url, f"sqs_effects_{unique}")
    table.create()
    try:
        yield table
    finally:
        table.drop()


@pytest.fixture
def registry(effects: Effects) -> Registry:
    return build_registry(effects)


@pytest.fixture
def redis_store(redis_url: str, unique: str) -> StoreConfig:
    return StoreConfig(redis_url, f"sqs-test-{unique}")


@pytest.fixture(params=["redis", "postgres"])
def any_store(request: pytest.FixtureRequest, unique: str) -> StoreConfig:
    """The Redis store, then the PostgreSQL one."""
    if request.param == "redis":
        return StoreConfig(request.getfixturevalue("redis_url"), f"sqs-test-{unique}")
    return StoreConfig(request.getfixturevalue("pg_url"), f"sqs-test-{unique}")


def settings_for(
    server: SqsServer, queue_url: str, store: StoreConfig, **overrides: Any
) -> Settings:
    """Settings for a worker on ``queue_url``: short polls, a short lease, the given store."""
    values: dict[str, Any] = {
        "transport": "sqs",
        "sqs_queue": queue_url,
        "sqs_endpoint_url": server.endpoint_url,
        # Short long-polls: a stopped worker must not leave a poll holding messages.
        "sqs_wait_seconds": 1,
        "concurrency": 8,
        "lease": 5,
        "dedup_url": store.url,
        "key_prefix": store.prefix,
        "dlq_url": "memory://",
        "shutdown_grace": 30,
        "backoff_base": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def running(worker: SqsWorker) -> Iterator[threading.Thread]:
    """``worker.run()`` in a thread for the block; stopped and joined after it."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            worker.run()
        except BaseException as exc:  # surfaced in the test, not lost in the thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="sqs-test-worker", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        worker.stop()
        thread.join(60)
    assert not thread.is_alive(), "the worker did not stop"
    if failure:
        raise failure[0]


@pytest.fixture
def make_worker() -> Iterator[Callable[..., SqsWorker]]:
    """Build in-process workers (closed at the end); the DLQ defaults to a memory one."""
    made: list[SqsWorker] = []

    def make(
        settings: Settings,
        registry: Registry,
        store: DedupStore,
        dlq: DeadLetterStore | None = None,
    ) -> SqsWorker:
        worker = SqsWorker(settings, registry, store=store, dlq=dlq or MemoryDeadLetterStore())
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.close()


class WorkerProcess:
    """``python -m tests.sqs.worker_main`` with its own environment and log file."""

    def __init__(self, settings: Settings, effects: Effects, log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTQ_")}
        for name, value in settings.model_dump().items():
            if value is not None:
                env[f"INTENTQ_{name.upper()}"] = str(value)
        env.update(effects.env())
        env["PYTHONPATH"] = str(ROOT)
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.sqs.worker_main"],
                env=env,
                cwd=log_path.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def spawn(tmp_path: Path, effects: Effects) -> Iterator[Callable[[Settings], WorkerProcess]]:
    """Start worker processes; any still alive at the end are killed."""
    procs: list[WorkerProcess] = []

    def start(settings: Settings) -> WorkerProcess:
        proc = WorkerProcess(settings, effects, tmp_path / f"worker-{len(procs)}.log")
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()


@pytest.fixture
def sqs(sqs_server: SqsServer) -> Iterator[Any]:
    """A boto3 SQS client on the local server, closed after the test."""
    client = sqs_server.client()
    try:
        yield client
    finally:
        client.close()


def queue_depth(client: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of the queue."""
    attrs = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )
