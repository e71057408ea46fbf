"""Pages by cursor while letters come and go, and stats equal to counting by reading.

SQLite and PostgreSQL page by ``(dead_at, id)``; the memory store runs the same checks where
they hold for it (its order is by id alone).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from intentq.dlq import DeadLetter, DeadLetterStore, LetterFilter, Reason
from intentq.dlq.base import AGE_LABELS, age_window
from intentq.dlq.memory import MemoryDeadLetterStore
from intentq.dlq.sql import SqlDeadLetterStore, cursor_of, parse_cursor
from intentq.errors import DLQError
from intentq.intent import new_intent_id
from tests.dlq.many import NOW, make_letters, opened, put_all, sql_url


@pytest.fixture(params=["sqlite", "postgresql"])
def sql(
    request: pytest.FixtureRequest, unique: str, tmp_path: Path
) -> Iterator[SqlDeadLetterStore]:
    pg = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    yield from opened(sql_url(request.param, tmp_path, pg), f"dk_{unique}")


def order_key(letter: DeadLetter) -> tuple[object, str]:
    return (letter.dead_at, letter.id)


def walk(dlq: DeadLetterStore, f: LetterFilter | None, size: int) -> Iterator[list[DeadLetter]]:
    cursor = None
    while True:
        page = dlq.list(f, limit=size, cursor=cursor)
        yield page.letters
        if page.cursor is None:
            return
        cursor = page.cursor


def test_pages_follow_dead_at_then_id_across_ties(sql: SqlDeadLetterStore) -> None:
    letters = make_letters(300)  # one in ten ties with the one before
    put_all(sql, letters)
    expected = sorted(letters, key=order_key)

    for f in (None, LetterFilter(tool="book_slot"), LetterFilter(reason=Reason.SCHEMA)):
        seen = [x.id for page in walk(sql, f, 7) for x in page]
        assert seen == [x.id for x in expected if (f or LetterFilter()).matches(x)]


def test_a_cursor_is_the_last_letters_time_and_id(sql: SqlDeadLetterStore) -> None:
    letter = make_letters(1)[0]
    assert letter.dead_at is not None
    cursor = cursor_of(letter.dead_at, letter.id)
    assert parse_cursor(cursor) == (letter.dead_at, letter.id)
    for bad in (letter.id, "12:", "x:" + letter.id, ""):
        with pytest.raises(DLQError, match="not a cursor"):
            sql.list(cursor=bad)


def test_pages_under_inserts_and_deletes_between_them(sql: SqlDeadLetterStore) -> None:
    """Between pages, letters are deleted ahead of and behind the cursor and added before
    and after it; every letter there all along is seen exactly once, in order."""
    rng = random.Random(3)
    letters = make_letters(400, seed=2)
    put_all(sql, letters)
    alive = {x.id: x for x in letters}
    deleted_unseen: set[str] = set()
    added_ahead: list[str] = []
    seen: list[DeadLetter] = []
    for page in walk(sql, None, 9):
        seen.extend(page)
        last = page[-1] if page else None
        for x in page:
            alive.pop(x.id, None)
        # delete two letters not seen yet, and one already seen
        for doomed in rng.sample(sorted(alive), min(2, len(alive))):
            assert sql.delete(doomed)
            deleted_unseen.add(alive.pop(doomed).id)
        if seen:
            sql.delete(rng.choice(seen).id)
        # add one letter behind the cursor and one ahead of it
        if last is not None and last.dead_at is not None:
            behind, ahead = make_letters(2, seed=rng.randrange(10**6))
            behind = replace(behind, dead_at=last.dead_at - timedelta(days=1))
            ahead = replace(ahead, dead_at=last.dead_at + timedelta(microseconds=1))
            sql.put(behind)
            sql.put(ahead)
            alive[ahead.id] = ahead
            added_ahead.append(ahead.id)

    ids = [x.id for x in seen]
    assert len(ids) == len(set(ids))  # nothing twice
    assert [order_key(x) for x in seen] == sorted(order_key(x) for x in seen)
    assert not deleted_unseen & set(ids)
    assert {x.id for x in letters} - deleted_unseen <= set(ids)  # nothing there all along missed
    # each letter added ahead of the cursor is seen, unless deleted first (or added after
    # the last page)
    assert set(added_ahead[:-1]) - deleted_unseen <= set(ids)


def test_pages_while_another_thread_writes_and_deletes(sql: SqlDeadLetterStore) -> None:
    """A reader pages while a writer adds new letters and deletes some old ones: the reader
    sees no letter twice, never goes back in order, and misses none that stayed."""
    letters = make_letters(600, seed=5)
    put_all(sql, letters)
    stop = threading.Event()
    doomed = {x.id for x in letters[::7]}
    written: list[str] = []

    def writer() -> None:
        pending = sorted(doomed)
        while not stop.is_set():
            if pending:
                sql.delete(pending.pop())
            written.append(sql.put(DeadLetter(id="", body=b"{}", reason=Reason.POISON)))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = [x for page in walk(sql, None, 13) for x in page]
    finally:
        stop.set()
        thread.join(30)
    ids = [x.id for x in seen]
    assert len(ids) == len(set(ids))
    assert [order_key(x) for x in seen] == sorted(order_key(x) for x in seen)
    assert {x.id for x in letters} - doomed <= set(ids)
    assert written  # the writer really ran alongside


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgresql"])
def test_stats_equal_a_count_done_by_reading(
    backend: str, request: pytest.FixtureRequest, unique: str, tmp_path: Path
) -> None:
    letters = make_letters(700, seed=9)
    now = NOW
    filters = [
        None,
        LetterFilter(tool="book_slot"),
        LetterFilter(reason=Reason.EXHAUSTED),
        LetterFilter(since=now - timedelta(days=3)),
        LetterFilter(tool="refund", until=now - timedelta(days=8)),
        LetterFilter(tool="nobody"),
    ]
    stores: Iterator[DeadLetterStore]
    if backend == "memory":
        stores = iter([MemoryDeadLetterStore()])
    else:
        pg = request.getfixturevalue("pg_url") if backend == "postgresql" else None
        stores = opened(sql_url(backend, tmp_path, pg), f"ds_{unique}")
    for dlq in stores:
        put_all(dlq, letters)
        for f in filters:
            got = dlq.stats(f, now)
            wanted = (f or LetterFilter()).matches
            read = [x for x in dlq.iter(f)]
            assert got.total == len(read) == sum(1 for x in letters if wanted(x))
            assert got.by_tool == Counter(x.tool or "-" for x in read)
            assert got.by_reason == Counter(str(x.reason) for x in read)
            assert got.by_tool_reason == Counter((x.tool or "-", str(x.reason)) for x in read)
            assert got.by_age == Counter(age_window(x.dead_at, now) for x in read)
            assert set(got.by_age) <= set(AGE_LABELS)
            times = [x.dead_at for x in read if x.dead_at is not None]
            assert (got.oldest, got.newest) == ((min(times), max(times)) if times else (None, None))
            # the base class's one pass over the letters agrees with the store's own answer
            assert DeadLetterStore.stats(dlq, f, now) == got
            assert got.total == dlq.count(f)


def test_stats_windows_split_at_their_edges(sql: SqlDeadLetterStore) -> None:
    hour, day = timedelta(hours=1), timedelta(days=1)
    edges = [hour * 0, hour, hour + timedelta(microseconds=1), day, day * 7, day * 30, day * 31]
    for age in edges:
        sql.put(DeadLetter(id=new_intent_id(), body=b"{}", reason=Reason.POISON, dead_at=NOW - age))
    got = sql.stats(None, NOW)
    assert got.by_age == Counter({"1h": 2, "1d": 2, "7d": 1, "30d": 1, "older": 1})
    assert got == DeadLetterStore.stats(sql, None, NOW)
