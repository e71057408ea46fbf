"""How an idle relay waits for new rows: PostgreSQL ``LISTEN`` on the table's channel (the
insert trigger's ``NOTIFY`` arrives when the application commits), else polling.

A relay keeps polling every ``outbox_poll_interval`` seconds even while it listens: a lost
listener connection, or rows written while it reconnected, are found on the next poll.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from typing import TYPE_CHECKING, Any

from intentq.outbox.database import CONNECT_TIMEOUT

if TYPE_CHECKING:
    from intentq.outbox.database import OutboxDatabase

log = logging.getLogger("intentq.outbox")

# A waiting relay looks at its stop flag this often (seconds): SIGTERM is heard within it.
STOP_CHECK = 0.2


class Wakeup:
    """Waits until new rows may be there, ``timeout`` passes, or ``stop`` is set."""

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """True if woken by a notification."""
        stop.wait(timeout)
        return False

    def close(self) -> None:
        pass


class Listening(Wakeup):
    """``LISTEN`` on one psycopg connection of its own, in autocommit."""

    def __init__(self, connect_args: tuple[Any, ...], connect_kwargs: dict[str, Any],
                 channel: str) -> None:  # fmt: skip
        self._args, self._kwargs = connect_args, connect_kwargs
        self.channel = channel
        self._conn: Any = None
        self._warned = False
        self._connect()

    @classmethod
    def for_database(cls, db: OutboxDatabase) -> Wakeup:
        """A listener on PostgreSQL with psycopg; polling anywhere else."""
        engine = db.engine
        if db.dialect != "postgresql" or engine.dialect.driver != "psycopg":
            return Wakeup()
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT)
        return cls(tuple(args), dict(kwargs), db.table.name)

    def _connect(self) -> None:
        import psycopg
        from psycopg import sql

        try:
            conn = psycopg.connect(*self._args, autocommit=True, **self._kwargs)
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except psycopg.Error as exc:
            if not self._warned:
                log.warning("cannot LISTEN for new outbox rows (%s): polling meanwhile", exc)
                self._warned = True
            self._conn = None
            return
        if self._warned:
            log.info("listening for new outbox rows again")
        self._conn, self._warned = conn, False

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        if self._conn is None:
            self._connect()
            if self._conn is None:
                return super().wait(timeout, stop)
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                ready, _, _ = select.select([self._conn.fileno()], [], [], min(STOP_CHECK, left))
                if ready and self._drained():
                    return True
            except Exception as exc:  # the connection broke: reconnect on the next wait
                log.warning("the outbox listener connection was lost (%s)", exc)
                self.close()
                return False
        return False

    def _drained(self) -> bool:
        """Read what the server sent; whether a notification was among it."""
        pgconn = self._conn.pgconn
        pgconn.consume_input()
        got = False
        while pgconn.notifies() is not None:
            got = True
        if pgconn.status != 0:  # CONNECTION_OK
            raise ConnectionError("the listener connection is not OK")
        return got

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception as exc:  # a dead connection may fail to close: it is gone anyway
                log.debug("closing the outbox listener: %s", exc)
            self._conn = None
