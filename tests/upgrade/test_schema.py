"""Versioned schemas on PostgreSQL and SQLite: revision 1 is 0.1's table, a 0.1 database is
adopted with its rows, check_schema tells what it finds, the DDL for a DBA does what
``intentq init`` does, and a record in a newer format is refused, never misread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
import sqlalchemy as sa

from intentq.dedup.base import Acquired, Busy, Cached, Dead, State
from intentq.dedup.sql import SqlDedupStore
from intentq.dlq import DeadLetter
from intentq.dlq.replay import Action, replay
from intentq.dlq.sql import SqlDeadLetterStore
from intentq.errors import NewerRecordFormat, SchemaMismatch
from intentq.migrations import (
    DEDUP,
    DLQ,
    SchemaTooNew,
    Target,
    Version,
    offline_sql,
    online,
    runner,
    status,
    upgrade,
)
from tests.upgrade.legacy import create_0_1, load_0_1

FP = "f" * 64


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def stores(db_url: str) -> Iterator[tuple[SqlDedupStore, SqlDeadLetterStore]]:
    """Today's stores on the default table names."""
    with (
        closing(SqlDedupStore.from_url(db_url)) as store,
        closing(SqlDeadLetterStore.from_url(db_url)) as dlq,
    ):
        yield store, dlq


def shape(engine: sa.Engine, table: str) -> dict[str, Any]:
    """What the database says a table is: columns, primary key, indexes (names generic)."""
    inspector = sa.inspect(engine)
    return {
        "columns": [
            (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
        ],
        "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
        "indexes": sorted(
            (i["name"].replace(table, "T"), tuple(i["column_names"]), bool(i["unique"]))
            for i in inspector.get_indexes(table)
        ),
    }


def test_revision_1_is_exactly_the_0_1_schema(engine: sa.Engine) -> None:
    create_0_1(engine, dedup="old_dedup", dlq="old_letters")

    upgrade(Target(DEDUP, engine, "new_dedup"), "0001_compat_0001")
    upgrade(Target(DLQ, engine, "new_letters"), "0001_compat_0001")

    assert shape(engine, "new_dedup") == shape(engine, "old_dedup")
    assert shape(engine, "new_letters") == shape(engine, "old_letters")
    assert status(Target(DEDUP, engine, "new_dedup")).found_text == "1"


def test_a_0_1_database_is_adopted_with_its_rows(
    engine: sa.Engine, stores: tuple[SqlDedupStore, SqlDeadLetterStore]
) -> None:
    # Given the tables and rows intentq 0.1 left, and no version table
    store, dlq = stores
    load_0_1(engine, dedup=store.table.name, dlq=dlq.table.name)
    with pytest.raises(SchemaMismatch, match="no versioned schema") as refused:
        store.check_schema()
    assert not isinstance(refused.value, SchemaTooNew)
    assert status(store.schema_target).found_text == "0.1 (no version table)"

    # When intentq init runs
    store.create_schema()
    dlq.create_schema()

    # Then both tables are current, and every record and letter reads as 0.1 wrote it
    store.check_schema()
    dlq.check_schema()
    done = store.get("book", "done")
    assert done is not None and done.result == {"booked": "15:00", "n": 0}
    falsy = store.get("book", "falsy")
    assert falsy is not None and falsy.result == 0 and falsy.state is State.COMPLETED
    running = store.get("book", "running")
    assert running is not None and running.state is State.IN_PROGRESS
    assert store.claim("book", "done", FP) == Cached({"booked": "15:00", "n": 0})
    assert isinstance(store.claim("book", "failed", FP), Dead)
    assert isinstance(store.claim("book", "running", FP), Busy)
    letters = dlq.list().letters
    assert {letter.key for letter in letters} == {"lettered", None}
    assert b'{"v": 2}\xff' in {letter.body for letter in letters}

    # And replay takes 0.1's letters: the envelope is sent again, the poison one refused
    sent: list[DeadLetter] = []
    summary = replay(dlq, store, letters, lambda letter, _to: sent.append(letter))
    actions = sorted(str(r.action) for r in summary.results)
    assert actions == [str(Action.REFUSED), str(Action.REPLAYED)]
    assert [letter.key for letter in sent] == ["lettered"]


def test_check_schema_accepts_a_newer_compatible_version_only(
    engine: sa.Engine, stores: tuple[SqlDedupStore, SqlDeadLetterStore]
) -> None:
    store, dlq = stores
    for missing in (store, dlq):
        with pytest.raises(SchemaMismatch, match="no versioned schema"):
            missing.check_schema()

    upgrade(store.schema_target, "0001_compat_0001")
    with pytest.raises(SchemaMismatch, match="has version 1, this intentq needs 2") as behind:
        store.check_schema()
    assert (behind.value.found, behind.value.needed) == ("1", "2")

    store.create_schema()
    dlq.create_schema()
    store.check_schema()
    dlq.check_schema()

    version_table = store.schema_target.version_table
    for newer in ("0003_compat_0002", "0003_compat_0001"):  # a later intentq, readable by this
        _set_version(engine, version_table, newer)
        store.check_schema()
        store.create_schema()  # leaves it as it is
        assert status(store.schema_target).state == "newer"

    _set_version(engine, version_table, "0003_compat_0003")  # it needs intentq for 3 or later
    with pytest.raises(SchemaTooNew, match="upgrade intentq"):
        store.check_schema()
    with pytest.raises(SchemaTooNew):
        store.create_schema()


def _set_version(engine: sa.Engine, version_table: str, revision: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {version_table} SET version_num = :r"), {"r": revision})


def test_the_ddl_for_a_dba_does_what_init_does(
    engine: sa.Engine, stores: tuple[SqlDedupStore, SqlDeadLetterStore]
) -> None:
    # Given a 0.1 database
    store, dlq = stores
    load_0_1(engine, dedup=store.table.name, dlq=dlq.table.name)

    # When a DBA applies what `intentq init --sql` prints
    script = offline_sql(store.schema_target) + offline_sql(dlq.schema_target)
    assert "ADD COLUMN record_format SMALLINT" in script
    if engine.dialect.name == "postgresql":
        assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_intentq_dedup_expires_at" in script
        assert "SET LOCAL lock_timeout" in script
    run_script(engine, script)

    # Then the stores run on it, the rows as they were, and there is nothing left to print
    store.check_schema()
    dlq.check_schema()
    assert store.claim("book", "done", FP) == Cached({"booked": "15:00", "n": 0})
    assert dlq.count() == 2
    assert "nothing to apply" in offline_sql(store.schema_target)


def run_script(engine: sa.Engine, script: str) -> None:
    """Each statement on its own, in autocommit: as psql runs a file (BEGIN/COMMIT included)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for chunk in script.split(";\n"):
            statement = "\n".join(
                line for line in chunk.splitlines() if not line.startswith("--")
            ).strip()
            if statement:
                conn.exec_driver_sql(statement)


def test_a_record_in_a_newer_format_is_refused_not_misread(
    engine: sa.Engine, stores: tuple[SqlDedupStore, SqlDeadLetterStore]
) -> None:
    store = stores[0]
    store.create_schema()
    claim = store.claim("book", "k", FP)
    assert isinstance(claim, Acquired)
    store.complete("book", "k", claim.token, {"ok": True})
    store.claim("book", "live", FP, lease=0.05)
    table = store.table.name

    formats = _formats(engine, table)
    assert formats == {"intentq:book:k": 1, "intentq:book:live": 1}  # this code states its own

    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {table} SET record_format = NULL WHERE key = 'k'"))
    assert store.claim("book", "k", FP) == Cached({"ok": True})  # 0.1's rows: read as they are

    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {table} SET record_format = 2"))
    time.sleep(0.1)  # the lease of "live" runs out: a takeover would be allowed in format 1
    for key in ("k", "live"):
        with pytest.raises(NewerRecordFormat, match="format 2") as refused:
            store.claim("book", key, FP)
        assert (refused.value.found, refused.value.readable) == (2, 1)
        with pytest.raises(NewerRecordFormat):
            store.get("book", key)
    assert _formats(engine, table) == {"intentq:book:k": 2, "intentq:book:live": 2}  # untouched


def _formats(engine: sa.Engine, table: str) -> dict[str, int | None]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT store_key, record_format FROM {table}"))
        return {row[0]: row[1] for row in rows}


# PostgreSQL alone: SQLite has one writer at a time, so nothing queues behind an ALTER there.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_an_alter_behind_a_long_transaction_gives_way_and_tries_again(
    engine: sa.Engine, stores: tuple[SqlDedupStore, SqlDeadLetterStore], monkeypatch: Any
) -> None:
    store = stores[0]
    upgrade(store.schema_target, "0001_compat_0001")
    monkeypatch.setattr(online, "LOCK_TIMEOUT", "200ms")
    monkeypatch.setattr(runner, "LOCK_RETRY_DELAY", 0.05)

    # Given a transaction that reads the table and stays open for a second
    reading = threading.Event()

    def long_reader() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text(f"SELECT count(*) FROM {store.table.name}"))
            reading.set()
            time.sleep(1.0)
            conn.rollback()

    reader = threading.Thread(target=long_reader)
    reader.start()
    assert reading.wait(10)

    # When the upgrade runs: its ALTER times out behind the reader, and tries again
    started = time.monotonic()
    store.create_schema()
    reader.join()

    assert time.monotonic() - started >= 0.5
    store.check_schema()


def test_each_family_needs_its_newest_revision_and_ids_state_compatibility() -> None:
    from alembic.script import ScriptDirectory

    for family in (DEDUP, DLQ):
        assert runner.head(family).number == family.needs
        script = ScriptDirectory(family.script_location)
        versions = sorted(Version.parse(r.revision) for r in script.walk_revisions())  # type: ignore[type-var]
        assert [v.number for v in versions] == list(range(1, family.needs + 1))
        compat = [v.compat for v in versions]
        assert compat == sorted(compat) and all(
            c <= v.number for c, v in zip(compat, versions, strict=True)
        )
