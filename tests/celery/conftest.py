"""Real Celery workers in subprocesses, the side-effect table, and a harness per broker."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from intentq.config import Settings
from intentq.connections import open_dlq_for, open_store_for
from intentq.consumers.celery import create_app, publish
from intentq.dedup import DedupStore
from intentq.dlq import DeadLetterStore, LetterFilter
from intentq.dlq.base import DeadLetter
from intentq.intent import Intent
from tests.celery.tools import FX_DSN, FX_TABLE, registry
from tests.celery.worker_entry import CONFIG
from tests.support.net import wait_until
from tests.support.services import ROOT

# Redis databases of these tests' own: the broker's keys and the results.
BROKER_DB = 11
RESULT_DB = 12
# Short everything: leases run out, and retries come back, within a test's patience.
TEST_SETTINGS: dict[str, Any] = {
    "lease": 2.0,
    "backoff_base": 0.1,
    "backoff_max": 0.5,
    "max_attempts": 3,
}
READY = b" ready."
READY_TIMEOUT = 60.0
READY_STATES = ("SUCCESS", "FAILURE")


def redis_db(redis_url: str, db: int) -> str:
    return f"{redis_url.rsplit('/', 1)[0]}/{db}"


def pg_dsn(pg_url: str) -> str:
    """The psycopg form of the SQLAlchemy URL the fixture gives."""
    return pg_url.replace("postgresql+psycopg://", "postgresql://", 1)


class Effects:
    """A PostgreSQL table of side effects, without a unique constraint."""

    def __init__(self, dsn: str, table: str) -> None:
        self.dsn, self.table = dsn, table

    def create(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                f'CREATE TABLE "{self.table}" (id bigserial, kind text, tool text, key text, '
                "intent_id text, attempt int, pid int, at timestamptz DEFAULT now())"
            )

    def drop(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{self.table}"')

    def rows(self, kind: str, key: str) -> list[tuple[Any, ...]]:
        """``(tool, intent_id, attempt, pid)`` of each row of ``kind`` for ``key``."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(
                f'SELECT tool, intent_id, attempt, pid FROM "{self.table}" '
                "WHERE kind = %s AND key = %s ORDER BY id",
                (kind, key),
            ).fetchall()

    def count(self, kind: str, key: str) -> int:
        return len(self.rows(kind, key))


class Worker:
    """``python -m tests.celery.worker_entry`` (or any command) in a session of its own."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.argv, self.env, self.log_path = argv, env, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the worker exited early:\n{self.log()}")
            return READY in self.log_path.read_bytes()[offset:]

        wait_until(ready, timeout=READY_TIMEOUT, interval=0.1, what="the Celery worker")
        return self

    def log(self) -> str:
        return self.log_path.read_bytes()[-6000:].decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL the main process and its pool children at once."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        """Warm shutdown (SIGTERM to the main process only); SIGKILL if it lingers."""
        if self.proc is None:
            return
        # Only the main process is signalled: a pool child killed from outside can leave
        # the pool's queue lock held, and the main process then hangs at exit.
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(20)
        pgid, self.proc = self.proc.pid, None
        with contextlib.suppress(ProcessLookupError):  # whatever is left of the worker
            os.killpg(pgid, signal.SIGKILL)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Harness:
    """One broker's world: a publishing app, the worker, the store, the DLQ, the effects."""

    settings: Settings
    app: Any
    queue: str
    fx: Effects
    store: DedupStore
    dlq: DeadLetterStore
    env: dict[str, str]
    log_dir: Path
    result_backend: str
    transport_options: dict[str, Any] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)

    def worker_config(self, hostname: str) -> dict[str, Any]:
        return {
            "settings": self.settings.model_dump(),
            "result_backend": self.result_backend,
            "transport_options": self.transport_options,
            "concurrency": 2,
            "hostname": hostname,
        }

    def new_worker(self, name: str = "w1") -> Worker:
        env = dict(self.env, **{CONFIG: json.dumps(self.worker_config(f"{name}@%h"))})
        argv = [sys.executable, "-m", "tests.celery.worker_entry"]
        worker = Worker(argv, env, self.log_dir / f"worker-{name}.log")
        self.workers.append(worker)
        return worker

    def new_cli_worker(self, name: str = "w1") -> Worker:
        """``celery -A intentq.consumers.celery.main worker``, configured by ``INTENTQ_*``."""
        env = dict(self.env, INTENTQ_APP="tests.celery.tools:registry")
        for field_name, value in self.settings.model_dump(exclude={"app"}).items():
            if value is not None:
                env[f"INTENTQ_{field_name.upper()}"] = str(value)
        argv = [
            sys.executable, "-m", "celery", "-A", "intentq.consumers.celery.main",
            "--result-backend", self.result_backend,
            "worker", "--queues", self.queue, "--concurrency", "2", "--loglevel", "INFO",
            "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        worker = Worker(argv, env, self.log_dir / f"worker-{name}.log")
        self.workers.append(worker)
        return worker

    def ensure_worker(self) -> Worker:
        """A running worker: the last one started, or a new one."""
        live = [w for w in self.workers if w.alive]
        if live:
            return live[-1]
        return self.new_worker(f"w{len(self.workers) + 1}").start()

    def send(self, tool: str, args: dict[str, Any], key: str | None = None) -> Intent:
        intent = Intent.create(tool, args, key=key)
        publish(self.app, intent, self.queue)
        return intent

    def meta(self, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """The task's final state and result, polled from the result backend."""

        def done() -> dict[str, Any] | None:
            meta: dict[str, Any] = self.app.backend.get_task_meta(task_id)
            return meta if meta["status"] in READY_STATES else None

        return wait_until(done, timeout=timeout, interval=0.05, what=f"task {task_id}")

    def result(self, task_id: str, timeout: float = 30.0) -> Any:
        meta = self.meta(task_id, timeout)
        assert meta["status"] == "SUCCESS", meta
        return meta["result"]

    def letter(self, timeout: float = 30.0, **match: Any) -> DeadLetter:
        """The one dead letter whose fields equal ``match``."""

        def found() -> DeadLetter | None:
            hits = [
                letter
                for letter in self.dlq.iter(LetterFilter(tool=match.get("tool")))
                if all(getattr(letter, k) == v for k, v in match.items())
            ]
            assert len(hits) <= 1, hits
            return hits[0] if hits else None

        return wait_until(found, timeout=timeout, interval=0.1, what=f"a dead letter {match}")

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        with contextlib.suppress(Exception), self.app.connection_for_write() as conn:
            # Best effort: RabbitMQ and SQS keep queues until deleted.
            self.app.amqp.queues[self.queue](conn.default_channel).delete()
        backend_client = getattr(self.app.backend, "client", None)
        self.app.close()
        if backend_client is not None:
            backend_client.close()
        self.store.close()
        self.dlq.close()


@pytest.fixture(scope="module")
def effects(pg_url: str) -> Iterator[Effects]:
    fx = Effects(pg_dsn(pg_url), f"celery_fx_{os.urandom(6).hex()}")
    fx.create()
    yield fx
    fx.drop()


def make_harness(
    tmp: Path,
    effects: Effects,
    *,
    broker_url: str,
    dedup_url: str,
    result_backend: str,
    transport_options: dict[str, Any] | None = None,
    **settings: Any,
) -> Harness:
    """A harness whose queue, key prefix and DLQ file are this module's own."""
    suffix = os.urandom(5).hex()
    config = {
        **TEST_SETTINGS,
        "broker_url": broker_url,
        "dedup_url": dedup_url,
        "dlq_url": f"sqlite:///{tmp / 'dlq.db'}",
        "key_prefix": f"celery-{suffix}",
        "celery_queue": f"intentq-test-{suffix}",
        **settings,
    }
    conf = Settings(**config)
    dlq = open_dlq_for(conf)
    dlq.create_schema()
    store = open_store_for(conf)
    store.create_schema()
    app = create_app(
        conf, registry, result_backend=result_backend, broker_transport_options=transport_options
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTQ_")}
    env.update({FX_DSN: effects.dsn, FX_TABLE: effects.table})
    return Harness(
        settings=conf,
        app=app,
        queue=conf.celery_queue,
        fx=effects,
        store=store,
        dlq=dlq,
        env=env,
        log_dir=tmp,
        result_backend=result_backend,
        transport_options=dict(transport_options or {}),
    )


@pytest.fixture(scope="module")
def result_backend(redis_url: str) -> str:
    return redis_db(redis_url, RESULT_DB)
