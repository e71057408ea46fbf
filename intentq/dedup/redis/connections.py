"""Script calls on connections the Redis store keeps for itself: the store's hot path.

redis-py's ``Redis.execute_command`` and ``Pipeline.execute`` wrap every command in retry,
metrics and event plumbing, its pool polls the socket on every checkout, and even a bare
``Connection.send_command``/``read_response`` pair costs about 12 µs of client CPU on each
side of a round trip. The store sends nothing but ``EVALSHA`` with retries off, so it lets
redis-py make and set up each connection (address, timeouts, TLS, AUTH, ``SELECT``, client
name) and then speaks to its socket itself: commands packed by hiredis, replies parsed by a
hiredis reader of its own. It reads every reply it asked for, or drops the connection, so a
connection it gets back is always in step. One that sat idle longer than the client's health
check interval is polled first: a connection the server closed meanwhile (a restart, a
timeout) is replaced instead of failing a call.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Sequence
from typing import Any

import hiredis
import redis
from redis import exceptions as rx
from redis._parsers.base import BaseParser

from intentq.internals import private_path

# Connection classes whose socket carries plain RESP2 once ``connect()`` has returned.
_PLAIN = (redis.Connection, redis.SSLConnection, redis.UnixDomainSocketConnection)
# A connection idle this long is polled before use when the client sets no health check.
IDLE_CHECK = 1.0
_READ_SIZE = 65536


class Wire:
    """One connection made by redis-py, spoken to on its socket with a reader of its own."""

    __slots__ = ("buffer", "conn", "reader", "sock", "used")

    def __init__(self, conn: Any) -> None:
        conn.connect()
        self.conn = conn
        self.sock: socket.socket = conn._sock
        encoder = conn.encoder
        options: dict[str, Any] = {
            "protocolError": rx.InvalidResponse,
            "replyError": BaseParser.parse_error,
            "errors": encoder.encoding_errors,
        }
        if encoder.decode_responses:
            options["encoding"] = encoder.encoding
        self.reader = hiredis.Reader(**options)
        self.buffer = bytearray(_READ_SIZE)
        self.used = time.monotonic()

    def closed_by_server(self) -> bool:
        """Whether the server closed this idle connection (or sent something unasked)."""
        pending = getattr(self.sock, "pending", None)  # TLS: bytes already decrypted
        if pending is not None and pending():
            return True
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))

    def send(self, packed: bytes) -> None:
        try:
            self.sock.sendall(packed)
        except TimeoutError:
            raise rx.TimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            raise rx.ConnectionError(f"Error while writing to socket: {exc}") from exc

    def read(self) -> Any:
        """The next reply; an error reply is returned, not raised."""
        reader = self.reader
        reply = reader.gets()
        while reply is False:
            try:
                count = self.sock.recv_into(self.buffer)
            except TimeoutError:
                raise rx.TimeoutError("Timeout reading from socket") from None
            except OSError as exc:
                raise rx.ConnectionError(f"Error while reading from socket: {exc}") from exc
            if not count:
                raise rx.ConnectionError("Connection closed by server.")
            reader.feed(self.buffer, 0, count)  # type: ignore[arg-type]  # any buffer works
            reply = reader.gets()
        self.used = time.monotonic()
        return reply

    def drop(self) -> None:
        self.conn.disconnect()


class DirectConnections:
    """Wires made like the pool's connections, kept idle in a list (``pop``/``append`` need
    no lock)."""

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = pool
        self._idle: list[Wire] = []
        self._pid = os.getpid()
        interval = float(pool.connection_kwargs.get("health_check_interval") or 0)
        self.idle_check = interval if interval > 0 else IDLE_CHECK

    @classmethod
    def for_client(cls, client: redis.Redis) -> DirectConnections | None:
        """For a plain pooled RESP2 client; None for one pinned to a single connection, a
        client-side cache, RESP3, Sentinel, Cluster or a connection class of its own, which
        keep redis-py's ordinary path; None too on a redis-py release the socket path was not
        tested with (``intentq.internals``)."""
        if not private_path("redis"):
            return None
        pool = getattr(client, "connection_pool", None)
        if getattr(client, "connection", None) is not None:
            return None
        if type(pool) is not redis.ConnectionPool:
            return None
        if getattr(pool, "cache", None) is not None:
            return None
        if pool.connection_class not in _PLAIN:
            return None
        if str(pool.connection_kwargs.get("protocol") or 2) != "2":
            return None
        return cls(pool)

    def _acquire(self) -> Wire:
        if self._pid != os.getpid():  # a forked child: the parent's sockets are not its own
            self._idle = []
            self._pid = os.getpid()
        idle = self._idle
        while idle:
            try:
                wire = idle.pop()
            except IndexError:  # another thread took the last one
                break
            if time.monotonic() - wire.used < self.idle_check:
                return wire
            if not wire.closed_by_server():
                return wire
            wire.drop()
        return Wire(self._pool.connection_class(**self._pool.connection_kwargs))

    def _new(self) -> Wire:
        try:
            return self._acquire()
        except (TimeoutError, OSError) as exc:
            raise rx.ConnectionError(f"Error connecting to Redis: {exc}") from exc

    def call(self, *args: Any) -> Any:
        """One command, one round trip; an error reply is raised."""
        wire = self._new()
        try:
            wire.send(hiredis.pack_command(args))
            reply = wire.read()
        except BaseException:
            wire.drop()
            raise
        self._idle.append(wire)  # an error reply is a reply: the wire is in step
        if isinstance(reply, rx.ResponseError):
            raise reply
        return reply

    def batch(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Commands sent together and read back in order (one round trip); an error reply
        is returned in its place."""
        wire = self._new()
        try:
            wire.send(b"".join(hiredis.pack_command(command) for command in commands))
            replies = [wire.read() for _ in commands]
        except BaseException:
            wire.drop()
            raise
        self._idle.append(wire)
        return replies

    def close(self) -> None:
        while self._idle:
            try:
                self._idle.pop().drop()
            except IndexError:
                break
