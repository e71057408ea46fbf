"""Dead-letter stores for the contract suite: a fresh, empty one per test on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from intentq.dlq import DeadLetterStore, open_dlq
from intentq.dlq.sql import SqlDeadLetterStore
from intentq.dlq.sqs.store import SqsDeadLetterStore
from tests.support.net import free_port
from tests.support.services import SqsServer

BACKENDS = ["memory", "sqlite", "postgresql", "sqs"]
# Memory cannot be unreachable; every store that talks to something can.
REMOTE = ["sqlite", "postgresql", "sqs"]
SQS_CREDENTIALS = {"region": "us-east-1", "aws_access_key_id": "t", "aws_secret_access_key": "t"}


def open_sqs(server: SqsServer, name: str) -> SqsDeadLetterStore:
    """An SQS DLQ on the local server; a short-poll end of scan suits a local server."""
    store = open_dlq(
        f"sqs://{name}", endpoint_url=server.endpoint_url, scan_wait_seconds=0, **SQS_CREDENTIALS
    )
    assert isinstance(store, SqsDeadLetterStore)
    return store


@pytest.fixture(params=BACKENDS)
def dlq(request: pytest.FixtureRequest, unique: str, tmp_path: Path) -> Iterator[DeadLetterStore]:
    """An empty store, its table or queue made by ``create_schema`` and removed afterwards."""
    backend = request.param
    store: DeadLetterStore
    if backend == "memory":
        store = open_dlq("memory://")
    elif backend == "sqlite":
        store = open_dlq(f"sqlite:///{tmp_path / 'dlq.db'}", table_name=f"dl_{unique}")
    elif backend == "postgresql":
        pg_url = request.getfixturevalue("pg_url")
        store = open_dlq(pg_url, table_name=f"dl_{unique}")
    else:
        store = open_sqs(request.getfixturevalue("sqs_server"), f"dlq-{unique}")
    store.create_schema()
    try:
        yield store
    finally:
        if isinstance(store, SqlDeadLetterStore):
            store.drop_schema()
        if isinstance(store, SqsDeadLetterStore):
            store.client.delete_queue(QueueUrl=store.queue_url)
        store.close()


@pytest.fixture(params=REMOTE)
def unreachable_dlq(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DeadLetterStore]:
    """A store whose database or endpoint is not there: nothing listens on its port."""
    port = free_port()
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'no-such-dir' / 'dlq.db'}"
        store = open_dlq(url)
    elif request.param == "postgresql":
        store = open_dlq(f"postgresql+psycopg://postgres@127.0.0.1:{port}/intentq")
    else:
        # A queue URL: each call itself fails, not only the queue-URL lookup.
        url = f"sqs+http://127.0.0.1:{port}/000000000000/dlq"
        store = open_dlq(url, **SQS_CREDENTIALS)
    try:
        yield store
    finally:
        store.close()
