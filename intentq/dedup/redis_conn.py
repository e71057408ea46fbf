"""Script calls on connections the Redis store keeps for itself: the store's hot path.

redis-py's ``Redis.execute_command`` and ``Pipeline.execute`` wrap every command in retry,
metrics and event plumbing, and its pool polls the socket on every checkout; together that
costs about as much client CPU as the round trip itself. The store sends nothing but
``EVALSHA`` with retries off, so it takes connections of the client's own kind and settings
(timeouts, TLS, health checks, RESP version) and keeps the idle ones in a list of its own.
It reads every reply it asked for, or drops the connection, so a connection it gets back is
always in step and needs no poll.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import redis
from redis import exceptions as rx


class DirectConnections:
    """Connections made like the pool's, kept idle in a list (``pop``/``append`` need no lock)."""

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = pool
        self._idle: list[Any] = []
        self._pid = os.getpid()

    @classmethod
    def for_client(cls, client: redis.Redis) -> DirectConnections | None:
        """For a plain pooled client; None for one pinned to a single connection, a
        client-side cache, Sentinel or Cluster, which keep their own ordinary paths."""
        pool = getattr(client, "connection_pool", None)
        if getattr(client, "connection", None) is not None:
            return None
        if type(pool) is not redis.ConnectionPool:
            return None
        if getattr(pool, "cache", None) is not None:
            return None
        return cls(pool)

    def _acquire(self) -> Any:
        if self._pid != os.getpid():  # a forked child: the parent's sockets are not its own
            self._idle = []
            self._pid = os.getpid()
        try:
            return self._idle.pop()
        except IndexError:
            return self._pool.connection_class(**self._pool.connection_kwargs)

    def call(self, *args: Any) -> Any:
        """One command, one round trip; an error reply is raised."""
        conn = self._acquire()
        try:
            conn.send_command(*args)
            reply = conn.read_response()
        except rx.ResponseError:
            self._idle.append(conn)  # a reply like any other: the connection is in step
            raise
        except BaseException:
            conn.disconnect()
            raise
        self._idle.append(conn)
        return reply

    def batch(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Commands sent together and read back in order (one round trip); an error reply
        is returned in its place."""
        conn = self._acquire()
        try:
            conn.send_packed_command(conn.pack_commands(commands))
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except rx.ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            conn.disconnect()
            raise
        self._idle.append(conn)
        return replies

    def close(self) -> None:
        while self._idle:
            self._idle.pop().disconnect()
