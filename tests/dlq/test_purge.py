"""Purging by ids, by age, or everything, on every backend (the ``dlq`` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from intentq.dlq import DeadLetter, DeadLetterStore, LetterFilter, Reason
from intentq.dlq.purge import parse_age, purge
from intentq.intent import new_intent_id

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def put_aged(dlq: DeadLetterStore, days: float, tool: str = "t") -> str:
    letter = DeadLetter(
        id="", body=b"{}", reason=Reason.PERMANENT, tool=tool, dead_at=NOW - timedelta(days=days)
    )
    return dlq.put(letter)


def remaining(dlq: DeadLetterStore) -> list[str]:
    return [x.id for x in dlq.list().letters]


def test_purge_by_ids_counts_only_letters_that_existed(dlq: DeadLetterStore) -> None:
    a, b, c = (put_aged(dlq, 0) for _ in range(3))
    assert purge(dlq, ids=[a, c, new_intent_id()]) == 2
    assert remaining(dlq) == [b]


def test_purge_older_than_keeps_younger_letters(dlq: DeadLetterStore) -> None:
    old = put_aged(dlq, 10)
    edge = put_aged(dlq, 7)  # exactly 7 days: not older than 7 days
    young = put_aged(dlq, 1)
    other_tool_old = put_aged(dlq, 30, tool="u")

    assert purge(dlq, older_than=timedelta(days=7), filter=LetterFilter(tool="t"), now=NOW) == 1
    # Oldest first is by dead_at on SQL and SQS, by id in memory: compare what is left.
    assert set(remaining(dlq)) == {edge, young, other_tool_old}
    assert old not in remaining(dlq)
    assert purge(dlq, older_than=parse_age("2d"), now=NOW) == 2
    assert remaining(dlq) == [young]


def test_purge_all_empties_the_store_or_a_filtered_part(dlq: DeadLetterStore) -> None:
    put_aged(dlq, 0, tool="t")
    keep = put_aged(dlq, 0, tool="u")
    put_aged(dlq, 0, tool="t")
    assert purge(dlq, all_letters=True, filter=LetterFilter(tool="t")) == 2
    assert remaining(dlq) == [keep]
    assert purge(dlq, all_letters=True) == 1
    assert dlq.count() == 0


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"ids": ["x"], "all_letters": True}, {"older_than": timedelta(days=-1)}],
    ids=["nothing", "two-selectors", "negative-age"],
)
def test_purge_needs_exactly_one_sensible_selector(kwargs: dict[str, object]) -> None:
    from intentq.dlq.memory import MemoryDeadLetterStore

    with pytest.raises(ValueError):
        purge(MemoryDeadLetterStore(), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("1.5h", 5400)],
)
def test_parse_age(text: str, seconds: float) -> None:
    assert parse_age(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "7", "d", "7y", "-1d", "7 days"])
def test_parse_age_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="not an age"):
        parse_age(text)
