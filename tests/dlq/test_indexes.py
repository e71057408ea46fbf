"""Revision 2 of the dead-letter table, and the queries it serves reading bounded rows.

The revision upgrades a table of revision 1 holding letters (and, on PostgreSQL, one that
workers write to meanwhile). On 20,000 letters in PostgreSQL, EXPLAIN ANALYZE shows each
page query reading one index range and examining about a page of rows, however deep the
cursor; counts and stats read an index alone. Rows are counted, never time measured.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from intentq.dlq import DeadLetter, LetterFilter, Reason, open_dlq
from intentq.dlq.sql import SqlDeadLetterStore, cursor_of
from intentq.migrations import offline_sql, status, upgrade
from tests.dlq.many import NOW, make_letters, opened, put_all, sql_url

REVISION_1 = "0001_compat_0001"
MEDIUM = 20_000
PAGE = 50


def index_columns(store: SqlDeadLetterStore) -> dict[str, tuple[str, ...]]:
    table = store.table.name
    found = sa.inspect(store.engine).get_indexes(table)
    return {i["name"].replace(table, "T"): tuple(i["column_names"]) for i in found}


@pytest.fixture(params=["sqlite", "postgresql"])
def at_revision_1(
    request: pytest.FixtureRequest, unique: str, tmp_path: Path
) -> Iterator[SqlDeadLetterStore]:
    """A table at revision 1 (the 0.1 schema) holding 1,000 letters."""
    pg = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    url = sql_url(request.param, tmp_path, pg)
    with closing(open_dlq(url, table_name=f"dx_{unique}")) as store:
        assert isinstance(store, SqlDeadLetterStore)
        upgrade(store.schema_target, REVISION_1)
        put_all(store, make_letters(1000, seed=11))
        try:
            yield store
        finally:
            store.drop_schema()


def test_revision_2_upgrades_a_table_of_letters(at_revision_1: SqlDeadLetterStore) -> None:
    store = at_revision_1
    before = {x.id: x for x in store.iter()}
    assert index_columns(store) == {
        "ix_T_tool": ("tool", "id"), "ix_T_reason": ("reason", "id"), "ix_T_dead_at": ("dead_at",),
    }  # fmt: skip
    assert status(store.schema_target).state == "behind"

    store.create_schema()

    assert index_columns(store) == {
        "ix_T_tool_dead_at": ("tool", "dead_at", "id", "reason"),
        "ix_T_reason_dead_at": ("reason", "dead_at", "id", "tool"),
        "ix_T_dead_at_id": ("dead_at", "id", "tool", "reason"),
    }
    store.check_schema()
    assert status(store.schema_target).found_text == "2"
    assert {x.id: x for x in store.iter()} == before  # every letter, every field
    assert "nothing to apply" in offline_sql(store.schema_target)


@pytest.mark.parametrize("at_revision_1", ["postgresql"], indirect=True)
def test_revision_2_builds_its_indexes_while_letters_are_written(
    at_revision_1: SqlDeadLetterStore,
) -> None:
    # Given a worker writing letters all through the upgrade
    store = at_revision_1
    stop = threading.Event()
    written: list[str] = []

    def worker() -> None:
        while not stop.is_set():
            written.append(store.put(DeadLetter(id="", body=b"{}", reason=Reason.POISON)))

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        store.create_schema()  # CONCURRENTLY: the writes are not blocked
        done_at = len(written)
    finally:
        stop.set()
        thread.join(30)

    # Then the writes went on during the upgrade, and every index is valid and has them all
    assert done_at > 0
    with store.engine.connect() as conn:
        valid = conn.execute(
            sa.text("SELECT indisvalid FROM pg_index WHERE indrelid = to_regclass(:t)"),
            {"t": store.table.name},
        ).scalars().all()  # fmt: skip
    assert valid and all(valid)
    assert store.count() == 1000 + len(written)
    assert store.stats().total == 1000 + len(written)


@pytest.mark.parametrize("at_revision_1", ["postgresql"], indirect=True)
def test_the_ddl_for_revision_2_builds_concurrently(at_revision_1: SqlDeadLetterStore) -> None:
    script = offline_sql(at_revision_1.schema_target)
    name = at_revision_1.table.name
    assert f"CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_{name}_tool_dead_at" in script
    assert f"DROP INDEX CONCURRENTLY IF EXISTS ix_{name}_dead_at;" in script


# -- 20,000 letters in PostgreSQL ----------------------------------------------------------


@pytest.fixture(scope="module")
def medium(pg_url: str) -> Iterator[SqlDeadLetterStore]:
    """20,000 letters, analysed and vacuumed as autovacuum would leave them; read only."""
    for store in opened(pg_url, "dlq_medium_explain"):
        put_all(store, make_letters(MEDIUM, seed=12), batch=5000)
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"VACUUM ANALYZE {store.table.name}")
        yield store


def explain(
    store: SqlDeadLetterStore, query: sa.Select[Any], seqscan: bool = True
) -> tuple[set[str], set[str], int]:
    """The plan's index names, its node types, and the most rows one node examined."""
    compiled = query.compile(store.engine)
    with store.engine.connect() as conn:
        if not seqscan:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = conn.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}", dict(compiled.params)
        ).scalar_one()[0]["Plan"]
    names: set[str] = set()
    types: set[str] = set()
    most = 0

    def walk(node: dict[str, Any]) -> None:
        nonlocal most
        examined = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
        most = max(most, examined * node.get("Actual Loops", 1))
        types.add(node["Node Type"])
        if "Index Name" in node:
            names.add(node["Index Name"].replace(store.table.name, "T"))
        for child in node.get("Plans", []):
            walk(child)

    walk(plan)
    return names, types, most


def deep(store: SqlDeadLetterStore, f: LetterFilter) -> str:
    """The cursor of the first letter of ``f`` dead in the last five days: deep in the table."""
    first = store.list(replace(f, since=NOW - timedelta(days=5)), limit=1).letters[0]
    assert first.dead_at is not None
    return cursor_of(first.dead_at, first.id)


PAGES = {
    "all": (LetterFilter(), "ix_T_dead_at_id"),
    "tool": (LetterFilter(tool="book_slot"), "ix_T_tool_dead_at"),
    "reason": (LetterFilter(reason=Reason.SCHEMA), "ix_T_reason_dead_at"),
    "age": (LetterFilter(since=NOW - timedelta(days=10)), "ix_T_dead_at_id"),
    "tool and age": (
        LetterFilter(tool="refund", since=NOW - timedelta(days=20), until=NOW - timedelta(days=2)),
        "ix_T_tool_dead_at",
    ),
}


@pytest.mark.parametrize("depth", ["first", "deep"])
@pytest.mark.parametrize("name", PAGES)
def test_a_page_reads_one_index_range_of_about_a_page(
    medium: SqlDeadLetterStore, name: str, depth: str
) -> None:
    f, index = PAGES[name]
    cursor = deep(medium, f) if depth == "deep" else None

    names, types, examined = explain(medium, medium.page_query(f, cursor, PAGE + 1))

    assert names == {index}
    assert "Sort" not in types and "Seq Scan" not in types
    # a page and the one letter that says another follows (plus a cursor's tie)
    assert examined <= PAGE + 2
    page = medium.list(f, limit=PAGE, cursor=cursor)
    assert len(page.letters) == PAGE and page.cursor is not None


@pytest.mark.parametrize("name", ["tool", "reason", "age", "tool and age"])
def test_counts_and_stats_read_only_the_filters_range_of_an_index(
    medium: SqlDeadLetterStore, name: str
) -> None:
    f, index = PAGES[name]
    matching = medium.count(f)
    assert 0 < matching < MEDIUM // 2

    for query in (medium.count_query(f), medium.stats_query(f, NOW)):
        names, types, examined = explain(medium, query)
        assert names == {index}
        assert "Index Only Scan" in types and "Seq Scan" not in types
        assert examined == matching  # no letter outside the filter is looked at


def test_unfiltered_stats_can_read_an_index_not_the_letters(medium: SqlDeadLetterStore) -> None:
    # At 20,000 letters a sequential scan costs about the same: the planner may take either
    # (at a million it takes the index); without it, the index serves alone.
    names, types, examined = explain(medium, medium.stats_query(None, NOW), seqscan=False)
    assert names and "Index Only Scan" in types and "Seq Scan" not in types
    assert examined == MEDIUM
