"""Engines for the SQL store: SQLite set up for many processes, and driver errors translated."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc

from intentq.config.redact import redacted
from intentq.errors import DedupError, StoreUnavailable

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
            cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")
        connection.exec_driver_sql("BEGIN DEFERRED" if mode == "DEFERRED" else "BEGIN IMMEDIATE")

    setattr(engine, _SQLITE_READY, True)
    # Connections opened before the hooks were installed would miss them.
    engine.dispose()


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
