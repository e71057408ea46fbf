"""One background thread that keeps every running tool's lease alive."""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType

from intentq.errors import LeaseLost

log = logging.getLogger("intentq.heartbeat")

Beat = Callable[[], None]


class Heartbeat:
    """Calls each registered beat every ``interval`` seconds until it is unregistered.

    One thread serves every running tool, so a worker with a pool of 10 does not start a
    thread per message. A beat that raises ``LeaseLost`` is dropped (another worker owns the
    key); any other error is logged and the beat goes on at its next turn.

    Registering is on every message's path, so it is O(1) and rarely wakes the thread: beats
    are kept in one queue per interval, and in a queue every new beat is due after all the
    beats already there, so each queue stays in due order without sorting; a beat that ends
    is removed at once, not left behind for the thread to skip.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        # interval -> beat id -> (due, beat), each queue in due order.
        self._queues: dict[float, OrderedDict[int, tuple[float, Beat]]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False
        # When the sleeping thread will look again; -inf while it is busy (it looks anyway).
        self._sleep_until = -math.inf

    def beating(self, interval: float, beat: Beat) -> Beating:
        """Run ``beat`` every ``interval`` seconds while the ``with`` block runs."""
        return Beating(self, interval, beat)

    def stop(self) -> None:
        """End the thread (beats still registered are dropped)."""
        with self._lock:
            self._stopped = True
            self._wake.notify()

    def _register(self, interval: float, beat: Beat) -> int:
        with self._lock:
            beat_id = next(self._ids)
            due = time.monotonic() + interval
            queue = self._queues.get(interval)
            if queue is None:
                queue = self._queues[interval] = OrderedDict()
            queue[beat_id] = (due, beat)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="intentq-heartbeat", daemon=True
                )
                self._thread.start()
            elif due < self._sleep_until:  # only an earlier deadline needs the thread awake
                self._wake.notify()
        return beat_id

    def _unregister(self, interval: float, beat_id: int) -> None:
        with self._lock:
            self._queues[interval].pop(beat_id, None)

    def _next_due(self) -> tuple[float, float, int, Beat | None]:
        """The earliest beat: (due, interval, id, beat); ``beat`` is None when there is none."""
        earliest: tuple[float, float, int, Beat | None] = (math.inf, 0.0, -1, None)
        for interval, queue in self._queues.items():
            if queue:
                beat_id = next(iter(queue))
                due, beat = queue[beat_id]
                if due < earliest[0]:
                    earliest = (due, interval, beat_id, beat)
        return earliest

    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    if self._stopped:
                        return
                    due, interval, beat_id, beat = self._next_due()
                    now = time.monotonic()
                    if beat is not None and due <= now:
                        break
                    self._sleep_until = due
                    self._wake.wait(None if beat is None else due - now)
                self._sleep_until = -math.inf
                queue = self._queues[interval]
                queue.move_to_end(beat_id)
                queue[beat_id] = (now + interval, beat)
            try:
                beat()
            except LeaseLost:
                log.warning("lease lost: another worker owns the key; no more heartbeats")
                self._unregister(interval, beat_id)
            except Exception:
                # A store or broker hiccup: keep beating, the next beat may get through
                # before the lease runs out.
                log.warning("heartbeat failed; retrying at the next beat", exc_info=True)


class Beating:
    """What ``Heartbeat.beating`` returns: a plain class rather than a generator-based
    context manager, as it is entered once per message."""

    __slots__ = ("_beat", "_heartbeat", "_id", "_interval")

    def __init__(self, heartbeat: Heartbeat, interval: float, beat: Beat) -> None:
        self._heartbeat, self._interval, self._beat = heartbeat, interval, beat
        self._id = -1

    def __enter__(self) -> None:
        self._id = self._heartbeat._register(self._interval, self._beat)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._heartbeat._unregister(self._interval, self._id)
