"""Writing: the outbox row commits or rolls back with the application's rows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.orm import Session

from intentq.errors import InvalidArgs, InvalidIntent
from intentq.outbox import Outbox, Relay
from intentq.registry import Registry
from tests.outbox.conftest import Place, drain


class Crash(Exception):
    """The agent dies between its own write and the commit."""


def test_a_rollback_sends_nothing(place: Place, sqs: Any) -> None:
    outbox = Outbox(place.settings)
    # Given an agent that records its decision and its intent, then crashes before commit
    with pytest.raises(Crash), Session(place.engine) as session, session.begin():
        session.execute(sa.insert(place.decisions).values(key="k-lost", what="book 15:00"))
        outbox.add(session, "book_slot", {"slot": "15:00"}, key="k-lost")
        raise Crash
    # When a relay runs
    with Relay(place.settings) as relay:
        totals = relay.drain()
    # Then neither the decision nor the intent exists, and nothing was sent
    assert place.decided() == [] and place.states() == {}
    assert totals.sent == 0
    assert drain(sqs, str(place.queue_url), 0, wait=0, rounds=1) == []


def test_a_commit_sends_exactly_one_message_per_intent(place: Place, sqs: Any) -> None:
    outbox = Outbox(place.settings)
    keys = [f"k-{i}" for i in range(23)]
    with Session(place.engine) as session, session.begin():
        for key in keys:
            session.execute(sa.insert(place.decisions).values(key=key, what="book"))
            outbox.add(session, "book_slot", {"slot": key}, key=key)
    with place.engine.begin() as conn:  # a Connection too, and several intents in one INSERT
        added = outbox.add_many(conn, [("notify", {"n": i}, f"n-{i}") for i in range(5)])
    with Relay(place.settings) as relay:
        assert relay.drain().sent == 28
        assert relay.drain().sent == 28  # nothing left: a second pass sends nothing more
    got = drain(sqs, str(place.queue_url), 28)
    assert sorted(i.key for i in got) == sorted([*keys, *(i.key for i in added)])
    assert len({i.intent_id for i in got}) == 28
    assert place.states() == {"sent": 28}


def test_an_oversized_envelope_is_refused_inside_the_callers_transaction(place: Place) -> None:
    settings = place.with_(max_message_bytes=2048)
    outbox = Outbox(settings)
    with (
        pytest.raises(InvalidIntent) as refused,
        Session(place.engine) as session,
        session.begin(),
    ):
        session.execute(sa.insert(place.decisions).values(key="big", what="a long letter"))
        outbox.add(session, "send_letter", {"text": "x" * 4096}, key="big")
    assert refused.value.reason == "too_large"
    assert "over the limit of 2048" in str(refused.value) and "INTENTQ_MAX_MESSAGE_BYTES" in str(
        refused.value
    )
    assert place.decided() == [] and place.states() == {}


def test_the_registry_checks_arguments_before_anything_is_written(place: Place) -> None:
    registry = Registry()

    class Slot(BaseModel):
        slot: str

    @registry.tool("book_slot", args=Slot)
    def book_slot(args: Slot, ctx: Any) -> str:
        return args.slot

    outbox = Outbox(place.settings, registry)
    with pytest.raises(InvalidArgs), Session(place.engine) as session, session.begin():
        outbox.add(session, "book_slot", {"time": "15:00"})
    assert place.states() == {}


def test_the_row_holds_the_envelope_destination_and_time(place: Place) -> None:
    outbox = Outbox(place.settings)
    with place.engine.begin() as conn:
        intent = outbox.add(conn, "book_slot", {"slot": "15:00"}, key="k1", meta={"who": "a"})
    with place.engine.connect() as conn:
        row = conn.execute(sa.select(place.db.table)).mappings().one()
    assert row["intent_id"] == intent.intent_id and row["key"] == "k1"
    assert row["body"].encode() == intent.to_json()
    assert (row["transport"], row["queue"]) == ("sqs", place.queue_url)
    assert row["state"] == "pending" and row["created_at"] > 1.7e9


def test_an_async_session_commits_its_intent_with_its_rows(
    make_place: Any, sqs_server: Any, sqs: Any
) -> None:
    pytest.importorskip("greenlet", reason="SQLAlchemy's asyncio needs greenlet")
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    # aiosqlite is not installed: asyncio on PostgreSQL (psycopg 3 is async itself).
    queue_url = sqs_server.new_queue()
    place = make_place(
        "postgresql", transport="sqs", sqs_queue=queue_url,
        sqs_endpoint_url=sqs_server.endpoint_url,
    )  # fmt: skip
    outbox = Outbox(place.settings)

    async def agent() -> None:
        engine = create_async_engine(place.url)
        try:
            async with AsyncSession(engine) as session, session.begin():
                await session.execute(sa.insert(place.decisions).values(key="a1", what="book"))
                await outbox.add_async(session, "book_slot", {"slot": "09:00"}, key="a1")
            with pytest.raises(Crash):
                async with engine.connect() as conn, conn.begin():
                    await outbox.add_many_async(conn, [("book_slot", {"slot": "10:00"}, "a2")])
                    raise Crash
        finally:
            await engine.dispose()

    asyncio.run(agent())
    with Relay(place.settings) as relay:
        assert relay.drain().sent == 1
    assert [i.key for i in drain(sqs, queue_url, 1)] == ["a1"]
    assert place.decided() == ["a1"]
