"""``AsyncWaiter``: many intents awaited in one event loop over one listener connection.

Each wait registers an event on its record's channel, reads the record, and sleeps until
the listener wakes the channel (or, on a store that cannot notify, until the next poll).
Records are read by the store's own ``get`` on a small thread pool, so a thousand waits use
the listener's connection, at most ``readers`` threads and the store's connections for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from intentq.dedup.base import DedupStore, Record, store_key
from intentq.ops.awaiting import DEFAULT_POLL, Awaited, settled, timed_out
from intentq.waiting.base import Listener, listener_for

if TYPE_CHECKING:
    from intentq.intent import Intent

log = logging.getLogger("intentq.waiting")

# With a listener, a waiter still reads its record this often: a safety net should a
# notification be lost (the listener's connection dropped and came back).
DEFAULT_RECHECK = 5.0
# Threads reading records for the waiters; also bounds the store connections they use.
DEFAULT_READERS = 4


class AsyncWaiter:
    """Awaits intents' outcomes in one event loop; push where ``store`` allows, else polls.

    ``listener`` defaults to the store's own (``listener_for``); pass ``push=False`` to
    poll every ``poll`` seconds instead. ``recheck`` is how often a pushed waiter reads its
    record anyway. Use it from one event loop; ``aclose()`` it there.
    """

    def __init__(
        self,
        store: DedupStore,
        listener: Listener | None = None,
        *,
        push: bool = True,
        poll: float = DEFAULT_POLL,
        recheck: float = DEFAULT_RECHECK,
        readers: int = DEFAULT_READERS,
    ) -> None:
        self.store = store
        self.listener = (listener or listener_for(store)) if push else None
        self.interval = recheck if self.listener is not None else poll
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="intentq-wait")
        self._events: dict[str, set[asyncio.Event]] = {}
        self._started: asyncio.Task[None] | None = None

    @property
    def push(self) -> bool:
        """Whether waiters wake on the store's notifications (else they poll)."""
        return self.listener is not None

    async def result(self, intent: Intent, timeout: float) -> Awaited:
        """``wait`` for an intent, checking its fingerprint against the record."""
        return await self.wait(intent.tool, intent.key, timeout, fingerprint=intent.fingerprint)

    async def wait(
        self, tool: str, key: str, timeout: float, *, fingerprint: str | None = None
    ) -> Awaited:
        """The outcome of ``(tool, key)`` within ``timeout`` seconds, or a timed-out
        ``Awaited``; ``KeyReuseMismatch`` if the record holds another fingerprint."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        channel = store_key(self.store.prefix, tool, key)
        event = asyncio.Event()
        self._events.setdefault(channel, set()).add(event)
        try:
            if self.listener is not None:
                await self._watch(channel, start + timeout - loop.time())
            while True:
                event.clear()  # before the read: a wake during the read is kept
                record = await self._read(tool, key)
                waited = loop.time() - start
                done = settled(record, tool, key, fingerprint, waited)
                if done is not None:
                    return done
                if waited >= timeout:
                    return timed_out(tool, key, waited)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(self.interval, timeout - waited))
        finally:
            self._forget(channel, event)

    async def _watch(self, channel: str, left: float) -> None:
        assert self.listener is not None
        # A listener that cannot start or confirm in time (its server is down) leaves the
        # waiter to its rechecks; the reads say whether the store itself is there.
        try:
            await asyncio.wait_for(self._subscribe(channel), max(left, 0.001))
        except TimeoutError:
            pass
        except Exception as exc:
            log.warning("waiting without notifications on %s: %s", channel, exc)

    async def _subscribe(self, channel: str) -> None:
        assert self.listener is not None
        if self._started is None:
            self._started = asyncio.ensure_future(self.listener.start(self._wake, self._wake_all))
        started = self._started
        try:
            await asyncio.shield(started)
        except Exception:
            if self._started is started:
                self._started = None  # the next waiter tries again
            raise
        await self.listener.watch(channel)

    async def _read(self, tool: str, key: str) -> Record | None:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self.store.get, tool, key)

    def _wake(self, channel: str) -> None:
        for event in self._events.get(channel, ()):
            event.set()

    def _wake_all(self) -> None:
        for events in self._events.values():
            for event in events:
                event.set()

    def _forget(self, channel: str, event: asyncio.Event) -> None:
        events = self._events.get(channel)
        if events is None:
            return
        events.discard(event)
        if not events:
            del self._events[channel]
            if self.listener is not None and self._started is not None:
                # Not awaited: a cancelled waiter must not wait on the network to leave.
                task = asyncio.ensure_future(self._unwatch(channel))
                task.add_done_callback(_ignore_result)

    async def _unwatch(self, channel: str) -> None:
        if channel not in self._events and self.listener is not None:
            await self.listener.unwatch(channel)

    @property
    def waiting(self) -> int:
        """How many channels have waiters now."""
        return len(self._events)

    async def aclose(self) -> None:
        """Close the listener and the reader threads (not the store)."""
        if self.listener is not None and self._started is not None:
            with contextlib.suppress(Exception):
                await self._started
            await self.listener.aclose()
        self._started = None
        self._readers.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> AsyncWaiter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _ignore_result(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # read, so an unsubscribe that failed is not logged as unretrieved
