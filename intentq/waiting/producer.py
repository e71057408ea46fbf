"""``AsyncProducer``: send intents and await their outcomes from asyncio code.

Sending goes through a ``Producer`` (boto3 and Celery block) on the loop's default thread
pool; waiting is an ``AsyncWaiter``, so a thousand awaits share one listener connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, overload

from intentq.ops.awaiting import Awaited
from intentq.waiting.hub import AsyncWaiter

if TYPE_CHECKING:
    from intentq.config.settings import Settings
    from intentq.dedup.base import DedupStore
    from intentq.intent import Intent
    from intentq.producer import Producer
    from intentq.registry import Registry


class AsyncProducer:
    """The asyncio twin of ``Producer``: ``await enqueue(..., wait=)``, ``await result()``.

    A given ``producer``, ``store`` or ``waiter`` stays open; ones it makes are closed by
    ``aclose()``. The store is ``INTENTQ_DEDUP_URL``'s unless given.
    """

    def __init__(
        self,
        settings: Settings,
        registry: Registry | None = None,
        *,
        producer: Producer | None = None,
        store: DedupStore | None = None,
        waiter: AsyncWaiter | None = None,
    ) -> None:
        from intentq.producer import Producer

        self.settings = settings
        self.registry = registry
        self.producer = producer or Producer(settings, registry)
        self._own_producer = producer is None
        self._store = waiter.store if waiter is not None else store
        self._own_store = False
        self._waiter = waiter
        self._own_waiter = waiter is None

    @property
    def waiter(self) -> AsyncWaiter:
        """The waiter (made on first use, with the store opened from the settings)."""
        if self._waiter is None:
            if self._store is None:
                from intentq.connections import open_store_for

                self._store, self._own_store = open_store_for(self.settings), True
            self._waiter = AsyncWaiter(self._store)
        return self._waiter

    def intent(
        self,
        tool: str,
        args: Mapping[str, Any],
        key: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Intent:
        """A checked intent, not sent (``Producer.intent``)."""
        return self.producer.intent(tool, args, key=key, meta=meta)

    async def send_intent(self, intent: Intent) -> str | None:
        """Send an intent as it is, in a worker thread."""
        return await asyncio.to_thread(self.producer.send_intent, intent)

    @overload
    async def enqueue(
        self,
        tool: str,
        args: Mapping[str, Any],
        key: str | None = None,
        meta: Mapping[str, Any] | None = None,
        *,
        wait: None = None,
    ) -> Intent: ...

    @overload
    async def enqueue(
        self,
        tool: str,
        args: Mapping[str, Any],
        key: str | None = None,
        meta: Mapping[str, Any] | None = None,
        *,
        wait: float,
    ) -> Awaited: ...

    async def enqueue(
        self,
        tool: str,
        args: Mapping[str, Any],
        key: str | None = None,
        meta: Mapping[str, Any] | None = None,
        *,
        wait: float | None = None,
    ) -> Intent | Awaited:
        """Check and send one intent; with ``wait`` (seconds), its ``Awaited``."""
        intent = self.intent(tool, args, key=key, meta=meta)
        await self.send_intent(intent)
        if wait is None:
            return intent
        return await self.result(intent, wait)

    async def result(self, intent: Intent, timeout: float) -> Awaited:
        """What became of ``intent`` within ``timeout`` seconds (``Producer.result``)."""
        return await self.waiter.result(intent, timeout)

    async def aclose(self) -> None:
        """Close what this object made: the waiter, the store, the producer."""
        if self._own_waiter and self._waiter is not None:
            await self._waiter.aclose()
            self._waiter = None
        if self._own_store and self._store is not None:
            self._store.close()
            self._store, self._own_store = None, False
        if self._own_producer:
            await asyncio.to_thread(self.producer.close)

    async def __aenter__(self) -> AsyncProducer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
