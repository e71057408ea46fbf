"""Engines for the SQL store: SQLite set up for many processes, connections kept for the
store's calls, and driver errors translated."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import QueuePool

if TYPE_CHECKING:
    from sqlalchemy.pool import Pool, PoolProxiedConnection

from intentq.config.redact import redacted
from intentq.errors import DedupError, StoreUnavailable
from intentq.internals import private_path
from intentq.retrying import doubling, retry_call

# Seconds a connection attempt may take before the store counts as unreachable.
CONNECT_TIMEOUT = 5
# Milliseconds an SQLite writer waits for another process's write lock.
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option naming how an SQLite transaction begins: IMMEDIATE (the default) or
# DEFERRED for read-only work, which then never waits for a writer.
SQLITE_BEGIN = "intentq_sqlite_begin"
_SQLITE_READY = "_intentq_sqlite_ready"
# Seconds a pooled PostgreSQL connection may sit unused before it is pinged on checkout.
PING_WHEN_IDLE = 1.0
_IDLE_SINCE = "intentq_idle_since"


def make_engine(url: str, **options: Any) -> Engine:
    """An engine for ``postgresql+psycopg://`` or ``sqlite:///`` URLs.

    PostgreSQL connections that sat idle in the pool are pinged before use (see
    ``ping_when_idle``); ``pool_pre_ping=True`` pings before every use instead.
    """
    connect_args = dict(options.pop("connect_args", {}))
    postgresql = url.startswith("postgresql")
    if postgresql:
        connect_args.setdefault("connect_timeout", CONNECT_TIMEOUT)
    try:
        engine = create_engine(url, connect_args=connect_args, **options)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as exc:
        raise DedupError(f"cannot use SQL store URL {redacted(url)!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        prepare_sqlite(engine)
    elif not options.get("pool_pre_ping"):
        ping_when_idle(engine)
    return engine


def ping_when_idle(engine: Engine, idle: float = PING_WHEN_IDLE) -> None:
    """Pre-ping a pooled connection only if it sat unused for ``idle`` seconds.

    A connection the server or a firewall dropped is found before a statement is lost on it,
    as with ``pool_pre_ping``, without a ping round trip on every call of a busy worker
    (two per intent: half the cost of a claim). A connection that dies while in constant
    use fails its statement: ``StoreUnavailable``, and the pool reconnects.
    """

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < idle:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and checks out another (SQLAlchemy's
            # pessimistic disconnect handling).
            raise sa_exc.DisconnectionError(f"stale pooled connection: {exc}") from exc


def prepare_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout, and ``BEGIN IMMEDIATE`` for transactions (idempotent).

    IMMEDIATE takes the write lock when a transaction starts: a deferred transaction that
    read first would fail, not wait, when another process wrote in between.
    """
    if getattr(engine, _SQLITE_READY, False):
        return

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not open transactions itself; the "begin" hook below does.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            # Switching the mode needs the database to itself, and the switch does not wait
            # out busy_timeout: with many processes connecting to a new file at once, all but
            # one would fail with "database is locked". So it is tried again for as long as
            # busy_timeout; a file already in WAL (it stays so) is left alone.
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                retry_call(
                    lambda: cursor.execute("PRAGMA journal_mode = WAL"),
                    retry_on=sqlite3.OperationalError,
                    pauses=doubling(0.005, 0.1, within=SQLITE_BUSY_TIMEOUT_MS / 1000),
                )
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")
        connection.exec_driver_sql("BEGIN DEFERRED" if mode == "DEFERRED" else "BEGIN IMMEDIATE")

    setattr(engine, _SQLITE_READY, True)
    # Connections opened before the hooks were installed would miss them.
    engine.dispose()


# Taken only by a forked child's first call, while it sets aside what its parent left. A child
# gets a lock of its own: a thread of the parent's might have held this one at the fork.
_fork_lock = threading.RLock()


def _new_fork_lock() -> None:
    global _fork_lock
    _fork_lock = threading.RLock()


if hasattr(os, "register_at_fork"):  # no fork, no forked child (Windows)
    os.register_at_fork(after_in_child=_new_fork_lock)


class ProcessPools:
    """Engines' pools as this process's own, across ``os.fork()``.

    A forked child must neither use the pooled connections it inherited nor close them:
    their sockets are the parent's, and closing one sends the server a goodbye that ends the
    parent's session. ``for_this_process`` in the child replaces each pool with an empty one
    (``dispose(close=False)``, SQLAlchemy's recipe for ``os.fork()``) and keeps the parent's
    pools referenced, so that nothing in them is finalised in the child either.
    """

    def __init__(self, engines: Iterable[Engine | None]) -> None:
        self._engines = [engine for engine in engines if engine is not None]
        self._pid = os.getpid()
        self._inherited: list[Pool] = []  # the parent's: never touched

    def for_this_process(self) -> None:
        """In a forked child, on its first call: pools of its own."""
        if self._pid != os.getpid():
            with _fork_lock:
                if self._pid != os.getpid():  # not done meanwhile by another thread
                    self._renew()

    def _renew(self) -> None:
        inherited = {id(engine.pool): engine.pool for engine in self._engines}
        self._inherited.extend(inherited.values())
        for engine in self._engines:
            # Engines made with execution_options() share their parent's pool: renewed once.
            if id(engine.pool) in inherited:
                engine.dispose(close=False)
        self._pid = os.getpid()


def _missing_table(exc: sa_exc.DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "42P01" or "no such table" in str(exc.orig)


def translate(what: str, exc: BaseException) -> Exception | None:
    """The store's error for a driver error (``None`` if ``exc`` is not one).

    An unreachable database -> ``StoreUnavailable``; a missing table or any other driver
    error -> ``DedupError``.
    """
    if isinstance(exc, sa_exc.DBAPIError):
        if _missing_table(exc):
            return DedupError(
                f"{what}: the dedup table does not exist; create it with "
                "store.create_schema() or `intentq init`"
            )
        if exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        ):
            return StoreUnavailable(f"{what}: SQL store unavailable: {exc.orig}")
        return DedupError(f"{what}: SQL store error: {exc.orig}")
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return StoreUnavailable(f"{what}: SQL store unavailable: {exc}")
    return None


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Driver errors raised in the block, as ``translate`` names them."""
    try:
        yield
    except (sa_exc.DBAPIError, sa_exc.TimeoutError, sa_exc.DisconnectionError) as exc:
        error = translate(what, exc)
        assert error is not None
        raise error from exc


class Held:
    """A pooled connection checked out for the store's calls, with a cursor they reuse."""

    __slots__ = ("connection", "cursor", "dispatch", "fairy", "record", "renew_at")

    def __init__(self, fairy: PoolProxiedConnection, renew_at: float) -> None:
        assert fairy.dbapi_connection is not None
        self.fairy = fairy
        self.connection: Any = fairy.dbapi_connection
        self.cursor: Any = self.connection.cursor()
        self.renew_at = renew_at  # monotonic time to hand it back for recycling
        # Set when it is kept: the events of the pool it came from, and its entry there, as
        # listeners receive them (SQLAlchemy internals: see ``intentq.internals``).
        self.dispatch: Any = None
        self.record: Any = None


class Keeper:
    """Connections for the store's own calls, kept checked out between calls.

    A pool checkout and checkin cost a busy worker about as much as a statement's own client
    side, so up to ``pool_size`` connections stay out of the pool and go from call to call
    (``keep=False``: every call checks out and returns). Reusing a kept connection fires the
    pool's checkout event (keeping it, checkin), so pool listeners still see every call: the
    ping of a connection that sat idle (``ping_when_idle``), tracing.

    The pool always keeps one connection to hand out, and a call returns its connection to
    the pool rather than keep it while the pool has none left: a caller may be waiting there.
    ``autocommit``: switch a psycopg connection taken from a pool shared with transactions to
    autocommit, and back before it returns.

    A forked child never uses, returns or closes the connections its parent kept: they stay
    referenced, untouched (dropping one would return it to the pool, which may reset it on the
    parent's socket), and ``pools`` (by default ``engine``'s alone) start empty in the child.
    """

    def __init__(
        self,
        engine: Engine,
        error: type[Exception],
        *,
        keep: bool,
        autocommit: bool = False,
        pools: ProcessPools | None = None,
    ) -> None:
        pool = engine.pool
        self._engine = engine
        self._pools = pools if pools is not None else ProcessPools((engine,))
        self._pid = os.getpid()
        self._inherited: list[Held] = []  # kept by the parent of a forked child: never touched
        self._error = error
        self._autocommit = autocommit
        self._keep = 0
        self._capacity: int | None = None
        self._lifetime: float | None = None
        if keep and private_path("sqlalchemy"):
            self._keep = _keepable(pool)
            self._capacity = _capacity(pool)
            # pool_recycle: a kept connection goes back to the pool that often, to be recycled.
            recycle = float(getattr(pool, "_recycle", -1))
            self._lifetime = recycle if recycle >= 0 else None
        self._kept: list[Held] = []
        self._closed = False

    @property
    def kept(self) -> list[Any]:
        """The driver connections kept right now."""
        return [held.connection for held in self._kept]

    def take(self, what: str) -> Held:
        """A connection for one call: a kept one if any is free, else one from the pool."""
        if self._pid != os.getpid():
            self._leave_to_parent()
        kept = self._kept
        while True:
            try:
                held = kept.pop()
            except IndexError:
                return self._checkout(what)
            if self._lifetime is not None and time.monotonic() >= held.renew_at:
                self._return(held)  # the pool recycles it
                continue
            if held.dispatch.checkout:
                try:
                    held.dispatch.checkout(held.connection, held.record, held.fairy)
                except sa_exc.DisconnectionError as exc:
                    held.fairy.invalidate(exc)  # stale: try the next one, as the pool does
                    continue
            return held

    def _leave_to_parent(self) -> None:
        """In a forked child: set aside what the parent kept, and start on pools of its own."""
        with _fork_lock:
            if self._pid == os.getpid():
                return  # another thread of this process did
            self._inherited.extend(self._kept)
            self._kept = []
            self._pools.for_this_process()
            self._pid = os.getpid()

    def _checkout(self, what: str) -> Held:
        try:
            fairy = self._engine.raw_connection()
        except (self._error, sa_exc.SQLAlchemyError) as exc:
            raise_translated(what, exc, self._error)
        renew_at = time.monotonic() + self._lifetime if self._lifetime is not None else 0.0
        held = Held(fairy, renew_at)
        if self._autocommit:
            held.connection.autocommit = True
        return held

    def using(self, what: str) -> Using:
        """``with keeper.using(what) as held:`` a connection for one call named ``what``."""
        return Using(self, what)

    def disable_keeping(self) -> None:
        """From now on every call checks out from the pool and returns its connection."""
        self._keep = 0
        self._return_kept()

    def give(self, held: Held) -> None:
        """Keep the connection for the next call, or return it to the pool."""
        if len(self._kept) < self._keep and not self._closed and self._spare():
            if held.dispatch is None:
                held.dispatch = getattr(held.fairy, "_pool").dispatch  # noqa: B009
                held.record = getattr(held.fairy, "_connection_record")  # noqa: B009
            if held.dispatch.checkin:
                held.dispatch.checkin(held.connection, held.record)
            self._kept.append(held)
        else:
            self._return(held)

    def _return(self, held: Held) -> None:
        if self._autocommit and not held.connection.closed:
            held.connection.autocommit = False
        held.fairy.close()

    def _spare(self) -> bool:
        """Whether the pool could still hand out a connection, this one kept."""
        if self._capacity is None:
            return True
        pool = self._engine.pool
        return isinstance(pool, QueuePool) and pool.checkedout() < self._capacity

    def lost(self, held: Held, what: str, exc: BaseException) -> NoReturn:
        """A call failed on ``held``: drop the connection if it broke, then raise."""
        if not isinstance(exc, self._error):
            # Interrupted mid-protocol (KeyboardInterrupt, a bug): its state is unknown.
            held.fairy.invalidate(exc)
            raise exc
        connection = held.connection
        broken = bool(getattr(connection, "broken", False) or getattr(connection, "closed", 0))
        if broken:
            held.fairy.invalidate(exc)  # the pool must not hand this connection out again
            # A server restart broke the kept ones too, as a pool invalidates all its own.
            while self._kept:
                try:
                    self._kept.pop().fairy.invalidate(exc)
                except IndexError:
                    break
        else:
            try:
                connection.rollback()  # whatever the error left open (SQLite's BEGIN)
            except self._error:
                held.fairy.invalidate(exc)
            else:
                self.give(held)
        raise_translated(what, exc, self._error, invalidated=broken)

    def close(self) -> None:
        """Return the kept connections to the pool; later calls return theirs at once.

        In a forked child, the connections the parent kept are left alone.
        """
        self._closed = True
        if self._pid != os.getpid():
            self._leave_to_parent()
        self._return_kept()

    def _return_kept(self) -> None:
        while self._kept:
            try:
                self._return(self._kept.pop())
            except IndexError:  # another thread took the last one
                break


class Using:
    """One call's connection: taken on entry; after the call kept again (or returned), or,
    if the call raised, dropped when broken and the error raised as the store's.

    A plain class rather than a generator-based context manager: it wraps every call.
    """

    __slots__ = ("_held", "_keeper", "_what")

    def __init__(self, keeper: Keeper, what: str) -> None:
        self._keeper, self._what = keeper, what

    def __enter__(self) -> Held:
        self._held = self._keeper.take(self._what)
        return self._held

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self._keeper.give(self._held)
        else:
            self._keeper.lost(self._held, self._what, exc)


def _keepable(pool: Pool) -> int:
    """How many connections to keep: up to the pool's size, leaving it at least one.

    None unless the pool queues; none either if it pings before every checkout
    (``pool_pre_ping``): it asked for a ping per call, so every call checks out.
    """
    if not isinstance(pool, QueuePool) or getattr(pool, "_pre_ping", False):
        return 0
    capacity = _capacity(pool)
    keep = pool.size()
    return max(keep if capacity is None else min(keep, capacity - 1), 0)


def _capacity(pool: Pool) -> int | None:
    """How many connections a queue pool hands out at most (``None``: no bound)."""
    if not isinstance(pool, QueuePool):
        return None
    overflow = int(getattr(pool, "_max_overflow", -1))
    return None if overflow < 0 else pool.size() + overflow


def raise_translated(
    what: str, exc: BaseException, driver_error: type[Exception], invalidated: bool = False
) -> NoReturn:
    """The store's error for a driver or SQLAlchemy error, judged by ``translate``."""
    if isinstance(exc, driver_error):
        wrapped = sa_exc.DBAPIError.instance(
            None, None, exc, driver_error, connection_invalidated=invalidated
        )
        wrapped.__cause__ = exc
        exc = wrapped
    error = translate(what, exc)
    if error is None:
        raise exc
    raise error from exc
