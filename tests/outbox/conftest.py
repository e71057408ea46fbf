"""The outbox against real databases (PostgreSQL, SQLite files) and the local SQS server.

Each test gets a table of its own (``outbox_<unique>``) and a queue of its own; PostgreSQL
tests share the run's database, SQLite ones a file in the test's folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from intentq.config.settings import Settings
from intentq.intent import Intent
from intentq.migrations import upgrade
from intentq.outbox.database import OutboxDatabase
from tests.support.services import SqsServer


def decisions_table(name: str) -> sa.Table:
    """The application's own table, written in the same transactions as the outbox rows."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("what", sa.Text, nullable=False),
    )


@dataclass
class Place:
    """An application database with the outbox table in it, and settings naming both."""

    url: str
    table: str
    engine: sa.Engine
    db: OutboxDatabase
    settings: Settings
    decisions: sa.Table
    queue_url: str | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def with_(self, **changes: Any) -> Settings:
        return self.settings.model_copy(update=changes)

    def states(self) -> dict[str, int]:
        c = self.db.table.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(c.state, sa.func.count()).group_by(c.state)).all()
        return {str(state): int(n) for state, n in rows}

    def decided(self) -> list[str]:
        with self.engine.connect() as conn:
            return [str(k) for k in conn.execute(sa.select(self.decisions.c.key)).scalars()]


def drain(
    client: Any, queue_url: str, expected: int, *, wait: int = 1, rounds: int = 30
) -> list[Intent]:
    """Receive and delete messages until ``expected`` arrived (or the rounds run out), and
    then one more short receive to see that no extra one follows."""
    intents: list[Intent] = []
    for _ in range(rounds):
        reply = client.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
            MessageAttributeNames=["All"],
        )  # fmt: skip
        for message in reply.get("Messages", []):
            intents.append(Intent.parse(message["Body"].encode()))
            client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if len(intents) >= expected and not reply.get("Messages"):
            break
    return intents


@pytest.fixture(params=["postgresql", "sqlite"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_place(
    request: pytest.FixtureRequest, unique: str, tmp_path: Path
) -> Iterator[Callable[..., Place]]:
    """``make_place(dialect, **settings)``: a database with a fresh outbox table."""
    made: list[Place] = []

    def make(dialect: str, **fields: Any) -> Place:
        table = f"outbox_{unique}_{len(made)}"
        if dialect == "postgresql":
            url = str(request.getfixturevalue("pg_url"))
        else:
            url = f"sqlite:///{tmp_path / f'app{len(made)}.db'}"
        base: dict[str, Any] = {
            "outbox_url": url, "outbox_table": table, "dedup_url": "memory://",
            "dlq_url": "memory://", "tracing": False, "outbox_poll_interval": 0.2,
            "outbox_lease": 10.0,  # a loaded machine must not lose it between renewals
        }  # fmt: skip
        settings = Settings(**{**base, **fields})
        db = OutboxDatabase.from_url(url, table)
        upgrade(db.schema_target)
        engine = sa.create_engine(url)
        decisions = decisions_table(f"decisions_{unique}_{len(made)}")
        decisions.create(engine)
        place = Place(url, table, engine, db, settings, decisions)
        made.append(place)
        return place

    yield make
    for place in made:
        with place.engine.begin() as conn:
            names = (place.table, f"{place.table}_relay", f"{place.table}_version",
                     place.decisions.name)  # fmt: skip
            for name in names:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}" CASCADE'
                                     if place.dialect == "postgresql" else
                                     f'DROP TABLE IF EXISTS "{name}"'))  # fmt: skip
            if place.dialect == "postgresql":
                conn.execute(sa.text(f'DROP FUNCTION IF EXISTS "{place.table}_notify"()'))
        place.db.close()
        place.engine.dispose()


@pytest.fixture
def place(dialect: str, make_place: Callable[..., Place], sqs_server: SqsServer) -> Place:
    """PostgreSQL or SQLite, the SQS transport on a fresh standard queue."""
    queue_url = sqs_server.new_queue()
    made = make_place(
        dialect, transport="sqs", sqs_queue=queue_url, sqs_endpoint_url=sqs_server.endpoint_url
    )
    made.queue_url = queue_url
    return made


@pytest.fixture
def sqs(sqs_server: SqsServer) -> Iterator[Any]:
    client = sqs_server.client()
    yield client
    client.close()
