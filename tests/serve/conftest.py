"""An SQS worker for ``tests.serve.tools`` and ``intentq mcp`` servers against it; the
command-line tests' environment (Redis store, PostgreSQL DLQ, the local SQS server)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Env, WorkerProcess, cli_db, effects_dsn, env  # noqa: F401
from tests.serve.tools import EFFECTS_DSN, TABLE_DDL

APP = "tests.serve.tools:registry"


class ServeWorker(WorkerProcess):
    """``intentq worker`` running the MCP tests' tools."""

    def __init__(self, env: Env, cli_db: str, log_path: Path) -> None:  # noqa: F811
        self.log_path = log_path
        process_env = {**env.process_env(), EFFECTS_DSN: effects_dsn(cli_db)}
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "intentq.cli", "worker", "--app", APP,
                 "--concurrency", "2"],
                cwd=env.cwd, env=process_env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip


@pytest.fixture
def worker(env: Env, cli_db: str, tmp_path: Path) -> Iterator[ServeWorker]:  # noqa: F811
    process = ServeWorker(env, cli_db, tmp_path / "worker.log")
    try:
        yield process
    finally:
        process.stop()


def effects(cli_db: str, slot: str) -> int:  # noqa: F811
    """How many times a tool's side effect ran for ``slot``."""
    import psycopg

    with psycopg.connect(effects_dsn(cli_db), autocommit=True) as conn:
        conn.execute(TABLE_DDL)
        row = conn.execute("SELECT count(*) FROM mcp_effects WHERE slot = %s", (slot,)).fetchone()
    return int(row[0]) if row else 0
