"""Transactional completion on PostgreSQL and SQLite: the tool's rows and the record commit
together, and a lost lease takes the tool's rows down with it. Plus the unique-key backstop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import registry as orm_registry

from intentq.dedup.backstop import add_once, insert_once
from intentq.dedup.base import Acquired, Cached, State, TransactionalStore
from intentq.dedup.sql.engine import SQLITE_BEGIN
from intentq.dedup.sql.store import SqlDedupStore
from intentq.errors import DedupError, LeaseLost
from tests.dedup.conftest import Backend

TOOL = "book_slot"
FP = "e" * 64
SQL = ["postgresql", "sqlite"]


@pytest.fixture(params=SQL)
def sql(request: pytest.FixtureRequest, make_backend: Callable[[str], Backend]) -> Backend:
    return make_backend(request.param)


@pytest.fixture
def bookings(sql: Backend, unique: str) -> Iterator[Table]:
    """The tool's own table, with the idempotency key as its unique backstop."""
    store = sql.store
    assert isinstance(store, SqlDedupStore)
    table = Table(
        f"bookings_{unique}",
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("idem_key", String(200), nullable=False, unique=True),
        Column("slot", String(20), nullable=False),
    )
    table.create(store.engine)
    yield table
    table.drop(store.engine)


def _rows(store: SqlDedupStore, table: Table) -> list[tuple[Any, ...]]:
    # On SQLite a read-only transaction: it must not wait for the write lock a tool holds.
    with store.engine.execution_options(**{SQLITE_BEGIN: "DEFERRED"}).connect() as conn:
        return [tuple(r) for r in conn.execute(select(table.c.idem_key, table.c.slot))]


def _acquire(store: SqlDedupStore, key: str = "k1", lease: float = 60) -> Acquired:
    claim = store.claim(TOOL, key, FP, lease=lease)
    assert isinstance(claim, Acquired)
    return claim


def test_only_sql_stores_are_transactional(make_backend: Callable[[str], Backend]) -> None:
    assert isinstance(make_backend("postgresql").store, TransactionalStore)
    assert isinstance(make_backend("sqlite").store, TransactionalStore)
    assert not isinstance(make_backend("memory").store, TransactionalStore)
    assert not isinstance(make_backend("redis").store, TransactionalStore)


def test_the_tools_rows_and_the_completion_commit_together(sql: Backend, bookings: Table) -> None:
    store = sql.store
    assert isinstance(store, SqlDedupStore)
    claim = _acquire(store)

    with store.transaction(TOOL, "k1", claim.token) as txn:
        txn.session.execute(insert(bookings).values(idem_key="k1", slot="15:00"))
        txn.complete({"slot": "15:00"})
        assert _rows(store, bookings) == []  # nothing is visible outside before the commit
        assert store.get(TOOL, "k1").state is State.IN_PROGRESS  # type: ignore[union-attr]

    assert _rows(store, bookings) == [("k1", "15:00")]
    assert store.claim(TOOL, "k1", FP) == Cached({"slot": "15:00"})


def test_a_lost_lease_rolls_back_the_tools_rows(sql: Backend, bookings: Table) -> None:
    store = sql.store
    assert isinstance(store, SqlDedupStore)
    stale = _acquire(store, lease=0.3)
    owner = sql.eventually(
        lambda: _maybe_acquired(store.claim(TOOL, "k1", FP, lease=60)), what="a takeover"
    )

    with pytest.raises(LeaseLost), store.transaction(TOOL, "k1", stale.token) as txn:
        txn.session.execute(insert(bookings).values(idem_key="k1", slot="stale"))
        txn.complete({"slot": "stale"})

    assert _rows(store, bookings) == []
    record = store.get(TOOL, "k1")
    assert record is not None and (record.state, record.token) == (State.IN_PROGRESS, owner.token)


def test_an_error_in_the_tool_rolls_back_and_keeps_the_claim(sql: Backend, bookings: Table) -> None:
    store = sql.store
    assert isinstance(store, SqlDedupStore)
    claim = _acquire(store)

    with (
        pytest.raises(RuntimeError, match="payment declined"),
        store.transaction(TOOL, "k1", claim.token) as txn,
    ):
        txn.session.execute(insert(bookings).values(idem_key="k1", slot="15:00"))
        raise RuntimeError("payment declined")

    assert _rows(store, bookings) == []
    record = store.get(TOOL, "k1")
    assert record is not None and (record.state, record.token) == (State.IN_PROGRESS, claim.token)
    store.release(TOOL, "k1", claim.token)  # the owner still owns it


def test_a_block_that_never_completes_is_rolled_back(sql: Backend, bookings: Table) -> None:
    store = sql.store
    assert isinstance(store, SqlDedupStore)
    claim = _acquire(store)

    with (
        pytest.raises(DedupError, match="without complete"),
        store.transaction(TOOL, "k1", claim.token) as txn,
    ):
        txn.session.execute(insert(bookings).values(idem_key="k1", slot="15:00"))

    assert _rows(store, bookings) == []
    assert store.get(TOOL, "k1").state is State.IN_PROGRESS  # type: ignore[union-attr]


def test_the_executor_runs_a_transactional_tool_once(sql: Backend, bookings: Table) -> None:
    from intentq.executor import Executor
    from intentq.intent import Intent
    from intentq.outcome import Ack, Delivery
    from intentq.registry import Registry

    store = sql.store
    assert isinstance(store, SqlDedupStore)
    registry = Registry()
    runs: list[str] = []

    @registry.tool("book_slot", transactional=True)
    def book_slot(args: dict[str, Any], ctx: Any) -> dict[str, Any]:
        runs.append(ctx.key)
        ctx.session.execute(insert(bookings).values(idem_key=ctx.key, slot=args["slot"]))
        return {"booked": args["slot"]}

    executor = Executor(registry, store)
    body = Intent.create("book_slot", {"slot": "09:30"}, key="visit-1").to_json()
    delivery = Delivery("memory", "q", "m1")

    first = executor.process(body, delivery)
    second = executor.process(body, delivery)

    assert first == Ack({"booked": "09:30"})
    assert second == Ack({"booked": "09:30"}, cached=True)
    assert runs == ["visit-1"]
    assert _rows(store, bookings) == [("visit-1", "09:30")]


def test_insert_once_reads_a_duplicate_key_as_already_done(sql: Backend, bookings: Table) -> None:
    store = sql.store
    assert isinstance(store, SqlDedupStore)
    claim = _acquire(store)

    with store.transaction(TOOL, "k1", claim.token) as txn:
        assert insert_once(txn.session, insert(bookings).values(idem_key="k1", slot="a")) is True
        assert insert_once(txn.session, insert(bookings).values(idem_key="k1", slot="b")) is False
        # The SAVEPOINT kept the transaction usable after the duplicate.
        assert insert_once(txn.session, insert(bookings).values(idem_key="k2", slot="c")) is True
        txn.complete("ok")

    assert sorted(_rows(store, bookings)) == [("k1", "a"), ("k2", "c")]


def test_add_once_reads_a_duplicate_orm_object_as_already_done(
    sql: Backend, bookings: Table
) -> None:
    store = sql.store
    assert isinstance(store, SqlDedupStore)

    class Booking:
        def __init__(self, idem_key: str, slot: str | None) -> None:
            self.idem_key, self.slot = idem_key, slot

    mapper = orm_registry()
    mapper.map_imperatively(Booking, bookings)
    try:
        claim = _acquire(store)
        with store.transaction(TOOL, "k1", claim.token) as txn:
            assert add_once(txn.session, Booking("k1", "a")) is True
            duplicate = Booking("k1", "b")
            assert add_once(txn.session, duplicate) is False
            assert duplicate not in txn.session  # nothing left to flush again at commit
            assert add_once(txn.session, Booking("k2", "c")) is True
            with pytest.raises(IntegrityError):
                add_once(txn.session, Booking("k3", None))  # NOT NULL: not a duplicate
            txn.complete("ok")
    finally:
        mapper.dispose()

    assert sorted(_rows(store, bookings)) == [("k1", "a"), ("k2", "c")]


def test_insert_once_raises_other_integrity_errors(sql: Backend, bookings: Table) -> None:
    store = sql.store
    assert isinstance(store, SqlDedupStore)
    with store.engine.begin() as conn, pytest.raises(IntegrityError):
        insert_once(conn, insert(bookings).values(idem_key="k1", slot=None))
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(bookings)).scalar_one() == 0


def _maybe_acquired(claim: Any) -> Acquired | None:
    return claim if isinstance(claim, Acquired) else None
