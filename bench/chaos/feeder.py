"""The stream of a chaos run, sent in chunks while the workers are being killed."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from bench.chaos.plan import Message
from bench.chaos.transport import CeleryTransport, SqsTransport


class Feeder(threading.Thread):
    """Sends the plan in chunks, waiting while the backlog is above ``limit``."""

    def __init__(
        self, transport: SqsTransport | CeleryTransport, messages: Sequence[Message], chunk: int,
        limit: int, rate: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__(name="chaos-feeder", daemon=True)
        self.transport, self.messages, self.limit, self.rate = transport, messages, limit, rate
        # Paced, the stream goes out in chunks of about a second's worth.
        self.chunk = min(chunk, max(10, round(rate))) if rate else chunk
        self.sent = 0
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        began = time.monotonic()
        try:
            for start in range(0, len(self.messages), self.chunk):
                while self.transport.waiting() > self.limit:
                    if self.stop.wait(0.2):
                        return
                if self.rate and self.stop.wait(
                    max(0.0, began + start / self.rate - time.monotonic())
                ):
                    return
                self.transport.send(self.messages[start : start + self.chunk])
                self.sent = min(len(self.messages), start + self.chunk)
                if self.stop.is_set():
                    return
        except BaseException as exc:  # reported by the run, which then fails
            self.error = exc
        finally:
            self.done.set()
