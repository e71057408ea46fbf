"""One background thread that keeps every running tool's lease alive."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from intentq.errors import LeaseLost

log = logging.getLogger("intentq.heartbeat")


class Heartbeat:
    """Calls each registered beat every ``interval`` seconds until it is unregistered.

    One thread serves every running tool, so a worker with a pool of 10 does not start a
    thread per message. A beat that raises ``LeaseLost`` is dropped (another worker owns the
    key); any other error is logged and the beat goes on at its next turn.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._beats: dict[int, tuple[float, Callable[[], None]]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    @contextmanager
    def beating(self, interval: float, beat: Callable[[], None]) -> Iterator[None]:
        """Run ``beat`` every ``interval`` seconds while the block runs."""
        with self._cond:
            beat_id = next(self._ids)
            self._beats[beat_id] = (interval, beat)
            heapq.heappush(self._heap, (time.monotonic() + interval, beat_id))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="intentq-heartbeat", daemon=True
                )
                self._thread.start()
            if self._heap[0][1] == beat_id:  # only an earlier deadline needs the thread awake
                self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._beats.pop(beat_id, None)

    def stop(self) -> None:
        """End the thread (beats still registered are dropped)."""
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    while self._heap and self._heap[0][1] not in self._beats:
                        heapq.heappop(self._heap)
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, beat_id = heapq.heappop(self._heap)
                interval, beat = self._beats[beat_id]
                heapq.heappush(self._heap, (time.monotonic() + interval, beat_id))
            try:
                beat()
            except LeaseLost:
                log.warning("lease lost: another worker owns the key; no more heartbeats")
                with self._cond:
                    self._beats.pop(beat_id, None)
            except Exception:
                # A store or broker hiccup: keep beating, the next beat may get through
                # before the lease runs out.
                log.warning("heartbeat failed; retrying at the next beat", exc_info=True)
