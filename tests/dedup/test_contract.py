"""The store contract, run against every backend (memory, Redis, PostgreSQL, SQLite)."""

from __future__ import annotations

from typing import Any

import pytest

from intentq.dedup.base import (
    MIN_RETRY_AFTER,
    Acquired,
    Busy,
    Cached,
    ClaimRequest,
    Dead,
    DedupStore,
    Mismatch,
    State,
)
from intentq.errors import LeaseLost
from tests.dedup.conftest import Backend, store_now

TOOL = "book_slot"
FP = "f" * 64
OTHER_FP = "0" * 64
SHORT = 0.3  # a lease that runs out during the test
LONG = 60.0  # a lease that does not


def acquire(store: DedupStore, key: str = "k1", lease: float = LONG, ttl: float = 3600) -> Acquired:
    claim = store.claim(TOOL, key, FP, lease=lease, ttl=ttl)
    assert isinstance(claim, Acquired), claim
    return claim


def take_over(backend: Backend, key: str = "k1", lease: float = LONG) -> Acquired:
    """Claim again until the previous owner's lease has run out."""
    claim = backend.eventually(
        lambda: _acquired(backend.store.claim(TOOL, key, FP, lease=lease)), what="a takeover"
    )
    assert isinstance(claim, Acquired)
    return claim


def _acquired(claim: Any) -> Any:
    return claim if isinstance(claim, Acquired) else None


# -- claiming ------------------------------------------------------------------------------


def test_a_new_key_is_acquired_with_attempt_one(store: DedupStore) -> None:
    claim = store.claim(TOOL, "k1", FP, lease=LONG, ttl=3600)

    assert isinstance(claim, Acquired)
    assert (claim.attempt, claim.takeover) == (1, False)
    record = store.get(TOOL, "k1")
    assert record is not None
    assert (record.state, record.token, record.fingerprint) == (State.IN_PROGRESS, claim.token, FP)
    assert (record.tool, record.key, record.attempts) == (TOOL, "k1", 1)
    assert record.lease_until == pytest.approx(record.created_at + LONG, abs=0.01)


def test_tokens_are_unique_per_claim(store: DedupStore) -> None:
    tokens = {acquire(store, f"k{i}").token for i in range(20)}
    assert len(tokens) == 20 and "" not in tokens


def test_the_same_key_in_another_tool_is_another_record(store: DedupStore) -> None:
    acquire(store, "k1")
    assert isinstance(store.claim("other_tool", "k1", FP), Acquired)


@pytest.mark.parametrize("result", [{"slot": "15:00", "ok": True}, [1, "two", None], "text", 3.5])
def test_a_completed_key_returns_the_cached_result(store: DedupStore, result: Any) -> None:
    claim = acquire(store)
    store.complete(TOOL, "k1", claim.token, result)

    assert store.claim(TOOL, "k1", FP) == Cached(result)
    record = store.get(TOOL, "k1")
    assert record is not None
    assert (record.state, record.result, record.token) == (State.COMPLETED, result, "")


@pytest.mark.parametrize("result", [0, False, "", [], {}, None, 0.0])
def test_falsy_results_are_cached_faithfully(store: DedupStore, result: Any) -> None:
    claim = acquire(store)
    store.complete(TOOL, "k1", claim.token, result)

    cached = store.claim(TOOL, "k1", FP)
    assert isinstance(cached, Cached)
    assert cached.result == result and type(cached.result) is type(result)


def test_a_live_lease_answers_busy_with_the_time_left(store: DedupStore) -> None:
    acquire(store, lease=30)

    busy = store.claim(TOOL, "k1", FP, lease=30)

    assert isinstance(busy, Busy)
    assert 25 < busy.retry_after <= 30
    assert store.get(TOOL, "k1").attempts == 1  # type: ignore[union-attr]


def test_busy_is_never_told_to_come_back_sooner_than_the_minimum() -> None:
    from intentq.dedup.memory import MemoryDedupStore
    from tests.dedup.conftest import FakeClock

    clock = FakeClock()
    store = MemoryDedupStore(clock=clock)
    acquire(store, lease=1.0)
    clock.advance(0.999)

    assert store.claim(TOOL, "k1", FP) == Busy(MIN_RETRY_AFTER)


def test_an_expired_lease_is_taken_over_with_a_new_token(backend: Backend) -> None:
    first = acquire(backend.store, lease=SHORT)

    second = take_over(backend)

    assert second.token != first.token
    assert (second.attempt, second.takeover) == (2, True)
    record = backend.store.get(TOOL, "k1")
    assert record is not None and record.token == second.token


# -- fencing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["complete", "fail", "release", "extend"])
def test_a_stale_token_gets_lease_lost_and_leaves_the_new_owner_alone(
    backend: Backend, op: str
) -> None:
    store = backend.store
    stale = acquire(store, lease=SHORT)
    owner = take_over(backend)
    before = store.get(TOOL, "k1")

    with pytest.raises(LeaseLost) as caught:
        _finish(store, op, stale.token)

    assert caught.value.token == stale.token
    assert store.get(TOOL, "k1") == before
    store.complete(TOOL, "k1", owner.token, "the re-run's result")
    assert store.claim(TOOL, "k1", FP) == Cached("the re-run's result")


def test_a_late_finisher_never_overwrites_the_rerun(backend: Backend) -> None:
    """A slow first owner finishing after its takeover must not replace the re-run's result."""
    store = backend.store
    slow = acquire(store, lease=SHORT)
    rerun = take_over(backend)
    store.complete(TOOL, "k1", rerun.token, {"booking": 2})

    with pytest.raises(LeaseLost):
        store.complete(TOOL, "k1", slow.token, {"booking": 1})

    assert store.claim(TOOL, "k1", FP) == Cached({"booking": 2})


@pytest.mark.parametrize("op", ["complete", "fail", "release", "extend"])
def test_a_finished_record_has_no_owner(store: DedupStore, op: str) -> None:
    claim = acquire(store)
    store.complete(TOOL, "k1", claim.token, "done")

    with pytest.raises(LeaseLost):
        _finish(store, op, claim.token)

    assert store.claim(TOOL, "k1", FP) == Cached("done")


@pytest.mark.parametrize("op", ["complete", "fail", "release", "extend"])
def test_a_released_record_is_owned_by_no_token(store: DedupStore, op: str) -> None:
    claim = acquire(store)
    store.release(TOOL, "k1", claim.token)

    for token in (claim.token, ""):
        with pytest.raises(LeaseLost):
            _finish(store, op, token)

    record = store.get(TOOL, "k1")
    assert record is not None and (record.state, record.token) == (State.IN_PROGRESS, "")


@pytest.mark.parametrize("op", ["complete", "fail", "release", "extend"])
def test_an_absent_record_is_lease_lost(store: DedupStore, op: str) -> None:
    with pytest.raises(LeaseLost):
        _finish(store, op, "0" * 32)
    assert store.get(TOOL, "k1") is None


def _finish(store: DedupStore, op: str, token: str) -> None:
    if op == "complete":
        store.complete(TOOL, "k1", token, "late")
    elif op == "fail":
        store.fail(TOOL, "k1", token, {"reason": "permanent"})
    elif op == "release":
        store.release(TOOL, "k1", token)
    else:
        store.extend(TOOL, "k1", token, LONG)


# -- attempts, release, failure --------------------------------------------------------------


def test_a_released_key_is_claimable_at_once_and_keeps_its_attempts(store: DedupStore) -> None:
    first = acquire(store)
    store.release(TOOL, "k1", first.token)

    record = store.get(TOOL, "k1")
    assert record is not None and (record.token, record.attempts) == ("", 1)
    again = store.claim(TOOL, "k1", FP)
    assert isinstance(again, Acquired)
    assert (again.attempt, again.takeover) == (2, False)


def test_attempts_survive_releases_and_takeovers(backend: Backend) -> None:
    store = backend.store
    store.release(TOOL, "k1", acquire(store).token)  # attempt 1
    acquire_2 = store.claim(TOOL, "k1", FP, lease=SHORT)  # attempt 2, then dies
    assert isinstance(acquire_2, Acquired) and acquire_2.attempt == 2
    third = take_over(backend)
    store.release(TOOL, "k1", third.token)
    fourth = acquire(store)

    assert (third.attempt, fourth.attempt) == (3, 4)
    assert store.get(TOOL, "k1").attempts == 4  # type: ignore[union-attr]


def test_a_failed_key_is_dead_until_reset(store: DedupStore) -> None:
    claim = acquire(store)
    error = {"reason": "permanent", "type": "ValueError", "message": "no such slot"}
    store.fail(TOOL, "k1", claim.token, error)

    assert store.claim(TOOL, "k1", FP) == Dead(error)
    assert store.claim(TOOL, "k1", FP) == Dead(error)
    record = store.get(TOOL, "k1")
    assert record is not None and (record.state, record.error) == (State.FAILED, error)

    assert store.reset(TOOL, "k1") is True
    assert store.get(TOOL, "k1") is None
    fresh = store.claim(TOOL, "k1", FP)
    assert isinstance(fresh, Acquired) and fresh.attempt == 1


def test_reset_leaves_records_that_are_not_failed(store: DedupStore) -> None:
    running = acquire(store, "running")
    done = acquire(store, "done")
    store.complete(TOOL, "done", done.token, 1)

    assert store.reset(TOOL, "running") is False
    assert store.reset(TOOL, "done") is False
    assert store.reset(TOOL, "absent") is False
    assert store.get(TOOL, "running").token == running.token  # type: ignore[union-attr]
    assert store.claim(TOOL, "done", FP) == Cached(1)


# -- fingerprints --------------------------------------------------------------------------


def test_another_fingerprint_is_a_mismatch_and_the_first_result_stays(store: DedupStore) -> None:
    claim = acquire(store)
    store.complete(TOOL, "k1", claim.token, {"first": True})
    before = store.get(TOOL, "k1")

    assert store.claim(TOOL, "k1", OTHER_FP) == Mismatch(fingerprint=OTHER_FP, existing=FP)
    assert store.get(TOOL, "k1") == before
    assert store.claim(TOOL, "k1", FP) == Cached({"first": True})


def test_mismatch_is_checked_before_busy_dead_or_takeover(backend: Backend) -> None:
    store = backend.store
    acquire(store, "running")
    store.fail(TOOL, "dead", acquire(store, "dead").token, {"reason": "x"})
    acquire(store, "expired", lease=SHORT)
    lease_until = store.get(TOOL, "expired").lease_until  # type: ignore[union-attr]
    backend.eventually(lambda: store_now(backend) > lease_until, what="the lease to run out")

    for key in ("running", "dead", "expired"):
        before = store.get(TOOL, key)
        assert store.claim(TOOL, key, OTHER_FP) == Mismatch(OTHER_FP, FP)
        assert store.get(TOOL, key) == before
    takeover = store.claim(TOOL, "expired", FP)
    assert isinstance(takeover, Acquired) and takeover.takeover


# -- leases and expiry -----------------------------------------------------------------------


def test_extend_pushes_the_lease_from_now(store: DedupStore) -> None:
    claim = acquire(store, lease=SHORT)

    until = store.extend(TOOL, "k1", claim.token, 30)

    record = store.get(TOOL, "k1")
    assert record is not None
    assert record.lease_until == pytest.approx(until, abs=0.002)
    assert until == pytest.approx(record.updated_at + 30, abs=0.002)
    busy = store.claim(TOOL, "k1", FP)
    assert isinstance(busy, Busy) and busy.retry_after > 25


def test_an_in_progress_record_lives_for_the_longer_of_ttl_and_lease(store: DedupStore) -> None:
    acquire(store, "lease-longer", lease=60, ttl=10)
    acquire(store, "ttl-longer", lease=10, ttl=60)

    for key in ("lease-longer", "ttl-longer"):
        record = store.get(TOOL, key)
        assert record is not None
        assert record.expires_at == pytest.approx(record.created_at + 60, abs=0.002)


def test_extend_keeps_a_record_alive_past_its_ttl(backend: Backend) -> None:
    store = backend.store
    claim = acquire(store, lease=SHORT, ttl=SHORT)
    until = store.extend(TOOL, "k1", claim.token, LONG)

    backend.wait(SHORT + 0.2)

    record = store.get(TOOL, "k1")
    assert record is not None and record.token == claim.token
    assert record.expires_at >= until - 0.002
    store.complete(TOOL, "k1", claim.token, "finished late")
    assert store.claim(TOOL, "k1", FP) == Cached("finished late")


def test_after_the_ttl_a_completed_key_is_new_again(backend: Backend) -> None:
    store = backend.store
    claim = acquire(store, lease=SHORT, ttl=SHORT)
    store.complete(TOOL, "k1", claim.token, "old", ttl=SHORT)
    assert store.claim(TOOL, "k1", FP) == Cached("old")

    backend.eventually(lambda: store.get(TOOL, "k1") is None, what="the record to expire")

    fresh = store.claim(TOOL, "k1", OTHER_FP)  # an expired record is no mismatch either
    assert isinstance(fresh, Acquired) and (fresh.attempt, fresh.takeover) == (1, False)


def test_after_the_ttl_a_failed_key_is_new_again(backend: Backend) -> None:
    store = backend.store
    store.fail(TOOL, "k1", acquire(store, lease=SHORT).token, {"reason": "x"}, ttl=SHORT)

    backend.eventually(lambda: store.get(TOOL, "k1") is None, what="the record to expire")

    fresh = store.claim(TOOL, "k1", FP)
    assert isinstance(fresh, Acquired) and fresh.attempt == 1


def test_the_owner_of_an_expired_record_has_lost_it(backend: Backend) -> None:
    store = backend.store
    claim = acquire(store, lease=SHORT, ttl=SHORT)
    backend.eventually(lambda: store.get(TOOL, "k1") is None, what="the record to expire")

    with pytest.raises(LeaseLost):
        store.complete(TOOL, "k1", claim.token, "too late")
    assert store.get(TOOL, "k1") is None


# -- inspection and operator acts ------------------------------------------------------------


def test_get_of_an_unknown_key_is_none(store: DedupStore) -> None:
    assert store.get(TOOL, "never-seen") is None


def test_forget_deletes_any_record(store: DedupStore) -> None:
    running = acquire(store, "running")
    done = acquire(store, "done")
    store.complete(TOOL, "done", done.token, 1)

    assert store.forget(TOOL, "running") is True
    assert store.forget(TOOL, "done") is True
    assert store.forget(TOOL, "running") is False
    assert store.get(TOOL, "done") is None
    with pytest.raises(LeaseLost):
        store.complete(TOOL, "running", running.token, "after forget")
    fresh = store.claim(TOOL, "done", FP)
    assert isinstance(fresh, Acquired) and fresh.attempt == 1


def test_times_come_from_the_store_clock(backend: Backend) -> None:
    before = store_now(backend)
    acquire(backend.store)
    after = store_now(backend)

    record = backend.store.get(TOOL, "k1")
    assert record is not None
    assert before - 0.002 <= record.created_at <= after + 0.002


# -- batches ---------------------------------------------------------------------------------


def test_claim_many_answers_each_entry_like_claim(store: DedupStore) -> None:
    store.complete(TOOL, "done", acquire(store, "done").token, 0)
    acquire(store, "running", lease=30)
    store.fail(TOOL, "dead", acquire(store, "dead").token, {"reason": "poison"})
    store.complete(TOOL, "reused", acquire(store, "reused").token, "first")

    claims = store.claim_many(
        [
            ClaimRequest(TOOL, "new-1", FP),
            ClaimRequest(TOOL, "done", FP),
            ClaimRequest(TOOL, "running", FP),
            ClaimRequest(TOOL, "dead", FP),
            ClaimRequest(TOOL, "reused", OTHER_FP),
            ClaimRequest("other_tool", "new-2", FP, lease=5, ttl=50),
            ClaimRequest(TOOL, "new-1", FP),  # the same key twice: the first entry owns it
        ]
    )

    new_1, done, running, dead, reused, new_2, twice = claims
    assert isinstance(new_1, Acquired) and new_1.attempt == 1
    assert done == Cached(0)
    assert isinstance(running, Busy) and 25 < running.retry_after <= 30
    assert dead == Dead({"reason": "poison"})
    assert reused == Mismatch(OTHER_FP, FP)
    assert isinstance(new_2, Acquired) and new_2.token != new_1.token
    assert isinstance(twice, Busy)
    record = store.get("other_tool", "new-2")
    assert record is not None and record.expires_at == pytest.approx(
        record.created_at + 50, abs=0.002
    )


def test_claim_many_of_nothing_is_nothing(store: DedupStore) -> None:
    assert store.claim_many([]) == []
