"""``complete_many``: the store contract's batch completion, run against every backend."""

from __future__ import annotations

from typing import Any

import pytest

from intentq.dedup.base import Acquired, Cached, CompleteRequest, DedupStore, State
from intentq.errors import LeaseLost
from tests.dedup.conftest import Backend
from tests.dedup.test_contract import FP, SHORT, TOOL, acquire, take_over


def request(key: str, claim: Acquired, result: Any, ttl: float = 3600) -> CompleteRequest:
    return CompleteRequest(TOOL, key, claim.token, result, ttl)


def test_every_owner_is_recorded_with_its_own_result(store: DedupStore) -> None:
    claims = {key: acquire(store, key) for key in ("k1", "k2", "k3")}

    answers = store.complete_many([request(k, c, {"k": k}) for k, c in claims.items()])

    assert answers == [None, None, None]
    for key in claims:
        assert store.claim(TOOL, key, FP) == Cached({"k": key})
        record = store.get(TOOL, key)
        assert record is not None
        assert (record.state, record.token, record.result) == (State.COMPLETED, "", {"k": key})


@pytest.mark.parametrize("result", [0, {}, None, "", [], False])
def test_falsy_results_are_recorded_faithfully(store: DedupStore, result: Any) -> None:
    claim = acquire(store)

    assert store.complete_many([request("k1", claim, result)]) == [None]
    assert store.claim(TOOL, "k1", FP) == Cached(result)


def test_an_empty_batch_records_nothing(store: DedupStore) -> None:
    assert store.complete_many([]) == []


def test_a_fenced_entry_is_lease_lost_alone_and_the_rest_are_recorded(backend: Backend) -> None:
    # Given k2's first owner lost its lease to a second owner
    store = backend.store
    first = acquire(store, "k1")
    stale = acquire(store, "k2", lease=SHORT)
    third = acquire(store, "k3")
    owner = take_over(backend, "k2")

    # When the first owner completes its batch, k2 included
    answers = store.complete_many(
        [request("k1", first, "one"), request("k2", stale, "late"), request("k3", third, "three")]
    )

    # Then only k2 is LeaseLost, with the record as the new owner holds it
    assert answers[0] is None and answers[2] is None
    lost = answers[1]
    assert isinstance(lost, LeaseLost)
    assert (lost.tool, lost.key, lost.token) == (TOOL, "k2", stale.token)
    assert lost.record is not None and lost.record.token == owner.token
    assert store.claim(TOOL, "k1", FP) == Cached("one")
    assert store.claim(TOOL, "k3", FP) == Cached("three")
    record = store.get(TOOL, "k2")
    assert record is not None
    assert (record.state, record.token) == (State.IN_PROGRESS, owner.token)
    # and the new owner still completes it
    assert store.complete_many([request("k2", owner, "rerun")]) == [None]
    assert store.claim(TOOL, "k2", FP) == Cached("rerun")


def test_finished_released_and_absent_keys_are_lease_lost(store: DedupStore) -> None:
    done, released = acquire(store, "done"), acquire(store, "released")
    store.complete(TOOL, "done", done.token, "first")
    store.release(TOOL, "released", released.token)
    absent = Acquired("0" * 32, 1)

    answers = store.complete_many(
        [
            request("done", done, "again"),
            request("released", released, "x"),
            request("absent", absent, "x"),
            CompleteRequest(TOOL, "done", "", "empty token"),
        ]
    )

    assert all(isinstance(a, LeaseLost) for a in answers), answers
    assert store.claim(TOOL, "done", FP) == Cached("first")
    assert store.get(TOOL, "absent") is None
    record = store.get(TOOL, "released")
    assert record is not None and record.state is State.IN_PROGRESS and record.token == ""


def test_a_key_given_twice_is_recorded_once_by_its_first_entry(store: DedupStore) -> None:
    claim = acquire(store, "k1")
    other = acquire(store, "k2")

    answers = store.complete_many(
        [request("k1", claim, "first"), request("k2", other, 2), request("k1", claim, "second")]
    )

    assert answers[0] is None and answers[1] is None
    assert isinstance(answers[2], LeaseLost)
    assert store.claim(TOOL, "k1", FP) == Cached("first")


def test_a_stale_entry_before_the_owners_leaves_the_owner_to_record(backend: Backend) -> None:
    store = backend.store
    stale = acquire(store, "k1", lease=SHORT)
    owner = take_over(backend, "k1")

    answers = store.complete_many([request("k1", stale, "late"), request("k1", owner, "owner")])

    assert isinstance(answers[0], LeaseLost) and answers[1] is None
    assert store.claim(TOOL, "k1", FP) == Cached("owner")


def test_each_entry_keeps_its_own_ttl(backend: Backend) -> None:
    store = backend.store
    short, long_ = acquire(store, "short"), acquire(store, "long")

    assert store.complete_many([request("short", short, 1, ttl=1), request("long", long_, 2)]) == [
        None,
        None,
    ]

    backend.eventually(lambda: store.get(TOOL, "short") is None, what="the short record expiring")
    assert store.claim(TOOL, "long", FP) == Cached(2)
    assert isinstance(store.claim(TOOL, "short", FP), Acquired)
