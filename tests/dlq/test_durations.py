"""One duration parser, two names: ``intentq.dlq.parse_age``, ``intentq.ops.parse_duration``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from intentq.dlq import parse_age
from intentq.ops import parse_duration, parse_instant

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
PARSERS = pytest.mark.parametrize("parse", [parse_age, parse_duration], ids=["age", "duration"])


def test_the_two_names_are_one_parser() -> None:
    assert parse_duration is parse_age


@PARSERS
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), (" 30M ", 1800), ("1.5h", 5400), ("7 d", 604800), ("2w", 1209600), ("0s", 0)],
)
def test_a_number_with_a_unit(parse: Callable[[str], timedelta], text: str, seconds: float) -> None:
    assert parse(text) == timedelta(seconds=seconds)


@PARSERS
@pytest.mark.parametrize("text", ["90", "7", "0", "1.5", "", "7y", "-1d", "7 days", "d"])
def test_a_unit_is_required(parse: Callable[[str], timedelta], text: str) -> None:
    # A bare 7 could be read as seconds or days: for a purge that is a guess too costly.
    with pytest.raises(ValueError, match=r"not an age.*a number with a unit"):
        parse(text)


def test_an_instant_is_a_duration_ago_or_an_iso_time() -> None:
    assert parse_instant("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_instant("2026-11-28T06:00:00Z", NOW) == NOW - timedelta(days=1)
    assert parse_instant("2026-11-28T06:00:00", NOW) == NOW - timedelta(days=1)
    with pytest.raises(ValueError, match="neither a duration"):
        parse_instant("90", NOW)
