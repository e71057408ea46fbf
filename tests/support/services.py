"""Fixtures for the real services: PostgreSQL, Redis, RabbitMQ, and a local SQS server.

A missing service fails the test with the command that starts it; nothing is skipped.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.net import free_port, port_open, wait_until

ROOT = Path(__file__).resolve().parents[2]
MINISTACK_VERSION = "1.5.33"
MINISTACK_ENV = ROOT / ".cache" / f"ministack-{MINISTACK_VERSION}"

START = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": (
        'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
        "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
    ),
    "RabbitMQ": "rabbitmq-server -detached",
}


def require(name: str, port: int) -> None:
    if not port_open(port):
        pytest.fail(f"{name} is not answering on 127.0.0.1:{port}; start it with: {START[name]}")


@pytest.fixture(scope="session")
def redis_url() -> str:
    require("Redis", 6379)
    return "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def amqp_url() -> str:
    require("RabbitMQ", 5672)
    return "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A database of the test run's own on the local PostgreSQL server."""
    require("PostgreSQL", 5432)
    import psycopg

    name = "intentq_test"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


@pytest.fixture
def unique() -> str:
    """A short suffix no other test uses: for key prefixes, table and queue names."""
    return uuid.uuid4().hex[:12]


def ensure_ministack() -> Path:
    """The pinned local SQS server, in its own virtual environment (it pins botocore)."""
    exe = MINISTACK_ENV / "bin" / "ministack"
    if not exe.exists():
        subprocess.run(["uv", "venv", "-q", "--python", "3.11", str(MINISTACK_ENV)], check=True)
        subprocess.run(
            ["uv", "pip", "install", "-q", "--python", str(MINISTACK_ENV / "bin" / "python"),
             f"ministack=={MINISTACK_VERSION}"],
            check=True,
        )  # fmt: skip
    return exe


class SqsServer:
    """A running ministack serving SQS on 127.0.0.1:``port``."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, SERVICES="sqs", BIND_HOST="127.0.0.1", GATEWAY_PORT=str(self.port))
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(ensure_ministack())], env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        wait_until(lambda: port_open(self.port), timeout=30, what="the local SQS server")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "sqs", endpoint_url=self.endpoint_url, region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test",
        )  # fmt: skip

    def new_queue(self, name: str | None = None, fifo: bool = False, **attributes: str) -> str:
        """Create a queue (a fresh name unless given) and return its URL."""
        name = name or f"q-{uuid.uuid4().hex[:10]}"
        if fifo:
            name = name if name.endswith(".fifo") else f"{name}.fifo"
            attributes.setdefault("FifoQueue", "true")
        return str(self.client().create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


@pytest.fixture(scope="session")
def sqs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqsServer]:
    """The local SQS server for the whole run, on a free port, stopped at the end."""
    server = SqsServer(free_port(), tmp_path_factory.mktemp("sqs") / "ministack.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
