"""The retry helper: pauses in order, the last failure raised, callbacks told of each."""

from __future__ import annotations

import itertools

import pytest

from intentq.retrying import doubling, retry_call


class Flaky:
    def __init__(self, failures: int, exc: type[Exception] = ConnectionError) -> None:
        self.failures, self.exc, self.calls = failures, exc, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc(f"failure {self.calls}")
        return "done"


def test_a_call_that_succeeds_after_failures_returns_its_value_after_those_pauses() -> None:
    slept: list[float] = []
    flaky = Flaky(2)

    assert (
        retry_call(flaky, retry_on=ConnectionError, pauses=(0.1, 0.2, 0.3), sleep=slept.append)
        == "done"
    )

    assert flaky.calls == 3
    assert slept == [0.1, 0.2]


def test_the_last_failure_is_raised_once_the_pauses_run_out() -> None:
    heard: list[tuple[str, float | None]] = []
    slept: list[float] = []

    with pytest.raises(ConnectionError, match="failure 3"):
        retry_call(
            Flaky(5),
            retry_on=ConnectionError,
            pauses=(0.1, 0.2),
            on_failure=lambda exc, pause: heard.append((str(exc), pause)),
            sleep=slept.append,
        )

    assert heard == [("failure 1", 0.1), ("failure 2", 0.2), ("failure 3", None)]
    assert slept == [0.1, 0.2]


def test_other_errors_are_not_retried() -> None:
    flaky = Flaky(1, ValueError)

    with pytest.raises(ValueError):
        retry_call(flaky, retry_on=ConnectionError, pauses=(0.1,), sleep=lambda _: None)

    assert flaky.calls == 1


def test_doubling_is_capped() -> None:
    assert list(itertools.islice(doubling(0.5, 3.0), 5)) == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_doubling_within_a_window_ends_when_it_has_passed() -> None:
    pauses = doubling(0.01, 0.01, within=0.0)

    assert list(pauses) == []
