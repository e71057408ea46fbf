"""``intentq worker`` on Celery with the embedded default (SQLite broker, store and DLQ)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from intentq.cli.exits import ExitCode
from tests.cli.conftest import ROOT, Env


def test_celery_worker_runs_an_intent_and_stops_on_sigterm(tmp_path: Path) -> None:
    embedded = Env({}, tmp_path)  # nothing set: SQLite files in the working directory
    assert embedded.run("init").code == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTQ_")}
    env["PYTHONPATH"] = str(ROOT)
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "intentq.cli", "worker", "--app",
             "intentq.demo.example:registry", "--pool", "threads", "--concurrency", "2"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        # Real processes: kombu's SQLite transport warns about an SQLAlchemy deprecation,
        # which this suite's warnings-as-errors would turn into a failure in-process.
        ran = embedded.spawn(
            "enqueue", "echo", "--args", '{"text": "hi"}', "--key", "e1", "--wait", "60", "--json"
        )
        assert ran.code == 0, (ran, (tmp_path / "worker.log").read_text())
        answer = json.loads(ran.stdout)
        assert (answer["status"], answer["result"]) == ("completed", {"text": "hi", "attempt": 1})
        dead = embedded.spawn("enqueue", "nope", "--args", "{}", "--wait", "60")
        assert dead.code == ExitCode.DEAD
        assert "unknown_tool" in dead.one_error_line()
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(30)
    assert code == 0, (tmp_path / "worker.log").read_text()
