"""Redis: the store's finishing script publishes on the record's key as a channel; one
subscriber connection carries every waiter's channel.

The connection is made like the store's own (address, AUTH, ``SELECT``, TLS), with
redis-py's asyncio ``Connection``, and spoken to directly: ``SUBSCRIBE``/``UNSUBSCRIBE`` go
out from the waiters' tasks, one reader task takes every reply. A watch returns once the
server confirmed its ``SUBSCRIBE``, so a completion after that is never missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from intentq.waiting.base import RECONNECT_FIRST, Listener, Wake, next_delay

if TYPE_CHECKING:
    from redis.asyncio.connection import AbstractConnection

    from intentq.dedup.base import DedupStore

log = logging.getLogger("intentq.waiting")

# The store's client settings that mean nothing to a subscriber, or are sync-only objects.
_NOT_COPIED = {"retry", "parser_class", "redis_connect_func", "connection_pool", "cache",
               "event_dispatcher", "socket_timeout", "health_check_interval"}  # fmt: skip


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _accepted(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names.update(inspect.signature(init).parameters)
    return names


class RedisListener(Listener):
    """``SUBSCRIBE`` to each watched record's key on one connection."""

    def __init__(self, connect: Callable[[], AbstractConnection]) -> None:
        self._connect = connect
        self._conn: AbstractConnection | None = None
        self._channels: set[str] = set()
        self._confirm: dict[str, list[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake: Wake = lambda channel: None
        self._wake_all: Callable[[], None] = lambda: None

    @classmethod
    def for_store(cls, store: DedupStore) -> RedisListener:
        """A listener on the same server as ``store``'s client (a ``RedisDedupStore``)."""
        import redis
        import redis.asyncio as aioredis

        pool = store.client.connection_pool  # type: ignore[attr-defined]
        classes: dict[type, type] = {
            redis.Connection: aioredis.Connection,
            redis.SSLConnection: aioredis.SSLConnection,
            redis.UnixDomainSocketConnection: aioredis.UnixDomainSocketConnection,
        }
        klass = classes.get(pool.connection_class, aioredis.Connection)
        accepted = _accepted(klass)
        options = {
            name: value
            for name, value in pool.connection_kwargs.items()
            if name in accepted and name not in _NOT_COPIED
        }
        # A subscriber waits for messages for as long as it lives: no read timeout.
        return cls(lambda: klass(socket_timeout=None, **options))

    async def start(self, wake: Wake, wake_all: Callable[[], None]) -> None:
        self._wake, self._wake_all = wake, wake_all
        self._conn = await self._open()
        self._task = asyncio.create_task(self._read_forever(), name="intentq-redis-listener")

    async def _open(self) -> AbstractConnection:
        conn = self._connect()
        await conn.connect()  # type: ignore[no-untyped-call]
        if self._channels:
            await conn.send_command("SUBSCRIBE", *sorted(self._channels))
        return conn

    async def watch(self, channel: str) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(channel, []).append(future)
        self._channels.add(channel)
        try:
            await self._send("SUBSCRIBE", channel)
            await future
        finally:
            waiting = self._confirm.get(channel)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._confirm[channel]

    async def unwatch(self, channel: str) -> None:
        self._channels.discard(channel)
        await self._send("UNSUBSCRIBE", channel)

    async def _send(self, *command: str) -> None:
        conn = self._conn
        if conn is None:
            return  # reconnecting: the new connection subscribes to every watched channel
        try:
            await conn.send_command(*command)
        except Exception as exc:  # the reader sees the same broken connection and reconnects
            log.debug("Redis listener could not send %s: %s", command[0], exc)

    async def _read_forever(self) -> None:
        delay = RECONNECT_FIRST
        while True:
            conn = self._conn
            try:
                if conn is None:
                    self._conn = conn = await self._open()
                    delay = RECONNECT_FIRST
                    self._wake_all()  # completions during the outage were not announced
                reply = await conn.read_response(timeout=math.inf, push_request=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("Redis listener connection lost (%s); reconnecting", exc)
                self._conn = None
                if conn is not None:
                    await _quietly_disconnect(conn)
                await asyncio.sleep(delay)
                delay = next_delay(delay)
                continue
            self._handle(reply)

    def _handle(self, reply: Any) -> None:
        if not isinstance(reply, list) or len(reply) < 2:
            return
        kind, channel = _text(reply[0]), _text(reply[1])
        if kind == "message":
            self._wake(channel)
        elif kind == "subscribe":
            for future in self._confirm.pop(channel, []):
                if not future.done():
                    future.set_result(None)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._conn is not None:
            await _quietly_disconnect(self._conn)
            self._conn = None


async def _quietly_disconnect(conn: AbstractConnection) -> None:
    try:
        await conn.disconnect()
    except Exception as exc:  # a dead connection may fail to close: it is gone either way
        log.debug("closing the Redis listener connection: %s", exc)
