"""An in-memory transport for tests: ``StubBroker`` and ``StubWorker``.

::

    broker = StubBroker()
    broker.send(Intent.create("book_slot", {"slot": "15:00"}, key="conv42-call7"))
    StubWorker(broker, registry, MemoryDedupStore(), MemoryDeadLetterStore()).drain()

The broker delivers as SQS does (visibility timeouts, receive counts, receipts, duplicates);
the worker runs the same executor as the SQS and Celery workers, so a tool tested here
meets the same decisions in production.
"""

from __future__ import annotations

from intentq.consumers.stub.broker import DEFAULT_QUEUE, Received, StubBroker
from intentq.consumers.stub.worker import StubWorker

__all__ = [
    # the broker
    "DEFAULT_QUEUE",
    "Received",
    "StubBroker",
    # the worker
    "StubWorker",
]
