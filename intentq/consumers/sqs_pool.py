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
from collections.abc import Callable

log = logging.getLogger("intentq.sqs")

Task = Callable[[], object]


class Pool:
    """``size`` threads; ``submit`` takes a slot, a finished task gives it back."""

    def __init__(self, size: int, name: str = "intentq-sqs") -> None:
        self.size = size
        self._name = name
        self._cond = threading.Condition()
        self._tasks: deque[Task] = deque()
        self._busy = 0  # slots taken: queued or running
        self._threads: list[threading.Thread] = []
        self._closed = False

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
            while self._busy >= self.size and not stop.is_set():
                self._cond.wait()
            if stop.is_set():
                return 0
            # A few slots freeing a moment apart would each trigger a small receive; waiting
            # briefly for a full batch keeps receives at 10 when tools are quick.
            deadline = time.monotonic() + linger
            while self.size - self._busy < want and self._busy and not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return 0 if stop.is_set() else self.size - self._busy

    def wake(self) -> None:
        """Wake ``wait_free`` callers (the stop flag changed)."""
        with self._cond:
            self._cond.notify_all()

    def submit(self, task: Task) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("pool is closed")
            self._busy += 1
            self._tasks.append(task)
            if len(self._threads) < min(self.size, self._busy):
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every submitted task has finished; ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self) -> None:
        """Let idle threads end; tasks already queued still run."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._tasks and not self._closed:
                    self._cond.wait()
                if not self._tasks:
                    return
                task = self._tasks.popleft()
            try:
                task()
            except Exception:
                log.exception("a worker task failed")
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()
