"""PostgreSQL: the store's finishing UPDATE calls ``pg_notify`` on the table's channel with
the record's key; one ``LISTEN``ing connection carries every waiter.

The channel is per table, so a watch needs no round trip: the connection listens from its
start, and the notification's payload (the record's ``store_key``) says whom to wake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from intentq.dedup.sql.statements import notify_channel
from intentq.waiting.base import RECONNECT_FIRST, Listener, Wake, next_delay

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from intentq.dedup.base import DedupStore

log = logging.getLogger("intentq.waiting")


class PgListener(Listener):
    """``LISTEN`` on one table's channel; wakes the waiters of the key in each payload."""

    def __init__(self, connect_args: tuple[Any, ...], connect_kwargs: dict[str, Any],
                 channel: str) -> None:  # fmt: skip
        self._args, self._kwargs = connect_args, connect_kwargs
        self.channel = channel
        self._conn: AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: Wake = lambda channel: None
        self._wake_all: Callable[[], None] = lambda: None

    @classmethod
    def for_store(cls, store: DedupStore) -> PgListener | None:
        """A listener for a PostgreSQL ``SqlDedupStore`` on psycopg; ``None`` for SQLite."""
        engine = store.engine  # type: ignore[attr-defined]
        if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
            return None
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        channel = notify_channel(store.table.name)  # type: ignore[attr-defined]
        return cls(tuple(args), dict(kwargs), channel)

    async def _open(self) -> AsyncConnection[Any]:
        from psycopg import AsyncConnection, sql

        conn = await AsyncConnection.connect(*self._args, autocommit=True, **self._kwargs)
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        return conn

    async def start(self, wake: Wake, wake_all: Callable[[], None]) -> None:
        self._wake, self._wake_all = wake, wake_all
        self._conn = await self._open()
        self._task = asyncio.create_task(self._read_forever(), name="intentq-pg-listener")

    async def watch(self, channel: str) -> None:
        """Nothing to send: the connection listens to the whole table from its start."""

    async def unwatch(self, channel: str) -> None:
        """Nothing to send: payloads nobody waits for are dropped."""

    async def _read_forever(self) -> None:
        delay = RECONNECT_FIRST
        while True:
            conn = self._conn
            try:
                if conn is None:
                    self._conn = conn = await self._open()
                    delay = RECONNECT_FIRST
                    self._wake_all()  # completions during the outage were not announced
                async for notify in conn.notifies():
                    self._wake(notify.payload)
                raise ConnectionError("the notification stream ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("PostgreSQL listener connection lost (%s); reconnecting", exc)
                self._conn = None
                if conn is not None:
                    await _quietly_close(conn)
                await asyncio.sleep(delay)
                delay = next_delay(delay)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._conn is not None:
            await _quietly_close(self._conn)
            self._conn = None


async def _quietly_close(conn: AsyncConnection[Any]) -> None:
    try:
        await conn.close()
    except Exception as exc:  # a dead connection may fail to close: it is gone either way
        log.debug("closing the PostgreSQL listener connection: %s", exc)
