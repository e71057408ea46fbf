"""The examples against a real SQS worker running ``examples.tools``: the command-line
tests' environment (Redis store, PostgreSQL DLQ, the local SQS server)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Env, WorkerProcess, cli_db, env  # noqa: F401

APP = "examples.tools:registry"


class ExamplesWorker(WorkerProcess):
    """``intentq worker`` running the examples' tools."""

    def __init__(self, env: Env, log_path: Path) -> None:  # noqa: F811
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "intentq.cli", "worker", "--app", APP,
                 "--concurrency", "2"],
                cwd=env.cwd, env=env.process_env(), stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip


@pytest.fixture
def worker(env: Env, tmp_path: Path) -> Iterator[ExamplesWorker]:  # noqa: F811
    process = ExamplesWorker(env, tmp_path / "worker.log")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def settings_env(env: Env, monkeypatch: pytest.MonkeyPatch) -> Env:  # noqa: F811
    """The test's ``INTENTQ_*`` variables in this process, as a user's shell would have them."""
    for name, value in {**env.vars, **env.extra}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(env.cwd)
    return env
