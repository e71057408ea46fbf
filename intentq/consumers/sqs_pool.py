"""A bounded pool of daemon threads that knows how many slots are free.

The worker receives only as many messages as there are free slots, so a received message
starts at once instead of waiting in a queue while its visibility timeout runs down.
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


class Pool:
    """``size`` threads; ``submit`` takes a slot, a finished task gives it back."""

    def __init__(self, size: int, name: str = "intentq-sqs") -> None:
        self.size = size
        self._name = name
        # One lock, two conditions: a submitted task wakes one idle thread, a finished one
        # wakes the receiver; waking every thread each time costs more than the tasks.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)  # slots freed, all done, stop requested
        self._work_ready = threading.Condition(self._lock)
        self._tasks: deque[Task] = deque()
        self._busy = 0  # slots taken: queued or running
        self._threads: list[threading.Thread] = []
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
        """Queue ``tasks``, one slot each; they start on idle threads, or new ones.

        With ``reserved``, the caller hands over that many slots it reserved (at least one
        per task); those the tasks do not need are given back.
        """
        if reserved < len(tasks) and reserved:
            raise ValueError(f"{len(tasks)} tasks need more than {reserved} reserved slots")
        with self._cond:
            if self._closed:
                raise RuntimeError("pool is closed")
            if reserved:
                self._slots_done(reserved - len(tasks))
            else:
                self._busy += len(tasks)
            if not tasks:
                return
            self._tasks.extend(tasks)
            while len(self._threads) < min(self.size, self._busy):
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            # Wake one idle thread; each thread that takes a task wakes the next if more wait,
            # so the receiving thread does not pay for every wake-up.
            self._work_ready.notify()

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

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._tasks and not self._closed:
                    self._work_ready.wait()
                if not self._tasks:
                    return
                task = self._tasks.popleft()
                if self._tasks:
                    self._work_ready.notify()
            try:
                task()
            except Exception:
                log.exception("a worker task failed")
            finally:
                with self._cond:
                    self._slots_done(1)

    def _slots_done(self, slots: int) -> None:
        self._busy -= slots
        wanted = self._wanted and self.size - self._busy >= self._wanted
        if slots and (wanted or (self._joining and not self._busy)):
            self._cond.notify_all()
