"""A master of a real Redis Cluster is SIGKILLed while threads claim and complete.

Until its replica has taken over, the store answers ``StoreUnavailable``, never a wrong
answer; afterwards every key is completed or claimable again. Replication is asynchronous, so
a claim or a completion the dead master acknowledged but had not yet sent to its replica can
be lost: then that key's tool runs a second time. The test allows that on the dead master's
slots only, and says how often it happened.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from redis.crc import key_slot

from intentq.dedup.base import Acquired, Cached, store_key
from intentq.dedup.redis.store import RedisDedupStore
from intentq.errors import LeaseLost, StoreUnavailable
from tests.support.redis_cluster import LocalCluster, own_cluster, poll  # noqa: F401

TOOL = "send_invoice"
FP = "e" * 64
WORKERS = 4
LEASE = 3.0  # how long a key whose owner lost track of it waits for the final sweep
TIMEOUT = 30.0


@dataclass
class Ledger:
    """What the workers were told, shared by the threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    issued: list[str] = field(default_factory=list)
    acquired: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    completed: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    cached: list[tuple[str, Any]] = field(default_factory=list)
    unavailable: list[float] = field(default_factory=list)
    causes: Counter[str] = field(default_factory=Counter)  # the driver errors behind them
    successes: list[tuple[float, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def note(self, exc: StoreUnavailable) -> None:
        with self.lock:
            self.unavailable.append(time.monotonic())
            self.causes[type(exc.__cause__).__name__] += 1


def _complete(store: RedisDedupStore, key: str, token: str, ledger: Ledger) -> None:
    """Complete until the store answers: a lost reply is retried, and then LeaseLost."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            store.complete(TOOL, key, token, {"token": token})
        except StoreUnavailable as exc:
            ledger.note(exc)
            time.sleep(0.01)  # a pause between retries, not a wait for anything
            continue
        except LeaseLost:
            return  # taken over meanwhile, or the first try had landed: the record says which
        with ledger.lock:
            ledger.completed[key].append(token)
            ledger.successes.append((time.monotonic(), key))
        return
    with ledger.lock:
        ledger.errors.append(f"complete of {key} never answered")


def _worker(
    url: str, prefix: str, counter: Any, stop: threading.Event, ledger: Ledger, seed: int
) -> None:
    rng = random.Random(seed)
    retry: list[str] = []
    store = RedisDedupStore.from_url(url, prefix=prefix)
    try:
        while not stop.is_set():
            if retry and rng.random() < 0.5:
                key = retry.pop()
            elif ledger.issued and rng.random() < 0.3:  # a duplicate of an earlier intent
                key = rng.choice(ledger.issued)
            else:
                key = f"inv-{next(counter)}"
                with ledger.lock:
                    ledger.issued.append(key)
            try:
                claim = store.claim(TOOL, key, FP, lease=LEASE)
            except StoreUnavailable as exc:
                ledger.note(exc)
                retry.append(key)
                continue
            if isinstance(claim, Acquired):
                with ledger.lock:
                    ledger.acquired[key].add(claim.token)
                _complete(store, key, claim.token, ledger)
            elif isinstance(claim, Cached):
                with ledger.lock:
                    ledger.cached.append((key, claim.result))
    except Exception as exc:  # anything but the store's outage answer is a failure
        with ledger.lock:
            ledger.errors.append(repr(exc))
    finally:
        store.close()


def _slots_of(cluster: LocalCluster, port: int) -> set[int]:
    """The slots the node on ``port`` serves as master now."""
    slots: set[int] = set()
    ranges: Any = cluster.masters()[0].query("CLUSTER", "SLOTS")
    for start, end, master, *_ in ranges:
        if int(master[1]) == port:
            slots.update(range(int(start), int(end) + 1))
    return slots


def _final_sweep(store: RedisDedupStore, keys: list[str], ledger: Ledger) -> None:
    """Every key ends completed: one left in progress is claimed once its lease ran out."""
    for key in keys:
        claim = poll(
            lambda k=key: _settled(store.claim(TOOL, k, FP, lease=LEASE)),
            LEASE + 10,
            f"{key} to be completed or claimable",
        )
        if isinstance(claim, Acquired):
            ledger.acquired[key].add(claim.token)
            store.complete(TOOL, key, claim.token, {"token": claim.token})
            ledger.completed[key].append(claim.token)


def _settled(claim: Any) -> Any:
    return claim if isinstance(claim, (Acquired, Cached)) else None


def test_a_killed_master_means_unavailable_then_its_replica_answers(
    own_cluster: LocalCluster,  # noqa: F811 - the fixture
    unique: str,
) -> None:
    cluster, ledger, stop = own_cluster, Ledger(), threading.Event()
    prefix, counter = f"failover-{unique}", itertools.count()
    threads = [
        threading.Thread(target=_worker, args=(cluster.url, prefix, counter, stop, ledger, seed))
        for seed in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    try:
        # Given workers claiming and completing on every master
        poll(lambda: len(ledger.successes) >= 300, TIMEOUT, "completions before the kill")
        victim = cluster.masters()[0]
        replica = cluster.replica_of(victim)
        lost_slots = _slots_of(cluster, victim.port)

        # When a master is killed outright and its replica takes over
        killed_at = time.monotonic()
        victim.kill()
        poll(lambda: replica.info("replication").get("role") == "master", TIMEOUT, "a failover")
        promoted_at = time.monotonic()
        done_before = len(ledger.successes)
        poll(
            lambda: (
                sum(
                    1
                    for at, key in ledger.successes[done_before:]
                    if key_slot(store_key(prefix, TOOL, key).encode()) in lost_slots
                )
                >= 50
            ),
            TIMEOUT,
            "completions on the promoted replica",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(TIMEOUT)

    # Then nothing but StoreUnavailable was raised, and it was raised during the outage
    assert ledger.errors == []
    assert ledger.unavailable, "no call noticed the outage"
    assert min(ledger.unavailable) >= killed_at
    # ... and afterwards every key is completed, or claimable and then completed
    store = RedisDedupStore.from_url(cluster.url, prefix=prefix)
    try:
        _final_sweep(store, ledger.issued, ledger)
        final = {key: store.claim(TOOL, key, FP) for key in ledger.issued}
    finally:
        store.close()

    def on_lost_master(key: str) -> bool:
        return key_slot(store_key(prefix, TOOL, key).encode()) in lost_slots

    twice = sorted(k for k, tokens in ledger.completed.items() if len(tokens) > 1)
    for key in ledger.issued:
        answer = final[key]
        assert isinstance(answer, Cached), (key, answer)
        # A result is always one an owner of the key wrote: never another key's, never made up.
        assert answer.result["token"] in ledger.acquired[key], key
        if not on_lost_master(key):
            assert len(ledger.completed[key]) <= 1, key  # lost writes only where the master died
    for key, result in ledger.cached:
        assert result["token"] in ledger.acquired[key], key
    assert all(on_lost_master(k) for k in twice)
    print(
        f"\n{len(ledger.issued)} keys, {len(ledger.unavailable)} StoreUnavailable; "
        f"failover {promoted_at - killed_at:.1f}s after the kill, the last StoreUnavailable "
        f"{max(ledger.unavailable) - killed_at:.1f}s after it; keys completed twice: {len(twice)}; "
        f"causes: {dict(ledger.causes)}"
    )
