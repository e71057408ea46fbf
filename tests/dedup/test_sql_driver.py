"""PostgreSQL's direct path: connections kept between calls, what breaks them, and the
SQLAlchemy path that other drivers take."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from intentq.dedup.base import Acquired, Busy, Cached, ClaimRequest
from intentq.dedup.sql import SqlDedupStore
from intentq.dedup.sql_engine import make_engine, ping_when_idle
from intentq.errors import StoreUnavailable
from tests.dedup.conftest import Backend
from tests.support.net import wait_until

TOOL = "send_invoice"
FP = "7" * 64


@pytest.fixture
def table(make_backend: Callable[[str], Backend]) -> str:
    """A dedup table of the test's own (dropped afterwards with its backend)."""
    store = make_backend("postgresql").store
    assert isinstance(store, SqlDedupStore)
    return store.table.name


@pytest.fixture
def open_store(pg_url: str, table: str) -> Iterator[Callable[..., SqlDedupStore]]:
    """Stores on engines of their own, closed after the test."""
    opened: list[SqlDedupStore] = []

    def open_(ping_idle: float | None = None, **options: Any) -> SqlDedupStore:
        engine = make_engine(pg_url)
        auto = make_engine(pg_url, isolation_level="AUTOCOMMIT", **options)
        if ping_idle is not None:
            ping_when_idle(auto, idle=ping_idle)
        store = SqlDedupStore(engine, table_name=table, autocommit_engine=auto, owns_engine=True)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def _kept_backends(store: SqlDedupStore) -> set[int]:
    """The server processes behind the connections the store keeps between calls."""
    assert store._driver is not None
    return {connection.info.backend_pid for connection in store._driver.keeper.kept}


def _terminate(pg_url: str, pids: set[int]) -> None:
    """End those server processes, as a failover or an administrator would."""
    assert pids
    dsn = "postgresql://" + pg_url.partition("://")[2]
    with psycopg.connect(dsn, autocommit=True) as admin:
        for pid in pids:
            # The timeout waits for the process to be gone, so the next call meets a dead
            # connection rather than racing its end.
            admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))


def _claim(store: SqlDedupStore, key: str) -> Acquired:
    claim = store.claim(TOOL, key, FP)
    assert isinstance(claim, Acquired), claim
    return claim


def test_calls_reuse_one_kept_connection_and_close_returns_it(
    open_store: Callable[..., SqlDedupStore],
) -> None:
    store = open_store()
    pool = store.autocommit_engine.pool
    for i in range(5):
        store.complete(TOOL, f"k{i}", _claim(store, f"k{i}").token, i)

    assert pool.checkedout() == 1  # kept between calls, not checked out per call
    store.close()
    assert pool.checkedout() == 0


def test_a_kept_connection_the_server_dropped_fails_one_call_then_the_store_reconnects(
    open_store: Callable[..., SqlDedupStore], pg_url: str
) -> None:
    store = open_store()
    token = _claim(store, "k").token
    _terminate(pg_url, _kept_backends(store))

    # The dropped connection was in use (no idle ping): that call cannot know its outcome.
    with pytest.raises(StoreUnavailable):
        store.complete(TOOL, "k", token, "done")

    store.complete(TOOL, "k", token, "done")
    assert store.claim(TOOL, "k", FP) == Cached("done")


def test_a_kept_connection_that_sat_idle_is_pinged_and_replaced_before_a_call(
    open_store: Callable[..., SqlDedupStore], pg_url: str
) -> None:
    store = open_store(ping_idle=0.0)  # every reuse counts as idle
    token = _claim(store, "k").token
    _terminate(pg_url, _kept_backends(store))

    store.complete(TOOL, "k", token, "done")  # no error: the ping found the dead connection
    assert store.claim(TOOL, "k", FP) == Cached("done")


def test_a_pool_with_nothing_to_spare_keeps_no_connection(
    open_store: Callable[..., SqlDedupStore],
) -> None:
    store = open_store(pool_size=1, max_overflow=0, pool_timeout=2)
    claim = _claim(store, "k")

    assert store.autocommit_engine.pool.checkedout() == 0
    record = store.get(TOOL, "k")  # through SQLAlchemy's pool: not starved
    assert record is not None and record.token == claim.token


def test_a_call_hands_its_connection_to_a_caller_waiting_on_the_pool(
    open_store: Callable[..., SqlDedupStore],
) -> None:
    store = open_store(pool_size=2, max_overflow=0, pool_timeout=5)
    _claim(store, "k")  # one connection kept
    answers: list[Any] = []

    def read() -> None:
        try:
            answers.append(store.get(TOOL, "k"))
        except BaseException as exc:
            answers.append(exc)

    with store.autocommit_engine.connect():  # the pool's other connection, in use
        reader = threading.Thread(target=read)
        reader.start()  # waits for a connection, or soon will
        assert isinstance(store.claim(TOOL, "k", FP), Busy)  # returns the kept one to the pool
        reader.join()

    assert len(answers) == 1 and answers[0] is not None and answers[0].key == "k", answers


def test_pre_ping_checks_out_a_connection_per_call(
    open_store: Callable[..., SqlDedupStore],
) -> None:
    store = open_store(pool_pre_ping=True)
    _claim(store, "k")
    assert store.autocommit_engine.pool.checkedout() == 0


def test_threads_share_a_small_pool_without_waiting_on_kept_connections(
    open_store: Callable[..., SqlDedupStore],
) -> None:
    store = open_store(pool_size=2, max_overflow=1, pool_timeout=5)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(30):
                key = f"t{n}-{i}"
                store.complete(TOOL, key, _claim(store, key).token, i)
                assert store.get(TOOL, key) is not None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert store.autocommit_engine.pool.checkedout() <= 2


def test_other_postgresql_drivers_take_the_sqlalchemy_path(
    open_store: Callable[..., SqlDedupStore],
) -> None:
    store = open_store()
    store._driver = None  # as on a driver other than psycopg 3
    token = _claim(store, "k").token
    assert isinstance(store.claim(TOOL, "k", FP), Busy)
    store.complete(TOOL, "k", token, {"ok": True})
    assert store.claim(TOOL, "k", FP) == Cached({"ok": True})

    # A lease that ran out is taken over: the second statement of the claim.
    assert isinstance(store.claim(TOOL, "abandoned", FP, lease=0.2), Acquired)
    taken = wait_until(
        lambda: _acquired(store.claim_many([ClaimRequest(TOOL, "abandoned", FP)])[0]),
        what="the lease to run out",
    )
    assert taken.takeover and taken.attempt == 2


def _acquired(claim: object) -> Acquired | None:
    if isinstance(claim, Busy):
        return None
    assert isinstance(claim, Acquired), claim
    return claim


def test_sqlite_calls_reuse_a_kept_connection_and_close_returns_it(
    make_backend: Callable[[str], Backend],
) -> None:
    store = make_backend("sqlite").store
    assert isinstance(store, SqlDedupStore)
    pool = store.engine.pool
    for i in range(5):
        store.complete(TOOL, f"k{i}", _claim(store, f"k{i}").token, i)
    assert store.claim_many([ClaimRequest(TOOL, "k0", FP)]) == [Cached(0)]

    assert pool.checkedout() == 1
    store.close()
    assert pool.checkedout() == 0
