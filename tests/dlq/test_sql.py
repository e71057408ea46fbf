"""The SQL DLQ's own promises: the table and its indexes, exact bytes, UTC, clear errors."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from intentq.dlq import DeadLetter, LetterFilter, Reason, open_dlq
from intentq.dlq.sql import SqlDeadLetterStore
from intentq.errors import DLQError, DLQUnavailable


@pytest.fixture(params=["sqlite", "postgresql"])
def sql(
    request: pytest.FixtureRequest, unique: str, tmp_path: Path
) -> Iterator[SqlDeadLetterStore]:
    """A store whose table is not made yet."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'dlq.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    store = open_dlq(url, table_name=f"dl_{unique}")
    assert isinstance(store, SqlDeadLetterStore)
    try:
        yield store
    finally:
        store.drop_schema()
        store.close()


def test_create_schema_makes_the_table_and_filter_indexes_once(sql: SqlDeadLetterStore) -> None:
    sql.create_schema()
    sql.create_schema()

    inspector = sa.inspect(sql.engine)
    columns = {c["name"] for c in inspector.get_columns(sql.table.name)}
    indexes = {tuple(i["column_names"]) for i in inspector.get_indexes(sql.table.name)}
    assert columns == {
        "id", "body", "reason", "tool", "key", "intent_id", "error_type", "error_message",
        "traceback", "attempts", "source_transport", "source_queue", "first_seen", "dead_at",
        "replay_count", "last_replayed_at",
    }  # fmt: skip
    keyset = {
        ("tool", "dead_at", "id", "reason"),
        ("reason", "dead_at", "id", "tool"),
        ("dead_at", "id", "tool", "reason"),
    }
    assert keyset <= indexes
    assert inspector.get_pk_constraint(sql.table.name)["constrained_columns"] == ["id"]


def test_adopting_an_unversioned_table_adds_an_index_it_lacks(sql: SqlDeadLetterStore) -> None:
    # Given a table made before versions, without one of its indexes
    sql.create_schema()
    with sql.engine.begin() as conn:
        conn.execute(sa.text(f"DROP INDEX ix_{sql.table.name}_dead_at_id"))
        conn.execute(sa.text(f"DROP TABLE {sql.schema_target.version_table}"))

    sql.create_schema()

    names = {i["name"] for i in sa.inspect(sql.engine).get_indexes(sql.table.name)}
    assert f"ix_{sql.table.name}_dead_at_id" in names


def test_a_missing_table_says_to_create_it_and_is_not_an_outage(sql: SqlDeadLetterStore) -> None:
    with pytest.raises(DLQError, match="does not exist: run `intentq init`") as info:
        sql.count()
    assert not isinstance(info.value, DLQUnavailable)
    assert info.value.__cause__ is not None


def test_the_body_column_holds_the_exact_bytes(sql: SqlDeadLetterStore) -> None:
    sql.create_schema()
    body = bytes(range(256)) * 3
    letter_id = sql.put(DeadLetter(id="", body=body, reason=Reason.POISON))
    with sql.engine.connect() as conn:
        stored = conn.execute(sa.select(sql.table.c.body).where(sql.table.c.id == letter_id))
        assert bytes(stored.scalar_one()) == body


def test_filters_compare_instants_whatever_the_zone(sql: SqlDeadLetterStore) -> None:
    sql.create_schema()
    t = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    letter_id = sql.put(DeadLetter(id="", body=b"{}", reason=Reason.POISON, dead_at=t))
    tokyo = timezone(timedelta(hours=9))
    same_instant = t.astimezone(tokyo)  # 21:00 in Tokyo: sorts after 12:00 as plain text

    assert [x.id for x in sql.list(LetterFilter(since=same_instant)).letters] == [letter_id]
    assert sql.count(LetterFilter(until=same_instant)) == 0
    assert sql.count(LetterFilter(until=same_instant + timedelta(microseconds=1))) == 1


def test_a_bad_url_is_a_dlq_error() -> None:
    with pytest.raises(DLQError, match="cannot open DLQ") as info:
        SqlDeadLetterStore.from_url("postgresql+nosuchdriver://u:secret@h/db")
    assert "secret" not in str(info.value)


def test_putting_an_id_again_replaces_that_letter(sql: SqlDeadLetterStore) -> None:
    sql.create_schema()
    letter_id = sql.put(DeadLetter(id="", body=b"first", reason=Reason.POISON))
    sql.put(DeadLetter(id=letter_id, body=b"second", reason=Reason.SCHEMA, attempts=3))
    got = sql.get(letter_id)
    assert (got.body, got.reason, got.attempts, sql.count()) == (b"second", Reason.SCHEMA, 3, 1)


def _create_schema(url: str, table: str, barrier: Any) -> None:
    store = open_dlq(url, table_name=table)
    barrier.wait(30)  # every process at the starting line: the creates really overlap
    store.create_schema()
    store.close()


def test_processes_starting_together_all_create_the_schema(sql: SqlDeadLetterStore) -> None:
    # Forked, not spawned: the children start in milliseconds with intentq already imported.
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    url = sql.engine.url.render_as_string(hide_password=False)
    sql.engine.dispose()  # no pooled connection shared with the children
    children = [
        ctx.Process(target=_create_schema, args=(url, sql.table.name, barrier)) for _ in range(4)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [c.exitcode for c in children] == [0] * 4
    assert sql.count() == 0


def _letter_for(key: str) -> DeadLetter:
    now = datetime.now(UTC)
    return DeadLetter(
        id="", body=b"{}", reason=Reason.POISON, key=key, source_transport="sqs",
        source_queue="q", first_seen=now, dead_at=now,
    )  # fmt: skip


def _backend_pid(store: SqlDeadLetterStore) -> int | None:
    if store.engine.dialect.name != "postgresql":
        return None
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _forked_child(store: SqlDeadLetterStore, parent_ids: set[int], out: Any) -> None:
    used: set[int] = set()
    sa.event.listen(store.engine, "checkout", lambda dbapi, *_: used.add(id(dbapi)))
    ids = [store.put(_letter_for(f"child-{i}")) for i in range(5)]
    assert all(store.get(letter_id).key for letter_id in ids)
    pid = _backend_pid(store)
    store.close()  # must close the child's own connections only
    out.send((bool(used) and not used & parent_ids, pid))


def test_a_forked_child_leaves_the_parents_connections_alone(sql: SqlDeadLetterStore) -> None:
    sql.create_schema()
    parent_ids: set[int] = set()
    sa.event.listen(sql.engine, "checkout", lambda dbapi, *_: parent_ids.add(id(dbapi)))
    sql.put(_letter_for("parent-before"))
    parent_pid = _backend_pid(sql)  # an idle pooled connection the child inherits a copy of

    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_forked_child, args=(sql, set(parent_ids), send))
    child.start()
    assert receive.poll(60), "the child did not answer in time"
    own_connections, child_pid = receive.recv()
    child.join(30)
    assert child.exitcode == 0
    assert own_connections, "the child used a connection it inherited from its parent"
    # The parent's pooled connection survived the child's close(): same server session.
    assert _backend_pid(sql) == parent_pid
    assert child_pid is None or child_pid != parent_pid
    sql.put(_letter_for("parent-after"))
    keys = {letter.key for letter in sql.list(limit=100).letters}
    assert keys == {"parent-before", "parent-after"} | {f"child-{i}" for i in range(5)}
