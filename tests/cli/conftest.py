"""The command line against real services: a database of its own, Redis, the local SQS server.

Commands run in-process through Typer's ``CliRunner`` (fast), or as real processes where a
test needs one (a crash, a terminal, the demo, the worker).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from intentq.cli.app import app
from intentq.config.settings import Settings
from intentq.dedup import DedupStore, open_store
from intentq.dlq import DeadLetter, DeadLetterStore, Reason, open_dlq
from intentq.intent import Intent
from tests.support.services import SqsServer

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Ran:
    """A finished command: exit code and both streams."""

    code: int
    stdout: str
    stderr: str

    def one_error_line(self) -> str:
        """The single error line on stderr (asserts there is exactly one, and no traceback)."""
        lines = self.stderr.splitlines()
        assert len(lines) == 1, f"expected one error line, got: {self.stderr!r}"
        assert lines[0].startswith("intentq: error: "), lines[0]
        assert "Traceback" not in self.stderr and "Traceback" not in self.stdout
        return lines[0]


def _clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("INTENTQ_", "AWS_"))}


@dataclass
class Env:
    """``INTENTQ_*`` for one test: every command it runs sees these and nothing else."""

    vars: dict[str, str]
    cwd: Path
    extra: dict[str, str] = field(default_factory=dict)

    def with_(self, **overrides: str) -> Env:
        return Env({**self.vars, **overrides}, self.cwd)

    def settings(self) -> Settings:
        fields = {k[len("INTENTQ_") :].lower(): v for k, v in self.vars.items()}
        return Settings(**fields)  # type: ignore[arg-type]

    def run(self, *args: str, input: str | None = None) -> Ran:
        """The command in this process (``CliRunner``), with exactly these variables."""
        unset: dict[str, str | None] = {
            k: None for k in os.environ if k.startswith("INTENTQ_") and k not in self.vars
        }
        runner = CliRunner()
        old = Path.cwd()
        os.chdir(self.cwd)
        try:
            result = runner.invoke(app, list(args), env={**unset, **self.vars}, input=input)
        finally:
            os.chdir(old)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Ran(result.exit_code, result.stdout, result.stderr)

    def process_env(self) -> dict[str, str]:
        return {**_clean_environ(), **self.vars, "PYTHONPATH": str(ROOT), **self.extra}

    def spawn(self, *args: str, timeout: float = 60) -> Ran:
        """The command as a real process: ``python -m intentq.cli ARGS``."""
        done = subprocess.run(
            [sys.executable, "-m", "intentq.cli", *args],
            cwd=self.cwd, env=self.process_env(), capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        return Ran(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="session")
def cli_db(pg_url: str) -> Iterator[str]:
    """A PostgreSQL database of these tests' own: no other suite's letters in the listings."""
    import psycopg

    name = f"intentq_cli_{uuid.uuid4().hex[:8]}"
    admin = "host=127.0.0.1 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def env(
    cli_db: str, redis_url: str, sqs_server: SqsServer, unique: str, tmp_path: Path
) -> Iterator[Env]:
    """Redis store (a prefix of this test's), PostgreSQL DLQ (emptied), SQS transport.

    The tables and queues exist: ``init_resources`` ran, as ``intentq init`` would.
    """
    from intentq.ops.init import init_resources

    vars = {
        "INTENTQ_TRANSPORT": "sqs",
        "INTENTQ_DEDUP_URL": redis_url,
        "INTENTQ_KEY_PREFIX": f"t{unique}",
        "INTENTQ_DLQ_URL": cli_db,
        "INTENTQ_SQS_ENDPOINT_URL": sqs_server.endpoint_url,
        "INTENTQ_SQS_QUEUE": f"q-{unique}",
        "INTENTQ_SQS_DLQ": f"q-{unique}-dlq",
        "INTENTQ_SQS_WAIT_SECONDS": "1",
        "INTENTQ_BACKOFF_BASE": "0.1",
        "INTENTQ_BACKOFF_MAX": "0.5",
        "INTENTQ_SHUTDOWN_GRACE": "5",
    }
    test_env = Env(vars, tmp_path, extra={"AWS_ACCESS_KEY_ID": "test",
                                          "AWS_SECRET_ACCESS_KEY": "test"})  # fmt: skip
    settings = test_env.settings()
    init_resources(settings)
    with closing(open_dlq(cli_db)) as letters:
        letters.delete_many()  # one table for the whole suite, emptied before each test
    try:
        yield test_env
    finally:
        _clean_up(settings, sqs_server)


def _clean_up(settings: Settings, sqs_server: SqsServer) -> None:
    import redis

    with redis.Redis.from_url(settings.dedup_url) as client:
        keys = list(client.scan_iter(f"{settings.key_prefix}:*", count=10_000))
        if keys:
            client.delete(*keys)
    client = sqs_server.client()
    try:
        for name in (settings.sqs_queue, settings.sqs_dlq):
            url = client.get_queue_url(QueueName=name)["QueueUrl"]
            client.delete_queue(QueueUrl=url)
    finally:
        client.close()


@pytest.fixture
def dlq(env: Env) -> Iterator[DeadLetterStore]:
    """The DLQ the commands use, for seeding letters and looking at them."""
    with closing(open_dlq(env.vars["INTENTQ_DLQ_URL"])) as store:
        yield store


@pytest.fixture
def store(env: Env) -> Iterator[DedupStore]:
    """The idempotency store the commands use."""
    with closing(open_store(env.vars["INTENTQ_DEDUP_URL"], env.vars["INTENTQ_KEY_PREFIX"])) as s:
        yield s


@pytest.fixture
def sqs(sqs_server: SqsServer) -> Iterator[Any]:
    client = sqs_server.client()
    try:
        yield client
    finally:
        client.close()


class Queue:
    """The test's SQS queue, read directly: what did the commands send?"""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name
        self.url = str(client.get_queue_url(QueueName=name)["QueueUrl"])

    def receive(self, expected: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Receive (and delete) messages until ``expected`` arrived or ``timeout`` passed."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            answer = self.client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                AttributeNames=["SentTimestamp"],
            )  # fmt: skip
            for message in answer.get("Messages", []):
                got.append(message)
                self.client.delete_message(
                    QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"]
                )
        return got

    def depth(self) -> int:
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())


@pytest.fixture
def queue(env: Env, sqs: Any) -> Queue:
    return Queue(sqs, env.vars["INTENTQ_SQS_QUEUE"])


def make_letter(
    tool: str = "book_slot",
    key: str | None = None,
    reason: Reason = Reason.SCHEMA,
    *,
    args: Mapping[str, Any] | None = None,
    error_type: str = "InvalidArgs",
    age: timedelta = timedelta(0),
    queue: str | None = None,
    body: bytes | None = None,
) -> DeadLetter:
    """A letter whose body is a real envelope (so a replay can re-send it)."""
    intent = Intent.create(tool, args or {"slot": "15:00"}, key=key or f"k-{uuid.uuid4().hex[:10]}")
    dead_at = datetime.now(UTC) - age
    return DeadLetter(
        id="",
        body=intent.to_json() if body is None else body,
        reason=reason,
        tool=tool,
        key=intent.key,
        intent_id=intent.intent_id,
        error_type=error_type,
        error_message=f"{error_type} happened",
        traceback="Traceback (most recent call last):\n  ...\nValueError: boom\n",
        attempts=1,
        source_transport="sqs",
        source_queue=queue,
        first_seen=dead_at,
        dead_at=dead_at,
    )


def effects_dsn(cli_db: str) -> str:
    """The psycopg form of the test database URL."""
    return cli_db.replace("postgresql+psycopg://", "postgresql://")


def effects(cli_db: str, key: str) -> int:
    """How many times a tool's side effect ran under ``key``."""
    import psycopg

    from tests.cli.tools import TABLE_DDL

    with psycopg.connect(effects_dsn(cli_db), autocommit=True) as conn:
        conn.execute(TABLE_DDL)
        row = conn.execute("SELECT count(*) FROM cli_effects WHERE key = %s", (key,)).fetchone()
    return int(row[0]) if row else 0


class WorkerProcess:
    """``intentq worker --transport sqs`` as a real process, stopped with SIGTERM."""

    def __init__(self, env: Env, cli_db: str, log_path: Path) -> None:
        self.log_path = log_path
        process_env = {**env.process_env(), "CLI_EFFECTS_DSN": effects_dsn(cli_db)}
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "intentq.cli", "worker", "--app",
                 "tests.cli.tools:registry", "--concurrency", "2"],
                cwd=env.cwd, env=process_env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def worker(env: Env, cli_db: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A running SQS worker for the test's queue, running ``tests.cli.tools``."""
    process = WorkerProcess(env, cli_db, tmp_path / "worker.log")
    try:
        yield process
    finally:
        process.stop()
