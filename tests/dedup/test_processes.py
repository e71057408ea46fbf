"""Real processes against the shared stores: a claim race, and an owner killed by SIGKILL."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from intentq.dedup.base import Acquired, Busy, Cached, ClaimRequest
from intentq.errors import LeaseLost
from tests.dedup.conftest import SHARED, Backend, open_store, store_now

TOOL = "charge_card"
FP = "a" * 64
RACERS = 16
CTX = mp.get_context("fork")  # children open their own store from a picklable spec


def _racer(spec: dict[str, Any], key: str, start: Any, claimed: Any, out: Any) -> None:
    store = open_store(spec)
    try:
        start.wait(30)
        first = store.claim(TOOL, key, FP, lease=30)
        claimed.wait(30)  # every racer has claimed before the winner completes
        if isinstance(first, Acquired):
            store.complete(TOOL, key, first.token, {"charged_by": os.getpid()})
        claimed.wait(30)  # ... and everyone reads after the completion
        out.put((os.getpid(), first, store.claim(TOOL, key, FP, lease=30)))
    finally:
        store.close()


@pytest.mark.parametrize("expired", [False, True], ids=["new-key", "expired-lease"])
@pytest.mark.parametrize("name", SHARED)
def test_sixteen_processes_racing_for_one_key_acquire_it_once(
    make_backend: Callable[[str], Backend], name: str, expired: bool
) -> None:
    """Whether the key is new or its owner's lease ran out, exactly one racer gets it."""
    backend = make_backend(name)
    if expired:
        assert isinstance(backend.store.claim(TOOL, "race", FP, lease=0.2), Acquired)
        until = backend.store.get(TOOL, "race").lease_until  # type: ignore[union-attr]
        backend.eventually(lambda: store_now(backend) > until, what="the lease to run out")
    start, claimed, out = CTX.Barrier(RACERS), CTX.Barrier(RACERS), CTX.Queue()
    procs = [
        CTX.Process(target=_racer, args=(backend.spec, "race", start, claimed, out))
        for _ in range(RACERS)
    ]
    for proc in procs:
        proc.start()
    try:
        reports = [out.get(timeout=60) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
        out.close()
        out.join_thread()

    winners = [(pid, first) for pid, first, _ in reports if isinstance(first, Acquired)]
    assert len(winners) == 1, reports
    assert all(
        isinstance(first, Busy) for _, first, _ in reports if not isinstance(first, Acquired)
    )
    ((winner_pid, winner),) = winners
    assert (winner.attempt, winner.takeover) == ((2, True) if expired else (1, False))
    assert [later for _, _, later in reports] == [Cached({"charged_by": winner_pid})] * RACERS
    assert all(proc.exitcode == 0 for proc in procs)


def _batcher(spec: dict[str, Any], keys: list[str], start: Any, out: Any) -> None:
    store = open_store(spec)
    try:
        start.wait(30)
        claims = store.claim_many([ClaimRequest(TOOL, key, FP, lease=30) for key in keys])
        out.put(
            [key for key, claim in zip(keys, claims, strict=True) if isinstance(claim, Acquired)]
        )
    finally:
        store.close()


@pytest.mark.parametrize("name", SHARED)
def test_overlapping_batches_from_many_processes_acquire_each_key_once(
    make_backend: Callable[[str], Backend], name: str
) -> None:
    """Batches in every order over the same keys: no deadlock, and one owner per key."""
    backend = make_backend(name)
    keys = [f"key-{i}" for i in range(10)]
    workers = 8
    start, out = CTX.Barrier(workers), CTX.Queue()
    procs = [
        CTX.Process(
            target=_batcher, args=(backend.spec, random.Random(w).sample(keys, 10), start, out)
        )
        for w in range(workers)
    ]
    for proc in procs:
        proc.start()
    try:
        won = [key for _ in procs for key in out.get(timeout=60)]
    finally:
        for proc in procs:
            proc.join(30)
        out.close()
        out.join_thread()

    assert sorted(won) == keys
    assert all(proc.exitcode == 0 for proc in procs)


def _creator(spec: dict[str, Any], start: Any, out: Any) -> None:
    store = open_store(spec)
    try:
        start.wait(30)
        store.create_schema()
        out.put("created")
    except Exception as exc:
        out.put(repr(exc))
    finally:
        store.close()


@pytest.mark.parametrize("name", ["postgresql", "sqlite"])
def test_many_processes_may_create_the_schema_at_once(
    make_backend: Callable[[str], Backend], name: str, unique: str
) -> None:
    backend = make_backend(name)
    spec = dict(backend.spec, table=f"fresh_{unique}")  # a table nobody created yet
    start, out = CTX.Barrier(6), CTX.Queue()
    procs = [CTX.Process(target=_creator, args=(spec, start, out)) for _ in range(6)]
    for proc in procs:
        proc.start()
    try:
        answers = [out.get(timeout=60) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
        out.close()
        out.join_thread()
        store = open_store(spec)
        claim = store.claim(TOOL, "k", FP)
        store.drop_schema()  # type: ignore[attr-defined]
        store.close()

    assert answers == ["created"] * 6
    assert isinstance(claim, Acquired)


def _holder(spec: dict[str, Any], key: str, lease: float, out: Any) -> None:
    store = open_store(spec)
    out.put(store.claim(TOOL, key, FP, lease=lease))
    time.sleep(60)  # "running the tool" until killed


def _successor(spec: dict[str, Any], key: str, out: Any, finish: Any) -> None:
    store = open_store(spec)
    try:
        deadline = time.monotonic() + 20
        claim = store.claim(TOOL, key, FP, lease=30)
        while not isinstance(claim, Acquired) and time.monotonic() < deadline:
            time.sleep(0.02)
            claim = store.claim(TOOL, key, FP, lease=30)
        out.put(claim)
        if isinstance(claim, Acquired) and finish.wait(30):
            store.complete(TOOL, key, claim.token, "done by the successor")
            out.put("completed")
    finally:
        store.close()


@pytest.mark.parametrize("name", SHARED)
def test_a_killed_owner_is_taken_over_and_its_token_can_never_finish(
    make_backend: Callable[[str], Backend], name: str
) -> None:
    backend = make_backend(name)
    store, finish = backend.store, CTX.Event()
    # Two queues: a process killed right after its put may still hold its queue's lock.
    held, out = CTX.Queue(), CTX.Queue()
    holder = CTX.Process(target=_holder, args=(backend.spec, "k", 0.5, held))
    holder.start()
    successor = None
    try:
        killed = held.get(timeout=30)
        assert isinstance(killed, Acquired)
        os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
        holder.join(10)
        assert holder.exitcode == -signal.SIGKILL

        successor = CTX.Process(target=_successor, args=(backend.spec, "k", out, finish))
        successor.start()
        taken = out.get(timeout=30)
        assert isinstance(taken, Acquired) and (taken.attempt, taken.takeover) == (2, True)

        # While the successor runs, and after it finished, the dead owner's token is stale.
        with pytest.raises(LeaseLost):
            store.complete(TOOL, "k", killed.token, "done by the dead owner")
        record = store.get(TOOL, "k")
        assert record is not None and record.token == taken.token
        finish.set()
        assert out.get(timeout=30) == "completed"
        for finisher in (
            lambda: store.complete(TOOL, "k", killed.token, "late"),
            lambda: store.fail(TOOL, "k", killed.token, {"reason": "late"}),
            lambda: store.release(TOOL, "k", killed.token),
            lambda: store.extend(TOOL, "k", killed.token, 30),
        ):
            with pytest.raises(LeaseLost):
                finisher()
        assert store.claim(TOOL, "k", FP) == Cached("done by the successor")
    finally:
        for proc in (holder, successor):
            if proc is not None and proc.is_alive():
                proc.kill()
            if proc is not None:
                proc.join(10)
        for q in (held, out):
            q.close()
            q.join_thread()
