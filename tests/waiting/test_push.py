"""Waiters wake on the store's own notification (Redis pub/sub, PostgreSQL NOTIFY), not on a
poll: with rechecks an hour apart, a completion still reaches the waiter in milliseconds."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from intentq.dedup.base import DedupStore
from intentq.dedup.sql.store import SqlDedupStore
from intentq.errors import KeyReuseMismatch
from intentq.intent import fingerprint
from intentq.ops.awaiting import Status
from intentq.waiting import AsyncWaiter, Waiter
from tests.support.net import wait_until
from tests.waiting.conftest import CountingMemory, counting, later, run_once

NEVER = 3600.0  # a recheck or poll interval no test could sit out
ARGS = {"slot": "15:00"}
FP = fingerprint("book_slot", ARGS)


def test_a_completion_wakes_the_waiter_at_once(push_store: Any) -> None:
    async def scenario() -> tuple[Any, float]:
        async with AsyncWaiter(push_store, recheck=NEVER) as waiter:
            assert waiter.push
            task = asyncio.create_task(waiter.wait("book_slot", "k1", 30, fingerprint=FP))
            # Given the waiter subscribed and found nothing yet
            while push_store.reads.count < 1:
                await asyncio.sleep(0.005)
            # When a worker completes the intent
            finished = await asyncio.to_thread(
                lambda: (run_once(push_store, "book_slot", "k1", ARGS, {"booked": "15:00"}),
                         time.monotonic())[1]
            )  # fmt: skip
            done = await task
            return done, time.monotonic() - finished

    done, late = asyncio.run(scenario())

    # Then it has the result long before any recheck, after one more read
    assert (done.status, done.result) == (Status.COMPLETED, {"booked": "15:00"})
    assert late < 1.0
    assert push_store.reads.count == 2


def test_a_failure_wakes_the_waiter_with_the_letter(push_store: Any) -> None:
    error = {"reason": "permanent", "type": "ValueError", "message": "closed",
             "letter_id": "L-1", "intent_id": "i-1", "attempts": 1}  # fmt: skip

    async def scenario() -> Any:
        async with AsyncWaiter(push_store, recheck=NEVER) as waiter:
            task = asyncio.create_task(waiter.wait("book_slot", "k2", 30, fingerprint=FP))
            while push_store.reads.count < 1:
                await asyncio.sleep(0.005)
            await asyncio.to_thread(run_once, push_store, "book_slot", "k2", ARGS, None, error)
            return await task

    done = asyncio.run(scenario())

    assert done.status is Status.DEAD
    assert (done.error["reason"], done.error["letter_id"]) == ("permanent", "L-1")
    assert push_store.reads.count == 2


def test_the_blocking_waiter_wakes_too(push_store: Any) -> None:
    with Waiter(push_store, recheck=NEVER) as waiter:
        assert waiter.push
        worker = later(lambda: (wait_until(lambda: push_store.reads.count >= 1),
                                run_once(push_store, "book_slot", "k3", ARGS, "ok")))  # fmt: skip
        started = time.monotonic()
        done = waiter.wait("book_slot", "k3", 30, fingerprint=FP)
        worker.join()
    assert (done.status, done.result) == (Status.COMPLETED, "ok")
    assert time.monotonic() - started < 10


def test_other_arguments_under_the_key_are_a_mismatch_not_a_result(push_store: Any) -> None:
    run_once(push_store, "book_slot", "k4", ARGS, {"booked": "15:00"})
    other = fingerprint("book_slot", {"slot": "16:00"})

    with Waiter(push_store) as waiter, pytest.raises(KeyReuseMismatch) as raised:
        waiter.wait("book_slot", "k4", 5, fingerprint=other)

    assert (raised.value.fingerprint, raised.value.existing) == (other, FP)
    assert other[:12] in str(raised.value) and FP[:12] in str(raised.value)


def test_a_timeout_is_an_awaited_not_an_exception(push_store: Any) -> None:
    async def scenario() -> Any:
        async with AsyncWaiter(push_store) as waiter:
            return await waiter.wait("book_slot", "never", 0.2, fingerprint=FP)

    done = asyncio.run(scenario())

    assert done.status is Status.TIMEOUT and done.waited >= 0.2


def test_a_transactional_completion_wakes_only_when_committed(pg_store: SqlDedupStore) -> None:
    from intentq.dedup.base import Acquired

    claim = pg_store.claim("book_slot", "tx", FP)
    assert isinstance(claim, Acquired)

    async def scenario() -> Any:
        async with AsyncWaiter(pg_store, recheck=NEVER) as waiter:
            task = asyncio.create_task(waiter.wait("book_slot", "tx", 30, fingerprint=FP))
            while pg_store.reads.count < 1:
                await asyncio.sleep(0.005)

            def commit() -> None:
                with pg_store.transaction("book_slot", "tx", claim.token) as txn:
                    txn.complete({"booked": "tx"})

            await asyncio.to_thread(commit)
            return await task

    done = asyncio.run(scenario())

    assert (done.status, done.result) == (Status.COMPLETED, {"booked": "tx"})


@pytest.mark.parametrize("push", [False])
def test_stores_that_cannot_notify_are_polled(push: bool) -> None:
    store: DedupStore = counting(CountingMemory())

    async def scenario() -> Any:
        async with AsyncWaiter(store, push=push, poll=0.05) as waiter:
            assert not waiter.push
            task = asyncio.create_task(waiter.wait("book_slot", "m", 10, fingerprint=FP))
            await asyncio.sleep(0.2)
            run_once(store, "book_slot", "m", ARGS, 1)
            return await task

    done = asyncio.run(scenario())

    assert done.result == 1
    assert store.reads.count >= 3  # type: ignore[attr-defined]
