"""`intentq worker --transport celery` stops within the grace on SIGTERM, to its main process
alone or to its whole process group, on every broker; what it held goes back to the broker.

Real processes, real signals. The workers of one test start together (each takes seconds
to import Celery) and are stopped together.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from intentq.config import Settings
from intentq.connections import open_dlq_for, open_store_for
from tests.celery.stop_tools import MARKS
from tests.support.net import wait_until
from tests.support.services import ROOT

GRACE = 4.0
# Beyond the grace: the SQLite transport's polling loop notices a signal within ~4 s, and a
# cold shutdown then stops the pool.
SLACK = 8.0
READY = b" ready."


@dataclass
class CeleryWorker:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_bytes()[-5000:].decode("utf-8", "replace")

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the worker exited early:\n{self.log()}")
        return READY in self.log_path.read_bytes()

    def stop(self, group: bool) -> tuple[int, float]:
        """SIGTERM to the main process or to its whole group: (exit code, seconds taken)."""
        started = time.monotonic()
        if group:
            os.killpg(self.proc.pid, signal.SIGTERM)
        else:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(GRACE + SLACK)
        except subprocess.TimeoutExpired:
            code = -999
        return code, time.monotonic() - started

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.proc.wait(10)


def env_for(tmp: Path, broker_url: str, queue: str) -> dict[str, str]:
    settings = {
        "INTENTQ_BROKER_URL": broker_url,
        "INTENTQ_DEDUP_URL": f"sqlite:///{tmp / 'store.db'}",
        "INTENTQ_DLQ_URL": f"sqlite:///{tmp / 'store.db'}",
        "INTENTQ_CELERY_QUEUE": queue,
        "INTENTQ_SHUTDOWN_GRACE": str(GRACE),
        "INTENTQ_LEASE": "2",
    }
    conf = Settings(**{k[len("INTENTQ_") :].lower(): v for k, v in settings.items()})  # type: ignore[arg-type]
    for opened in (open_store_for(conf), open_dlq_for(conf)):
        opened.create_schema()
        opened.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTQ_")}
    return {**env, **settings, "PYTHONPATH": str(ROOT), MARKS: str(tmp / "marks")}


def start(env: dict[str, str], log_path: Path, *extra: str) -> CeleryWorker:
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "intentq.cli", "worker", "--transport", "celery",
             "--app", "tests.celery.stop_tools:registry", "--concurrency", "2", *extra],
            env=env, cwd=log_path.parent, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return CeleryWorker(proc, log_path)


def enqueue(env: dict[str, str], key: str, seconds: float) -> None:
    # A process of its own: kombu's SQLite transport warns in-process (warnings are errors).
    done = subprocess.run(
        [sys.executable, "-m", "intentq.cli", "enqueue", "nap", "--transport", "celery",
         "--args", f'{{"seconds": {seconds}}}', "--key", key],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def marks(env: dict[str, str]) -> list[str]:
    path = Path(env[MARKS])
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def brokers(redis_url: str, amqp_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "sqlite": f"sqla+sqlite:///{tmp_path / 'broker.db'}",
        "redis": f"{redis_url.rsplit('/', 1)[0]}/13",
        "rabbitmq": amqp_url,
    }


def test_idle_workers_exit_within_the_grace_on_sigterm_to_the_process_or_the_group(
    brokers: dict[str, str], tmp_path: Path
) -> None:
    # Given an idle worker per broker and per way of signalling, all started at once
    runs = {}
    for name, url in brokers.items():
        for group in (False, True):
            label = f"{name}-{'group' if group else 'main'}"
            folder = tmp_path / label
            folder.mkdir()
            env = env_for(folder, url, f"stop-{label}-{os.urandom(4).hex()}")
            runs[label] = (group, start(env, folder / "worker.log"))
    try:
        for _, worker in runs.values():
            wait_until(worker.ready, timeout=90, interval=0.2, what="a Celery worker")
        # When each gets SIGTERM
        with ThreadPoolExecutor(len(runs)) as pool:
            stopped = dict(
                zip(runs, pool.map(lambda run: run[1].stop(run[0]), runs.values()), strict=True)
            )
        # Then each exits 0 within the grace (and the polling slack)
        for label, (code, took) in stopped.items():
            assert code == 0, (label, took, runs[label][1].log())
            assert took < GRACE + SLACK, (label, took)
        # and said at start what it found
        for label, (_, worker) in runs.items():
            log = worker.log_path.read_text()
            assert "store sqlite:///" in log and ": reachable;" in log, (label, log[:2000])
            assert "broker " in log, label
    finally:
        for _, worker in runs.values():
            worker.kill()


def test_sqlite_worker_stopped_by_group_sigterm_mid_tool_gives_the_message_back(
    brokers: dict[str, str], tmp_path: Path
) -> None:
    env = env_for(tmp_path, brokers["sqlite"], f"stop-mid-{os.urandom(4).hex()}")
    first = start(env, tmp_path / "first.log")
    try:
        wait_until(first.ready, timeout=90, interval=0.2, what="the first worker")
        # Given a worker running a tool that would take a minute
        enqueue(env, "mid-1", 60)
        wait_until(lambda: "start mid-1 1" in marks(env), timeout=30, what="the tool's start")
        # When the whole process group gets SIGTERM (systemd's KillMode=control-group)
        code, took = first.stop(group=True)
        # Then the worker exits within the grace, without hanging on the pool's lock
        assert code == 0 and took < GRACE + SLACK, (code, took, first.log())
    finally:
        first.kill()
    # and the message went back to the broker: a worker (the stopping one may take it back
    # before its loop notices the signal) finishes the intent on its second attempt
    second = start(env, tmp_path / "second.log")
    try:
        wait_until(second.ready, timeout=90, interval=0.2, what="the second worker")
        wait_until(lambda: "done mid-1 2" in marks(env), timeout=60, what="the redelivery")
        assert second.stop(group=False)[0] == 0, second.log()
    finally:
        second.kill()
    assert "done mid-1 1" not in marks(env)
