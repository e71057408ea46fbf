"""The SQS worker (`intentq worker --transport sqs`) exits within the grace on SIGTERM, to its
main process alone or to its whole process group, and logs what it checked at start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.net import wait_until
from tests.support.services import ROOT, SqsServer

GRACE = 4.0
WAIT_SECONDS = 1  # a long poll in progress ends first


@pytest.mark.parametrize("group", [False, True], ids=["main", "group"])
def test_sqs_worker_exits_within_the_grace_on_sigterm(
    sqs_server: SqsServer, redis_url: str, tmp_path: Path, group: bool
) -> None:
    queue = sqs_server.new_queue()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTENTQ_", "AWS_"))}
    env.update(
        PYTHONPATH=str(ROOT), AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
        INTENTQ_TRANSPORT="sqs", INTENTQ_SQS_QUEUE=queue,
        INTENTQ_SQS_ENDPOINT_URL=sqs_server.endpoint_url,
        INTENTQ_SQS_WAIT_SECONDS=str(WAIT_SECONDS), INTENTQ_SHUTDOWN_GRACE=str(GRACE),
        INTENTQ_DEDUP_URL=redis_url, INTENTQ_KEY_PREFIX=f"stop-{os.urandom(4).hex()}",
        INTENTQ_DLQ_URL="memory://",
    )  # fmt: skip
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "intentq.cli", "worker",
             "--app", "intentq.demo.example:registry", "--concurrency", "2"],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        # Given a worker that checked its store, DLQ and queue and is consuming
        wait_until(lambda: b"consuming " in log_path.read_bytes(), timeout=60, what="the worker")
        text = log_path.read_text()
        assert "store redis://127.0.0.1:6379/0: reachable" in text, text
        assert "dead-letter store memory://: reachable" in text, text
        assert f"queue {queue}: reachable; receiving from it" in text, text
        # When it gets SIGTERM (its main process, or its whole group)
        started = time.monotonic()
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(GRACE + WAIT_SECONDS + 5)
        # Then it exits 0 within the grace
        assert code == 0, log_path.read_text()
        assert time.monotonic() - started < GRACE + WAIT_SECONDS + 2
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
