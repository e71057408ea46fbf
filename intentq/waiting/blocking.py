"""``Waiter``: blocking waits for threads, multiplexed like the asyncio ones.

Where the store can notify, an ``AsyncWaiter`` runs on an event loop thread of the waiter's
own, so every thread of a process waits over one listener connection; where it cannot, a
wait polls the store in the caller's thread (``await_result``).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from intentq.dedup.base import DedupStore
from intentq.ops.awaiting import DEFAULT_POLL, Awaited, await_result
from intentq.waiting.base import listener_for
from intentq.waiting.hub import DEFAULT_RECHECK, AsyncWaiter

if TYPE_CHECKING:
    from intentq.intent import Intent


class Waiter:
    """Blocking ``result``/``wait``; ``close()`` stops its loop thread (not the store)."""

    def __init__(
        self,
        store: DedupStore,
        *,
        push: bool = True,
        poll: float = DEFAULT_POLL,
        recheck: float = DEFAULT_RECHECK,
    ) -> None:
        self.store = store
        self.poll = poll
        listener = listener_for(store) if push else None
        self._async: AsyncWaiter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        if listener is not None:
            self._async = AsyncWaiter(store, listener, recheck=recheck)
        self._lock = threading.Lock()

    @property
    def push(self) -> bool:
        """Whether waits wake on the store's notifications (else they poll)."""
        return self._async is not None

    def result(self, intent: Intent, timeout: float) -> Awaited:
        """``wait`` for an intent, checking its fingerprint against the record."""
        return self.wait(intent.tool, intent.key, timeout, fingerprint=intent.fingerprint)

    def wait(
        self, tool: str, key: str, timeout: float, *, fingerprint: str | None = None
    ) -> Awaited:
        """As ``AsyncWaiter.wait``, blocking the calling thread."""
        if self._async is None:
            return await_result(
                self.store, tool, key, timeout, fingerprint=fingerprint, poll=self.poll
            )
        waiting = self._async.wait(tool, key, timeout, fingerprint=fingerprint)
        return asyncio.run_coroutine_threadsafe(waiting, self._running()).result()

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="intentq-waiter", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def close(self) -> None:
        """Close the listener and stop the loop thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None or self._async is None:
            return
        asyncio.run_coroutine_threadsafe(self._async.aclose(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

    def __enter__(self) -> Waiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
