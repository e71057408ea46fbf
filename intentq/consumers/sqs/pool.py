"""A bounded pool of daemon threads that knows how many slots are free.

The worker receives only as many messages as there are free slots, so a received message
starts within milliseconds instead of waiting in a queue while its visibility timeout runs
down. Tasks of a batch after the first may be deferred: while tasks are quick, the thread
that finishes one takes the next, so a batch of quick tools runs on one thread without a
wake-up per message (each wake-up, and each thread contending for the GIL, costs more CPU
than a quick tool). Deferred tasks start at once on idle threads when tasks have lately been
slow, or after waiting ``start_within`` seconds - so slow tools still run side by side.

The threads are daemons: after the shutdown grace, tools still running are abandoned
with the process (their messages reappear; the store's lease fences a late finisher).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

log = logging.getLogger("intentq.sqs")

Task = Callable[[], object]

# A deferred task that no busy thread took within this long gets an idle thread of its own.
# A batch of quick tools takes a few milliseconds on one thread, even with two other threads
# contending for the GIL; waking threads for it costs more than it saves.
START_WITHIN = 0.01
# Tasks are not deferred at all while tasks have lately taken this long each: tools that
# wait on I/O this long run side by side at once, as they would with every task submitted.
EAGER_PACE = 0.005
# Weight of the latest task in the running average of how long tasks take.
_PACE_WEIGHT = 0.1


class Pool:
    """``size`` threads; each queued task takes a slot, a finished task gives it back."""

    def __init__(
        self,
        size: int,
        name: str = "intentq-sqs",
        start_within: float = START_WITHIN,
        eager_pace: float = EAGER_PACE,
    ) -> None:
        self.size = size
        self._name = name
        self._start_within = start_within
        self._eager_pace = eager_pace
        # One lock, three conditions: a submitted task wakes one idle thread, a finished one
        # wakes the receiver, deferred tasks wake the watcher; waking every thread each time
        # costs more than the tasks.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)  # slots freed, all done, stop requested
        self._work_ready = threading.Condition(self._lock)
        self._watch = threading.Condition(self._lock)
        self._now: deque[Task] = deque()  # to start at once
        self._later: deque[tuple[float, Task]] = deque()  # deferred, with when they came
        self._busy = 0  # slots taken: queued or running
        self._pace = 0.0  # how long a task has lately taken, in seconds (running average)
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a task
        self._waking = 0  # of those, woken for a task but not yet running
        self._watcher: threading.Thread | None = None
        self._watching = False  # the watcher has a deadline set: no need to wake it
        self._closed = False
        self._wanted = 0  # free slots the receiver waits for (0: not waiting)
        self._joining = 0  # join() callers waiting

    @property
    def free(self) -> int:
        with self._cond:
            return self.size - self._busy

    @property
    def busy(self) -> int:
        with self._cond:
            return self._busy

    def wait_free(self, want: int, linger: float, stop: threading.Event) -> int:
        """Block until a slot is free, then up to ``linger`` s more for ``want``; 0 on stop."""
        want = max(1, min(want, self.size))
        with self._cond:
            self._wanted = 1
            while self._busy >= self.size and not stop.is_set():
                self._cond.wait()
            # A few slots freeing a moment apart would each trigger a small receive; waiting
            # briefly for a full batch keeps receives at 10 when tools are quick.
            self._wanted = want
            deadline = time.monotonic() + linger
            while self.size - self._busy < want and self._busy and not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._wanted = 0
            return 0 if stop.is_set() else self.size - self._busy

    def wake(self) -> None:
        """Wake ``wait_free`` callers (the stop flag changed)."""
        with self._cond:
            self._cond.notify_all()

    def reserve(self, slots: int) -> None:
        """Take ``slots`` now, to hand to tasks later (``submit(..., reserved=)``)."""
        with self._cond:
            self._busy += slots

    def release(self, slots: int) -> None:
        """Give back reserved slots that no task will use."""
        if slots:
            with self._cond:
                self._slots_done(slots)

    def submit(self, tasks: Sequence[Task], reserved: int = 0) -> None:
        """Queue ``tasks``, one slot each, to start at once on idle threads (or new ones).

        With ``reserved``, the caller hands over that many slots it reserved (at least one
        per task); those the tasks do not need are given back.
        """
        with self._cond:
            self._take_slots(tasks, reserved)
            if not tasks:
                return
            self._now.extend(tasks)
            self._start(len(tasks))

    def defer(self, tasks: Sequence[Task], reserved: int = 0) -> None:
        """Queue ``tasks`` like ``submit``, but without waking idle threads while tasks are quick.

        Each runs on the next thread that finishes a task, or on an idle thread once it has
        waited ``start_within`` seconds: the caller is expected to be about to finish one.
        While tasks have lately taken ``eager_pace`` or more, they start at once, as with
        ``submit``.
        """
        with self._cond:
            self._take_slots(tasks, reserved)
            if not tasks:
                return
            if self._pace >= self._eager_pace:
                self._now.extend(tasks)
                self._start(len(tasks))
                return
            now = time.monotonic()
            self._later.extend((now, task) for task in tasks)
            if self._watcher is None:
                self._watcher = threading.Thread(
                    target=self._watch_deferred, name=f"{self._name}-watch", daemon=True
                )
                self._watcher.start()
            if not self._watching:
                self._watching = True
                self._watch.notify()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every submitted task has finished; ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._joining += 1
                try:
                    self._cond.wait(left)
                finally:
                    self._joining -= 1
            return True

    def close(self) -> None:
        """Let idle threads end; tasks already queued still run."""
        with self._cond:
            self._closed = True
            self._work_ready.notify_all()
            self._watch.notify()

    def _take_slots(self, tasks: Sequence[Task], reserved: int) -> None:
        if reserved < len(tasks) and reserved:
            raise ValueError(f"{len(tasks)} tasks need more than {reserved} reserved slots")
        if self._closed:
            raise RuntimeError("pool is closed")
        if reserved:
            self._slots_done(reserved - len(tasks))
        else:
            self._busy += len(tasks)

    def _start(self, count: int) -> None:
        """Wake ``count`` idle threads, starting new ones (up to ``size``) if too few wait."""
        woken = min(count, self._idle - self._waking)
        if woken:
            self._waking += woken
            self._work_ready.notify(woken)
        for _ in range(min(count - woken, self.size - len(self._threads))):
            thread = threading.Thread(
                target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._now and not self._later and not self._closed:
                    self._idle += 1
                    try:
                        self._work_ready.wait()
                    finally:
                        self._idle -= 1
                        self._waking = max(0, self._waking - 1)
                if self._now:
                    task = self._now.popleft()
                elif self._later:
                    task = self._later.popleft()[1]
                else:
                    return
            started = time.monotonic()
            try:
                task()
            except Exception:
                log.exception("a worker task failed")
            finally:
                took = time.monotonic() - started
                with self._cond:
                    self._pace += (took - self._pace) * _PACE_WEIGHT
                    self._slots_done(1)

    def _watch_deferred(self) -> None:
        """Start deferred tasks that waited too long: the threads before them are stuck."""
        with self._cond:
            while True:
                if not self._later:
                    if self._closed:
                        self._watcher = None
                        return
                    self._watching = False
                    self._watch.wait()
                    continue
                self._watching = True
                left = self._later[0][0] + self._start_within - time.monotonic()
                if left <= 0:
                    # Busy threads are held up by slow tools: give every waiting task a
                    # thread of its own now, then look again a moment later.
                    self._start(len(self._later))
                    left = self._start_within
                self._watch.wait(left)

    def _slots_done(self, slots: int) -> None:
        self._busy -= slots
        wanted = self._wanted and self.size - self._busy >= self._wanted
        if slots and (wanted or (self._joining and not self._busy)):
            self._cond.notify_all()
