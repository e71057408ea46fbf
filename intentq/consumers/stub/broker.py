"""``StubBroker``: in-memory queues that deliver the way SQS does, for tests.

At least once, never exactly once: a receive hides a message for a visibility timeout and
hands out a receipt; a message not acked by then is delivered again with its receive count
up and a new receipt. Verbs with an older receipt are refused, as a worker that lost its
delivery would find. ``duplicate`` puts a second copy on the queue, as SQS sometimes does.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from intentq.intent import Intent

DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class Received:
    """One delivery of a message: its ``receipt`` is this delivery's alone."""

    queue: str
    message_id: str
    body: bytes
    receive_count: int
    receipt: str


@dataclass
class _Message:
    message_id: str
    body: bytes
    visible_at: float
    receive_count: int = 0
    receipt: str | None = None  # the latest delivery's, until the message is given back


class StubBroker:
    """Named queues in memory; ``clock`` (seconds, monotonic) may be injected."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._changed = threading.Condition()
        self._queues: dict[str, dict[str, _Message]] = {}
        self._receipts = itertools.count(1)

    # -- sending -------------------------------------------------------------------------

    def send(self, intent: Intent, queue: str = DEFAULT_QUEUE, delay: float = 0.0) -> str:
        """Put an intent's envelope on ``queue``; returns the message id."""
        return self.send_body(intent.to_json(), queue, delay)

    def send_body(self, body: bytes, queue: str = DEFAULT_QUEUE, delay: float = 0.0) -> str:
        """Put any bytes on ``queue`` (poison included), visible after ``delay`` seconds."""
        message = _Message(uuid.uuid4().hex, bytes(body), self._clock() + delay)
        with self._changed:
            self._queues.setdefault(queue, {})[message.message_id] = message
            self._changed.notify_all()
        return message.message_id

    def duplicate(self, message_id: str, queue: str = DEFAULT_QUEUE) -> str:
        """A second copy of a message still on ``queue``: another id, the same body."""
        with self._changed:
            original = self._queues[queue][message_id]
        return self.send_body(original.body, queue)

    # -- receiving -----------------------------------------------------------------------

    def receive(
        self,
        queue: str = DEFAULT_QUEUE,
        max_messages: int = 1,
        visibility: float = 30.0,
        wait: float = 0.0,
    ) -> list[Received]:
        """Up to ``max_messages`` visible messages, hidden for ``visibility`` seconds;
        waits up to ``wait`` seconds for the first one."""
        deadline = self._clock() + wait
        with self._changed:
            while True:
                now = self._clock()
                messages = self._queues.get(queue, {}).values()
                ready = [m for m in messages if m.visible_at <= now][:max_messages]
                if ready or now >= deadline:
                    break
                self._changed.wait(min(deadline - now, self._next_visible(queue) - now))
            out = []
            for message in ready:
                message.receive_count += 1
                message.receipt = f"{message.message_id}:{next(self._receipts)}"
                message.visible_at = now + visibility
                out.append(
                    Received(queue, message.message_id, message.body, message.receive_count,
                             message.receipt)
                )  # fmt: skip
            return out

    def ack(self, received: Received) -> bool:
        """Delete the message; ``False`` if this delivery no longer holds it."""
        with self._changed:
            message = self._held(received)
            if message is None:
                return False
            del self._queues[received.queue][received.message_id]
            self._changed.notify_all()
            return True

    def retry_later(self, received: Received, delay: float) -> bool:
        """Give the message back, to be delivered again in ``delay`` seconds."""
        with self._changed:
            message = self._held(received)
            if message is None:
                return False
            message.visible_at = self._clock() + max(delay, 0.0)
            message.receipt = None
            self._changed.notify_all()
            return True

    def extend(self, received: Received, seconds: float) -> bool:
        """Keep the message hidden ``seconds`` from now; ``False`` if it was lost."""
        with self._changed:
            message = self._held(received)
            if message is None:
                return False
            message.visible_at = self._clock() + seconds
            return True

    # -- looking -------------------------------------------------------------------------

    def depth(self, queue: str = DEFAULT_QUEUE) -> tuple[int, int]:
        """(waiting, in flight): messages to be delivered, and hidden deliveries."""
        with self._changed:
            now = self._clock()
            messages = self._queues.get(queue, {}).values()
            in_flight = sum(1 for m in messages if m.receipt is not None and m.visible_at > now)
            return len(messages) - in_flight, in_flight

    def join(self, queue: str = DEFAULT_QUEUE, timeout: float = 10.0) -> None:
        """Wait until every message of ``queue`` was acked; ``TimeoutError`` after ``timeout``."""
        deadline = self._clock() + timeout
        with self._changed:
            while self._queues.get(queue):
                left = deadline - self._clock()
                if left <= 0:
                    left_over = len(self._queues[queue])
                    raise TimeoutError(f"{left_over} message(s) on {queue!r} after {timeout}s")
                self._changed.wait(left)

    def purge(self, queue: str = DEFAULT_QUEUE) -> int:
        """Drop every message of ``queue``; how many there were."""
        with self._changed:
            dropped = len(self._queues.pop(queue, {}))
            self._changed.notify_all()
            return dropped

    # -- internals -----------------------------------------------------------------------

    def _held(self, received: Received) -> _Message | None:
        message = self._queues.get(received.queue, {}).get(received.message_id)
        # As on SQS, only the latest delivery's receipt counts, even after its visibility
        # ran out: until another receive takes the message, it is still this delivery's.
        if message is None or message.receipt != received.receipt:
            return None
        return message

    def _next_visible(self, queue: str) -> float:
        times = [m.visible_at for m in self._queues.get(queue, {}).values()]
        return min(times, default=float("inf"))
