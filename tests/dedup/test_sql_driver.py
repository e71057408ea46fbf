"""PostgreSQL's direct path: connections kept between calls, what breaks them, and the
SQLAlchemy path that other drivers take; SQLite's kept connections; both across a fork."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import event

from intentq.dedup.base import Acquired, Busy, Cached, ClaimRequest
from intentq.dedup.sql.engine import make_engine, ping_when_idle
from intentq.dedup.sql.store import SqlDedupStore
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


# Seconds a forked child may take over its calls before the test kills it and fails.
CHILD_DEADLINE = 60.0
CHILD_KEYS = 30
# A call whose reply another process read off a shared socket would wait forever: the server
# ends a session that waits this long for its client, so such a call fails instead.
STUCK_SESSION = "-c idle_session_timeout=10s -c idle_in_transaction_session_timeout=10s"


@pytest.fixture(params=["postgresql", "sqlite"])
def forking_store(
    request: pytest.FixtureRequest, make_backend: Callable[[str], Backend]
) -> Iterator[SqlDedupStore]:
    """A store on engines of its own, as ``from_url`` makes them, to fork with."""
    if request.param == "sqlite":
        store = make_backend("sqlite").store
        assert isinstance(store, SqlDedupStore)
        yield store
        return
    store = SqlDedupStore.from_url(
        request.getfixturevalue("pg_url"),
        table_name=request.getfixturevalue("table"),
        connect_args={"options": STUCK_SESSION},
    )
    yield store
    store.close()


def _kept_connections(store: SqlDedupStore) -> list[Any]:
    assert store._driver is not None
    return store._driver.keeper.kept


def _connection_ids(store: SqlDedupStore) -> list[int]:
    """The connections the store keeps: PostgreSQL's server process behind each, asked on the
    connection itself; SQLite's connection objects (a forked child sees its parent's objects
    at the same addresses)."""
    assert store._driver is not None
    if store.engine.dialect.name != "postgresql":
        return [id(connection) for connection in store._driver.keeper.kept]
    with store._driver.keeper.using("pg_backend_pid") as held:
        held.cursor.execute("SELECT pg_backend_pid()")
        return [int(held.cursor.fetchone()[0])]


def _pooled_ids(store: SqlDedupStore) -> list[int]:
    """The same for the connection each of the store's pools hands out next (one sits idle
    there after a call through SQLAlchemy, or a transaction)."""
    ids = []
    for engine in dict.fromkeys((store.engine, store.autocommit_engine)):
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                ids.append(int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()))
            else:
                ids.append(id(conn.connection.dbapi_connection))
    return ids


def _child_calls(store: SqlDedupStore) -> dict[str, Any]:
    """In the forked child: calls of every kind through the parent's store object, and which
    connections they used (every checkout from a pool, or of a kept connection for a call)."""
    used: set[int] = set()

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        info = getattr(dbapi_connection, "info", None)  # psycopg's, read without a round trip
        used.add(info.backend_pid if info is not None else id(dbapi_connection))

    for engine in dict.fromkeys((store.engine, store.autocommit_engine)):
        event.listen(engine, "checkout", checkout)
    record = store.get(TOOL, "before")  # the SQLAlchemy path first, on the pool
    assert record is not None and record.result == "before", record
    for i in range(CHILD_KEYS):
        store.complete(TOOL, f"child-{i}", _claim(store, f"child-{i}").token, i)
    batch = store.claim_many([ClaimRequest(TOOL, f"child-batch-{i}", FP) for i in range(5)])
    for i, claim in enumerate(batch):
        assert isinstance(claim, Acquired), claim
        store.complete(TOOL, f"child-batch-{i}", claim.token, i)
    with store.transaction(TOOL, "child-txn", _claim(store, "child-txn").token) as txn:
        txn.complete("txn")
    assert store.claim(TOOL, "child-0", FP) == Cached(0)
    ids = {"kept": _connection_ids(store), "pooled": _pooled_ids(store)}
    store.close()  # closes the child's own connections only
    return {**ids, "used": sorted(used)}


def _run_child(store: SqlDedupStore, write: int) -> None:
    """The forked child's whole life: its calls, a report on the pipe, and its exit status."""
    status = 1
    try:
        try:
            report = {"ok": True, **_child_calls(store)}
            status = 0
        except BaseException as exc:
            report = {"ok": False, "error": repr(exc)}
        os.write(write, json.dumps(report).encode())
    finally:
        os._exit(status)  # no pytest teardown, no finalisers: only what the calls did


def _parent_calls(store: SqlDedupStore, n: int) -> None:
    key = f"parent-{n}"
    store.complete(TOOL, key, _claim(store, key).token, n)
    record = store.get(TOOL, key)
    assert record is not None and record.result == n, record


def test_a_forked_child_leaves_the_parents_kept_connections_alone(
    forking_store: SqlDedupStore,
) -> None:
    store = forking_store
    # Before the fork: a connection kept, and idle ones in the pools (a transaction's, a read's).
    claim = _claim(store, "before")
    with store.transaction(TOOL, "before", claim.token) as txn:
        txn.complete("before")
    assert store.get(TOOL, "before") is not None
    _parent_calls(store, 0)
    kept = _kept_connections(store)
    parent_ids = _connection_ids(store)
    parent_pooled = _pooled_ids(store)
    assert len(kept) == 1 and len(parent_ids) == 1

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        _run_child(store, write)
    os.close(write)
    # The parent goes on with its calls while the child makes its own.
    errors: list[BaseException] = []
    calls = 0
    status: int | None = None
    deadline = time.monotonic() + CHILD_DEADLINE
    try:
        while status is None:
            calls += 1
            try:
                _parent_calls(store, calls)
            except Exception as exc:
                errors.append(exc)
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(wait_status)
            elif time.monotonic() > deadline:
                raise AssertionError(f"the forked child ran past {CHILD_DEADLINE}s")
        with os.fdopen(read, "rb") as pipe:
            read = -1
            report = json.loads(pipe.read() or b"{}")
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        if read >= 0:
            os.close(read)

    assert status == 0 and report.get("ok"), report
    assert errors == [], errors
    # The child opened connections of its own.
    parents = {*parent_ids, *parent_pooled}
    assert report["kept"] and not set(report["kept"]) & parents, (report, parents)
    assert report["pooled"] and not set(report["pooled"]) & parents, (report, parents)
    assert report["used"] and not set(report["used"]) & parents, (report, parents)
    # The parent's session was not disturbed: the same connection, still in step with the
    # server, and its pools' connections too.
    after = _kept_connections(store)
    assert len(after) == 1 and after[0] is kept[0]
    assert _connection_ids(store) == parent_ids
    assert _pooled_ids(store) == parent_pooled
    for n in range(calls + 1, calls + 6):
        _parent_calls(store, n)
    assert _kept_connections(store)[0] is kept[0]
    assert store.claim(TOOL, f"child-{CHILD_KEYS - 1}", FP) == Cached(CHILD_KEYS - 1)
    assert store.claim(TOOL, "child-txn", FP) == Cached("txn")
    record = store.get(TOOL, "child-batch-4")
    assert record is not None and record.result == 4
