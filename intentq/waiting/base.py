"""The listener contract: one connection per store that says which records may have changed.

A store that can notify (Redis pub/sub, PostgreSQL ``LISTEN``) gets a listener; one that
cannot (SQLite, memory) gets none and its waiters poll. A listener only wakes waiters: they
read the record themselves, so a lost or duplicated notification costs a read, never a
wrong answer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from intentq.dedup.base import DedupStore

# After a dropped listener connection, the first reconnect waits this long, then doubling.
RECONNECT_FIRST = 0.1
RECONNECT_MAX = 2.0

Wake = Callable[[str], None]


class Listener(ABC):
    """Calls ``wake(channel)`` when the record behind ``channel`` may have become final.

    ``channel`` is the record's store key (``{prefix}:{tool}:{key}``). After a reconnect,
    when notifications may have been missed, it calls ``wake_all()``.
    """

    @abstractmethod
    async def start(self, wake: Wake, wake_all: Callable[[], None]) -> None:
        """Connect and start listening; returns once notifications are being received."""

    @abstractmethod
    async def watch(self, channel: str) -> None:
        """Returns once a notification on ``channel`` would reach ``wake``."""

    @abstractmethod
    async def unwatch(self, channel: str) -> None:
        """No waiter is left on ``channel``."""

    @abstractmethod
    async def aclose(self) -> None:
        """Stop listening and close the connection."""


def listener_for(store: DedupStore) -> Listener | None:
    """The listener for ``store``'s backend, or ``None`` when its waiters must poll.

    Built from the store's own client or engine: the same server, credentials and TLS.
    """
    # By module, not isinstance: importing a backend to test for it would import its driver.
    kinds = {klass.__module__.rpartition(".")[0] for klass in type(store).__mro__}
    if "intentq.dedup.redis" in kinds:
        from intentq.waiting.redis import RedisListener

        return RedisListener.for_store(store)
    if "intentq.dedup.sql" in kinds:
        from intentq.waiting.postgres import PgListener

        return PgListener.for_store(store)
    return None


def next_delay(delay: float) -> float:
    """The reconnect backoff after ``delay``."""
    return min(delay * 2, RECONNECT_MAX)
