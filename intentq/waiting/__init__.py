"""Waiting for intents' outcomes: pushed by the store where it can (Redis pub/sub,
PostgreSQL ``LISTEN``/``NOTIFY``), polled where it cannot (SQLite, memory).

``Producer.result`` and ``Producer.enqueue(..., wait=)`` use ``Waiter``; asyncio code uses
``AsyncProducer`` or ``AsyncWaiter`` directly. Imports no driver until a store needs one.
"""

from intentq.errors import KeyReuseMismatch
from intentq.ops.awaiting import Awaited, Status
from intentq.waiting.base import Listener, listener_for
from intentq.waiting.blocking import Waiter
from intentq.waiting.hub import AsyncWaiter
from intentq.waiting.producer import AsyncProducer

__all__ = [
    # waiting
    "AsyncProducer",
    "AsyncWaiter",
    "Waiter",
    # outcomes
    "Awaited",
    "KeyReuseMismatch",
    "Status",
    # listeners
    "Listener",
    "listener_for",
]
