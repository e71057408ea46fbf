"""The SQL store's batches: one round trip on PostgreSQL (libpq's trace), one transaction on
SQLite, and a key given twice in one batch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from intentq.dedup.base import Acquired, Busy, Cached, ClaimRequest, CompleteRequest
from intentq.dedup.sql.store import SqlDedupStore
from intentq.errors import LeaseLost
from tests.dedup.conftest import Backend
from tests.dedup.test_sql import _wire

TOOL = "book_slot"
FP = "f" * 64


def _store(backend: Backend) -> SqlDedupStore:
    assert isinstance(backend.store, SqlDedupStore)
    return backend.store


def test_a_postgresql_batch_of_completions_is_one_round_trip(
    make_backend: Callable[[str], Backend], tmp_path: Path
) -> None:
    store = _store(make_backend("postgresql"))
    claims = store.claim_many([ClaimRequest(TOOL, f"k{i}", FP) for i in range(10)])
    batch = [CompleteRequest(TOOL, f"k{i}", _token(c), {"i": i}) for i, c in enumerate(claims)]

    with _wire(store, tmp_path / "trace.txt") as requests:
        answers = store.complete_many(batch)

    assert answers == [None] * 10
    assert len(requests) == 1
    assert all(store.claim(TOOL, f"k{i}", FP) == Cached({"i": i}) for i in range(10))


def test_a_key_given_twice_costs_a_second_round_trip(
    make_backend: Callable[[str], Backend], tmp_path: Path
) -> None:
    store = _store(make_backend("postgresql"))
    first, second = store.claim_many([ClaimRequest(TOOL, "a", FP), ClaimRequest(TOOL, "b", FP)])
    batch = [
        CompleteRequest(TOOL, "a", _token(first), 1),
        CompleteRequest(TOOL, "b", _token(second), 2),
        CompleteRequest(TOOL, "a", _token(first), 3),
    ]

    with _wire(store, tmp_path / "trace.txt") as requests:
        answers = store.complete_many(batch)

    assert answers[:2] == [None, None] and isinstance(answers[2], LeaseLost)
    # one UPDATE for the batch, one for the repeated key, one read for its LeaseLost record
    assert len(requests) == 3
    assert store.claim(TOOL, "a", FP) == Cached(1)


@pytest.mark.parametrize("name", ["postgresql", "sqlite"])
def test_a_key_claimed_twice_in_one_batch_is_acquired_once(
    make_backend: Callable[[str], Backend], name: str
) -> None:
    store = _store(make_backend(name))

    claims = store.claim_many(
        [ClaimRequest(TOOL, "k", FP), ClaimRequest(TOOL, "other", FP), ClaimRequest(TOOL, "k", FP)]
    )

    assert isinstance(claims[0], Acquired) and isinstance(claims[1], Acquired)
    assert isinstance(claims[2], Busy)
    record = store.get(TOOL, "k")
    assert record is not None and record.token == claims[0].token


def _token(claim: Any) -> str:
    assert isinstance(claim, Acquired)
    return claim.token
