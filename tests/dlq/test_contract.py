"""One contract, every backend: memory, SQLite, PostgreSQL and SQS keep letters alike."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from intentq.dlq import DeadLetter, DeadLetterStore, LetterFilter, Reason
from intentq.errors import DLQUnavailable, LetterNotFound
from intentq.intent import Intent, new_intent_id

UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
T0 = datetime(2026, 11, 29, 6, 0, 0, 123456, tzinfo=UTC)


def full_letter(**changes: object) -> DeadLetter:
    """A letter with every field set, the body not even UTF-8."""
    letter = DeadLetter(
        id="",
        body=b"\xff\xfe raw \x00 bytes \x80",
        reason=Reason.PERMANENT,
        tool="book_slot",
        key="conv-1:call-7",
        intent_id=new_intent_id(),
        error_type="ValueError",
        error_message="slot 15:00 is taken \u2014 r\u00e9essayez",
        traceback="Traceback (most recent call last):\n" + "  frame\n" * 25_000 + "ValueError\n",
        attempts=5,
        source_transport="sqs",
        source_queue="http://127.0.0.1:4566/000000000000/intentq",
        first_seen=T0,
        dead_at=T0 + timedelta(seconds=42),
        replay_count=2,
        last_replayed_at=T0 + timedelta(hours=1),
    )
    return replace(letter, **changes)  # type: ignore[arg-type]


def envelope(tool: str = "book_slot") -> bytes:
    return Intent.create(tool, {"slot": "15:00"}).to_json()


def put_many(dlq: DeadLetterStore, n: int, **fields: object) -> list[str]:
    return [
        dlq.put(DeadLetter(id="", body=envelope(), reason=Reason.EXHAUSTED, **fields))  # type: ignore[arg-type]
        for _ in range(n)
    ]


def page_through(dlq: DeadLetterStore, f: LetterFilter | None, size: int) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = dlq.list(f, limit=size, cursor=cursor)
        pages.append([x.id for x in page.letters])
        if page.cursor is None:
            return pages
        cursor = page.cursor


# -- put and get -------------------------------------------------------------------------------


def test_put_then_get_returns_every_field_unchanged(dlq: DeadLetterStore) -> None:
    letter = full_letter()
    assert len(letter.traceback or "") > 200_000

    letter_id = dlq.put(letter)

    assert UUID7.match(letter_id)
    assert dlq.get(letter_id) == replace(letter, id=letter_id)


def test_put_keeps_a_given_id(dlq: DeadLetterStore) -> None:
    letter_id = new_intent_id()
    assert dlq.put(full_letter(id=letter_id)) == letter_id
    assert dlq.get(letter_id).id == letter_id


@pytest.mark.parametrize(
    "body",
    [
        bytes(range(256)),
        b"",
        b"\x00nul is UTF-8 but SQS refuses it",
        "\ufffe is UTF-8 but not SQS text".encode(),
        b"line\r\nbreaks\rkept\n",
        "\U0001f600 emoji and \u00e9".encode(),
    ],
    ids=["all-bytes", "empty", "nul", "noncharacter", "crlf", "astral"],
)
def test_body_is_kept_byte_for_byte(dlq: DeadLetterStore, body: bytes) -> None:
    letter_id = dlq.put(DeadLetter(id="", body=body, reason=Reason.POISON))
    assert dlq.get(letter_id).body == body


def test_any_text_from_a_hostile_message_is_stored(dlq: DeadLetterStore) -> None:
    # Intent.parse accepts any non-empty tool name: NUL, a lone surrogate, 10 KB of it.
    tool = "bad\x00tool\ud800" + "x" * 10_000
    letter = DeadLetter(
        id="", body=b'{"tool": "bad\\u0000"}', reason=Reason.UNKNOWN_TOOL, tool=tool,
        key="k\x00" * 300, error_type="E\x00", error_message="nul \x00 and \udcff",
    )  # fmt: skip

    got = dlq.get(dlq.put(letter))

    assert got.body == letter.body
    assert got.tool is not None and got.tool.startswith("bad") and len(got.tool) == len(tool)
    assert got.error_message is not None and got.error_message.startswith("nul ")


def test_put_fills_in_times_as_aware_utc(dlq: DeadLetterStore) -> None:
    before = datetime.now(UTC)
    letter_id = dlq.put(DeadLetter(id="", body=b"{}", reason=Reason.POISON))
    got = dlq.get(letter_id)

    assert got.dead_at is not None and got.first_seen is not None
    assert got.dead_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= got.dead_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert got.first_seen == got.dead_at
    assert (got.replay_count, got.last_replayed_at, got.attempts) == (0, None, 0)


def test_times_in_another_zone_come_back_as_the_same_instant_in_utc(dlq: DeadLetterStore) -> None:
    paris = timezone(timedelta(hours=1))
    dead_at = datetime(2026, 11, 29, 7, 0, 0, 5, tzinfo=paris)
    got = dlq.get(dlq.put(full_letter(dead_at=dead_at)))
    assert got.dead_at == dead_at
    assert got.dead_at is not None and got.dead_at.utcoffset() == timedelta(0)


# -- list and filters --------------------------------------------------------------------------


def test_list_filters_by_each_field(dlq: DeadLetterStore) -> None:
    a = dlq.put(full_letter(tool="a", reason=Reason.SCHEMA, error_type="E1", dead_at=T0))
    b = dlq.put(full_letter(tool="b", reason=Reason.SCHEMA, error_type="E2", dead_at=T0))
    c = dlq.put(full_letter(tool="a", reason=Reason.CRASH_LOOP, error_type="E2", dead_at=T0))
    later = T0 + timedelta(minutes=5)
    d = dlq.put(full_letter(tool="b", reason=Reason.EXHAUSTED, error_type=None, dead_at=later))

    def ids(**kw: object) -> list[str]:
        return [x.id for x in dlq.list(LetterFilter(**kw)).letters]  # type: ignore[arg-type]

    assert ids() == [a, b, c, d]
    assert ids(tool="a") == [a, c]
    assert ids(reason=Reason.SCHEMA) == [a, b]
    assert ids(error_type="E2") == [b, c]
    assert ids(since=later) == [d]
    assert ids(until=later) == [a, b, c]
    assert ids(since=T0, until=T0 + timedelta(microseconds=1)) == [a, b, c]
    assert ids(ids=(d, a, "no-such-id")) == [a, d]
    assert ids(tool="b", reason=Reason.SCHEMA, since=T0) == [b]
    assert ids(tool="nobody") == []
    assert dlq.list(None).letters == dlq.list(LetterFilter()).letters


def test_list_returns_whole_letters(dlq: DeadLetterStore) -> None:
    letter_id = dlq.put(full_letter())
    assert dlq.list().letters == [dlq.get(letter_id)]


@pytest.mark.parametrize("size", [1, 4, 23, 50])
def test_pages_go_oldest_first_and_cover_every_letter_once(dlq: DeadLetterStore, size: int) -> None:
    put = put_many(dlq, 23)

    pages = page_through(dlq, None, size)

    assert [i for page in pages for i in page] == put
    assert all(len(p) == size for p in pages[:-1])
    assert [x.id for x in dlq.iter(page_size=size)] == put


def test_pages_of_a_filter_skip_other_letters(dlq: DeadLetterStore) -> None:
    wanted = []
    for i in range(12):
        letter_id = put_many(dlq, 1, tool="a" if i % 3 else "b")[0]
        if i % 3:
            wanted.append(letter_id)

    pages = page_through(dlq, LetterFilter(tool="a"), 3)

    assert [i for page in pages for i in page] == wanted
    assert len(pages) == 3


def test_deleting_behind_the_cursor_loses_no_letter(dlq: DeadLetterStore) -> None:
    put = put_many(dlq, 10)
    seen, cursor = [], None
    while True:
        page = dlq.list(limit=3, cursor=cursor)
        for letter in page.letters:  # what a replay does: act on each, then remove it
            seen.append(letter.id)
            assert dlq.delete(letter.id)
        if page.cursor is None:
            break
        cursor = page.cursor
    assert seen == put
    assert dlq.count() == 0


def test_an_exactly_full_last_page_has_no_cursor(dlq: DeadLetterStore) -> None:
    put_many(dlq, 4)
    assert dlq.list(limit=4).cursor is None
    assert dlq.list(limit=3).cursor is not None


def test_an_empty_store_lists_nothing(dlq: DeadLetterStore) -> None:
    page = dlq.list()
    assert (page.letters, page.cursor, dlq.count()) == ([], None, 0)


# -- count, delete, mark_replayed --------------------------------------------------------------


def test_count_matches_list(dlq: DeadLetterStore) -> None:
    put_many(dlq, 3, tool="a")
    put_many(dlq, 2, tool="b", error_type="Boom")
    assert dlq.count() == 5
    assert dlq.count(LetterFilter(tool="a")) == 3
    assert dlq.count(LetterFilter(error_type="Boom")) == 2
    assert dlq.count(LetterFilter(reason=Reason.SCHEMA)) == 0


def test_delete_removes_one_letter_once(dlq: DeadLetterStore) -> None:
    keep, gone = put_many(dlq, 2)

    assert dlq.delete(gone) is True
    assert dlq.delete(gone) is False

    with pytest.raises(LetterNotFound):
        dlq.get(gone)
    assert [x.id for x in dlq.list().letters] == [keep]


def test_mark_replayed_counts_and_stamps_and_keeps_the_rest(dlq: DeadLetterStore) -> None:
    letter = full_letter(replay_count=0, last_replayed_at=None)
    letter_id = dlq.put(letter)
    before = datetime.now(UTC) - timedelta(seconds=1)

    once = dlq.mark_replayed(letter_id)
    twice = dlq.mark_replayed(letter_id)

    assert once.replay_count == 1 and twice.replay_count == 2
    assert once.last_replayed_at is not None and twice.last_replayed_at is not None
    assert before <= once.last_replayed_at <= twice.last_replayed_at
    assert twice.last_replayed_at.utcoffset() == timedelta(0)
    assert dlq.get(letter_id) == twice
    stored = replace(letter, id=letter_id, replay_count=2, last_replayed_at=twice.last_replayed_at)
    assert twice == stored
    assert [x.id for x in dlq.list().letters] == [letter_id]


def test_a_marked_letter_keeps_its_place_in_line(dlq: DeadLetterStore) -> None:
    put = put_many(dlq, 3)
    dlq.mark_replayed(put[0])
    assert [x.id for x in dlq.list().letters] == put


@pytest.mark.parametrize(
    "call",
    [lambda d, i: d.get(i), lambda d, i: d.mark_replayed(i)],
    ids=["get", "mark_replayed"],
)
def test_an_unknown_id_raises_letter_not_found(
    dlq: DeadLetterStore, call: Callable[[DeadLetterStore, str], object]
) -> None:
    put_many(dlq, 2)
    missing = new_intent_id()
    with pytest.raises(LetterNotFound) as info:
        call(dlq, missing)
    assert info.value.letter_id == missing
    assert dlq.delete(missing) is False
    assert dlq.count() == 2


def test_delete_many_removes_what_matches(dlq: DeadLetterStore) -> None:
    a = put_many(dlq, 3, tool="a")
    b = put_many(dlq, 2, tool="b")

    assert dlq.delete_many(LetterFilter(tool="a")) == 3
    assert [x.id for x in dlq.list().letters] == b
    assert dlq.delete_many(LetterFilter(ids=(a[0], b[1]))) == 1
    assert dlq.delete_many(None) == 1
    assert dlq.count() == 0


def test_create_schema_again_keeps_the_letters(dlq: DeadLetterStore) -> None:
    letter_id = dlq.put(full_letter())
    dlq.create_schema()
    assert dlq.get(letter_id).id == letter_id


# -- an unreachable store ----------------------------------------------------------------------

CALLS: dict[str, Callable[[DeadLetterStore], object]] = {
    "put": lambda d: d.put(full_letter()),
    "list": lambda d: d.list(),
    "get": lambda d: d.get(new_intent_id()),
    "count": lambda d: d.count(),
    "delete": lambda d: d.delete(new_intent_id()),
    "delete_many": lambda d: d.delete_many(LetterFilter(tool="x")),
    "mark_replayed": lambda d: d.mark_replayed(new_intent_id()),
    "create_schema": lambda d: d.create_schema(),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_an_unreachable_store_raises_dlq_unavailable_with_its_cause(
    unreachable_dlq: DeadLetterStore, call: Callable[[DeadLetterStore], object]
) -> None:
    with pytest.raises(DLQUnavailable) as info:
        call(unreachable_dlq)
    assert info.value.__cause__ is not None
    assert "\n" not in str(info.value)


def test_ending_in_finds_letters_by_the_end_of_their_id(dlq: DeadLetterStore) -> None:
    ids = put_many(dlq, 3)
    tail = ids[1][-10:]
    found = dlq.ending_in([tail, "f" * 9 + "x", "_" + ids[2][-7:], "%" + ids[0][-7:]])
    assert [letter.id for letter in found[tail]] == [ids[1]]
    assert found["f" * 9 + "x"] == []
    # LIKE's wildcards in a suffix are plain characters: no id has them.
    assert found["_" + ids[2][-7:]] == [] and found["%" + ids[0][-7:]] == []
    assert dlq.ending_in([]) == {}
