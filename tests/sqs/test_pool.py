"""The worker's thread pool: deferred tasks run where a thread frees up, or on idle threads."""

from __future__ import annotations

import threading
from collections.abc import Callable

from intentq.consumers.sqs.pool import Pool


def test_quick_deferred_tasks_run_one_after_another_on_the_thread_that_deferred_them() -> None:
    # A long start_within: no idle thread is ever woken for a deferred task.
    pool = Pool(4, name="quick", start_within=60)
    ran: list[str] = []
    planner: list[str] = []

    def record(n: int) -> Callable[[], None]:
        return lambda: ran.append(f"{n}:{threading.current_thread().name}")

    def plan() -> None:
        planner.append(threading.current_thread().name)
        pool.defer([record(n) for n in range(1, 4)], reserved=3)
        record(0)()

    pool.reserve(4)
    pool.submit([plan], reserved=1)
    assert pool.join(10)
    # In order, on the planning thread: no thread was started or woken per task.
    assert ran == [f"{n}:{planner[0]}" for n in range(4)]
    assert [t.name for t in threading.enumerate() if t.name.startswith("quick-")] == [
        "quick-0",
        "quick-watch",
    ]
    assert pool.free == 4
    pool.close()


def test_deferred_tasks_behind_a_slow_one_start_on_idle_threads() -> None:
    pool = Pool(4, start_within=0.01)
    # All four must run at once for the barrier to open: the three deferred behind the
    # first (which waits here) have to be started on other threads.
    together = threading.Barrier(4, timeout=10)
    threads: set[str] = set()

    def meet() -> None:
        threads.add(threading.current_thread().name)
        together.wait()

    def plan() -> None:
        pool.defer([meet, meet, meet], reserved=3)
        meet()

    pool.reserve(4)
    pool.submit([plan], reserved=1)
    assert pool.join(20)
    assert not together.broken
    assert len(threads) == 4
    pool.close()


def test_a_thread_that_finishes_a_task_takes_a_deferred_one() -> None:
    pool = Pool(2, start_within=60)
    release, deferred_ran = threading.Event(), threading.Event()
    names: dict[str, str] = {}

    def slow() -> None:
        release.wait(10)

    def deferred() -> None:
        names["deferred"] = threading.current_thread().name
        deferred_ran.set()

    def plan() -> None:
        names["plan"] = threading.current_thread().name
        pool.defer([deferred], reserved=1)

    pool.reserve(1)
    pool.submit([slow], reserved=1)
    pool.reserve(2)
    pool.submit([plan], reserved=1)
    # The planning thread, done, took the deferred task while the slow one still runs.
    assert deferred_ran.wait(10)
    assert not release.is_set()
    assert names["deferred"] == names["plan"]
    release.set()
    assert pool.join(10)
    pool.close()


def test_after_slow_tasks_deferred_ones_start_at_once() -> None:
    # No watcher to rescue them: only the pace of earlier tasks can start them together.
    pool = Pool(4, start_within=60, eager_pace=0.02)
    slow = threading.Event()  # never set: each wait is a tool spending 50 ms on I/O
    for _ in range(4):
        pool.submit([lambda: slow.wait(0.05)] * 4)
        assert pool.join(10)

    together = threading.Barrier(4, timeout=10)

    def plan() -> None:
        pool.defer([together.wait] * 3, reserved=3)
        together.wait()

    pool.reserve(4)
    pool.submit([plan], reserved=1)
    assert pool.join(20)
    assert not together.broken
    pool.close()
