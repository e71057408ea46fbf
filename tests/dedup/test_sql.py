"""What only the SQL store has: its schema, garbage collection, statements and round trips."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, inspect, text

from intentq.dedup.base import Acquired, Cached, ClaimRequest
from intentq.dedup.sql.store import SqlDedupStore
from intentq.errors import ConfigError
from tests.dedup.conftest import Backend

TOOL = "ship_parcel"
FP = "9" * 64


@pytest.fixture(params=["postgresql", "sqlite"])
def sql(request: pytest.FixtureRequest, make_backend: Callable[[str], Backend]) -> Backend:
    return make_backend(request.param)


def _store(backend: Backend) -> SqlDedupStore:
    assert isinstance(backend.store, SqlDedupStore)
    return backend.store


def test_create_schema_is_idempotent_and_indexes_expiry(sql: Backend) -> None:
    store = _store(sql)
    store.create_schema()
    store.create_schema()

    inspector = inspect(store.engine)
    assert inspector.get_pk_constraint(store.table.name)["constrained_columns"] == ["store_key"]
    indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes(store.table.name)}
    assert indexes[f"ix_{store.table.name}_expires_at"] == ["expires_at"]


@pytest.mark.parametrize("name", ["", "1abc", "bad-name", "x; drop table y", "a" * 49])
def test_a_bad_table_name_is_refused(sql: Backend, name: str) -> None:
    with pytest.raises(ConfigError):
        SqlDedupStore(_store(sql).engine, table_name=name)


def test_sqlite_runs_in_wal_mode(make_backend: Callable[[str], Backend]) -> None:
    store = _store(make_backend("sqlite"))
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() >= 1000


def test_gc_deletes_expired_rows_in_bounded_batches(sql: Backend) -> None:
    store = SqlDedupStore(_store(sql).engine, table_name=_store(sql).table.name, gc_batch=2)
    for i in range(4):
        store.complete(TOOL, f"done-{i}", _token(store.claim(TOOL, f"done-{i}", FP)), i, ttl=0.2)
    store.claim(TOOL, "running", FP, lease=0.2, ttl=0.2)  # in progress, then abandoned
    store.complete(TOOL, "live", _token(store.claim(TOOL, "live", FP)), "kept", ttl=3600)
    statements = _count_statements(store)

    sql.eventually(lambda: store.get(TOOL, "running") is None, what="records to expire")
    with statements as counted:
        assert store.gc() == 5

    assert len(counted) == 3  # 2 + 2 + 1: no statement deletes more than a batch
    assert store.gc() == 0
    assert store.claim(TOOL, "live", FP) == Cached("kept")
    with store.engine.connect() as conn:
        remaining = conn.execute(text(f"SELECT count(*) FROM {store.table.name}")).scalar_one()
    assert remaining == 1


def test_a_postgresql_call_is_one_round_trip(
    make_backend: Callable[[str], Backend], tmp_path: Path
) -> None:
    store = _store(make_backend("postgresql"))
    store.claim(TOOL, "warm-up", FP)
    token = ""

    def claim_new() -> None:
        nonlocal token
        token = _token(store.claim(TOOL, "k", FP, lease=60))

    def round_trips(call: Callable[[], Any]) -> int:
        with _wire(store, tmp_path / "trace.txt") as requests:
            call()
        return len(requests)

    assert round_trips(claim_new) == 1
    assert round_trips(lambda: store.claim(TOOL, "k", FP)) == 1
    assert round_trips(lambda: store.extend(TOOL, "k", token, 60)) == 1
    assert round_trips(lambda: store.complete(TOOL, "k", token, {"ok": 1})) == 1
    assert round_trips(lambda: store.claim(TOOL, "k", FP)) == 1
    batch = [ClaimRequest(TOOL, f"b{i}", FP) for i in range(9)] + [ClaimRequest(TOOL, "k", FP)]
    claims: list[Any] = []
    assert round_trips(lambda: claims.extend(store.claim_many(batch))) == 1
    assert all(isinstance(c, Acquired) for c in claims[:9]) and claims[9] == Cached({"ok": 1})


@contextmanager
def _wire(store: SqlDedupStore, path: Path) -> Iterator[list[str]]:
    """Requests the client sends (libpq's trace: each ends with a Sync or a simple Query)."""
    traced: dict[int, Any] = {}
    requests: list[str] = []
    with path.open("w") as sink:

        def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            if id(dbapi_connection) not in traced:
                dbapi_connection.pgconn.trace(sink.fileno())
                traced[id(dbapi_connection)] = dbapi_connection

        engines = {store.engine, store.autocommit_engine}
        for engine in engines:
            event.listen(engine, "checkout", checkout)
        try:
            yield requests
        finally:
            for engine in engines:
                event.remove(engine, "checkout", checkout)
            for connection in traced.values():
                connection.pgconn.untrace()
    for line in path.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) > 3 and fields[1] == "F" and fields[3] in ("Sync", "Query"):
            requests.append(line)


def test_sqlite_statements_per_call(make_backend: Callable[[str], Backend]) -> None:
    """A new key and its completion are one statement each, without BEGIN or COMMIT."""
    sql = make_backend("sqlite")
    store = _store(sql)
    store.claim(TOOL, "warm-up", FP)

    def statements(call: Callable[[], Any]) -> list[str]:
        with _sqlite_trace(store) as sent:
            call()
        return [s.split()[0] for s in sent]

    token = ""

    def claim_new() -> None:
        nonlocal token
        token = _token(store.claim(TOOL, "k", FP))

    assert statements(claim_new) == ["INSERT"]
    assert statements(lambda: store.complete(TOOL, "k", token, 1)) == ["UPDATE"]
    # A key that exists: the insert, then a read; a takeover only when the record allows.
    assert statements(lambda: store.claim(TOOL, "k", FP)) == ["INSERT", "SELECT"]
    store.claim(TOOL, "gone", FP, lease=0.05)
    sql.eventually(lambda: statements(lambda: store.claim(TOOL, "gone", FP)) == [
        "INSERT", "SELECT", "UPDATE"
    ], what="a takeover")  # fmt: skip
    batch = [ClaimRequest(TOOL, f"b{i}", FP) for i in range(3)]
    assert statements(lambda: store.claim_many(batch)) == ["BEGIN", *["INSERT"] * 3, "COMMIT"]


@contextmanager
def _sqlite_trace(store: SqlDedupStore) -> Iterator[list[str]]:
    """Every statement SQLite runs on the store's connections (sqlite3's trace callback)."""
    sent: list[str] = []
    traced: dict[int, Any] = {}

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if id(dbapi_connection) not in traced:
            dbapi_connection.set_trace_callback(sent.append)
            traced[id(dbapi_connection)] = dbapi_connection

    event.listen(store.engine, "checkout", checkout)
    try:
        yield sent
    finally:
        event.remove(store.engine, "checkout", checkout)
        for connection in traced.values():
            connection.set_trace_callback(None)


@contextmanager
def _counting(store: SqlDedupStore) -> Iterator[list[str]]:
    sent: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith(("BEGIN", "PRAGMA")):
            sent.append(statement)

    event.listen(store.engine, "before_cursor_execute", before)
    try:
        yield sent
    finally:
        event.remove(store.engine, "before_cursor_execute", before)


def _count_statements(store: SqlDedupStore) -> Any:
    """SQL statements the store sends (transaction control left out)."""
    return _counting(store)


def _token(claim: Any) -> str:
    assert isinstance(claim, Acquired)
    return claim.token


def test_an_injected_postgresql_engine_keeps_its_transactions(
    make_backend: Callable[[str], Backend], pg_url: str
) -> None:
    """One pool for the store's autocommit calls and the tools' transactions: no leak."""
    from sqlalchemy import create_engine

    table = _store(make_backend("postgresql")).table.name
    engine = create_engine(pg_url, pool_size=1, max_overflow=0)  # one connection for all
    store = SqlDedupStore(engine, table_name=table)
    try:
        claim = store.claim(TOOL, "k", FP)
        assert isinstance(claim, Acquired)
        with engine.connect() as conn:
            assert conn.connection.dbapi_connection.autocommit is False  # type: ignore[union-attr]
        with pytest.raises(RuntimeError), store.transaction(TOOL, "k", claim.token) as txn:
            txn.session.execute(text(f"DELETE FROM {table}"))
            raise RuntimeError("the tool failed")
        assert store.get(TOOL, "k") is not None  # the DELETE was rolled back
        store.complete(TOOL, "k", claim.token, "done")
        assert store.claim(TOOL, "k", FP) == Cached("done")
    finally:
        store.close()
        engine.dispose()
